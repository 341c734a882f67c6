"""Tongyi Agent: a local-first research assistant that learns from its own use."""

__version__ = "0.1.0"
