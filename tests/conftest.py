"""Shared fixtures. Tests never touch the user's real config, cache or training directories."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest

from tests.fakes.anthropic_server import anthropic_server_fixture  # noqa: F401  (fixture `anthropic_server`)
from tests.fakes.openai_server import openai_server  # noqa: F401  (fixture)
from tests.fakes.scholarly_server import scholarly_server  # noqa: F401  (fixture)
from tests.fakes.web_server import web_server  # noqa: F401  (fixture)

# Resolved before any test moves HOME: the assembled embedded model (1 GB) is shared, not rebuilt per test.
REAL_CACHE_DIR = os.environ.get("TONGYI_CACHE_DIR") or platformdirs.user_cache_dir("tongyi-agent")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("TONGYI_CONFIG_DIR", str(home / ".config" / "tongyi-agent"))
    monkeypatch.setenv("TONGYI_CACHE_DIR", REAL_CACHE_DIR)
    for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "ANTHROPIC_API_KEY",
                 "TONGYI_MODEL", "TONGYI_MAX_STEPS", "TONGYI_TIMEOUT", "TONGYI_TRAINING_ENABLED",
                 "TONGYI_TRAINING_MODE", "TONGYI_TRAINING_PATH"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project folder: one service document with a port, and one file without."""
    root = tmp_path / "project"
    (root / "services").mkdir(parents=True)
    (root / "services" / "billing.md").write_text(
        "# Billing\n\nThe billing service listens on port 8443.\nOwner: payments team.\n")
    (root / "notes.txt").write_text("Nothing about ports here.\n")
    return root
