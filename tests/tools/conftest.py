"""A small project tree the file-tool tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools.base import ToolContext


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "README.md").write_text("# Demo\nThe agent answers questions about files.\n")
    (root / "src" / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "docs" / "guide.md").write_text("Install with pip.\nRun the agent.\n")
    return root


@pytest.fixture
def ctx(project: Path) -> ToolContext:
    return ToolContext(root=project)
