# Until tests/conftest.py imports tests.fakes.fixtures, make the fake-server fixture available here.
from tests.fakes.fixtures import openai_server

__all__ = ["openai_server"]
