"""`python -m supernet` runs the command line."""

from supernet.cli.app import main

main()
