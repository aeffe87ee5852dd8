"""The version of commprof (one place; the facade and the package metadata read it)."""

__version__ = "0.1.0"
