"""The package version (its own module, so that the store can stamp runs without importing
the package root)."""

__version__ = "0.1.0"
