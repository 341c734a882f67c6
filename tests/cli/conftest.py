"""CLI fixtures: a runner that keeps stdout and stderr apart (the project folder is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
