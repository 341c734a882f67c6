"""CLI fixtures: a small project folder and a runner that keeps stdout and stderr apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "services").mkdir(parents=True)
    (root / "services" / "billing.md").write_text(
        "# Billing\n\nThe billing service listens on port 8443.\nOwner: payments team.\n")
    (root / "notes.txt").write_text("Nothing about ports here.\n")
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
