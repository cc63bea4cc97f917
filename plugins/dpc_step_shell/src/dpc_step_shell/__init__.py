"""Shell steps for dpc."""

__version__ = "0.1.0"
