"""Command line (typer): `supernet train`, `supernet eval`, `supernet spaces`."""
