"""Fixtures from the fakes, gathered for tests/conftest.py to import."""

from tests.fakes.openai_server import openai_server

__all__ = ["openai_server"]
