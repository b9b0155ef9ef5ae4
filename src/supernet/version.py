"""The library version, in a leaf module so that every layer (also ``checkpoint``) can record it
in the artifacts it writes without importing the package root."""

__version__ = "0.1.0"
