"""Fixtures for config tests: a project root and the (isolated) user config dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def config_dir(isolated_user_dirs: Path) -> Path:
    # The autouse fixture in tests/conftest.py points TONGYI_CONFIG_DIR here.
    path = Path(os.environ["TONGYI_CONFIG_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    def _write(path: Path, text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        return path

    return _write
