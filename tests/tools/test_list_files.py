"""list_files on a small project tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools import list_files as list_files_module
from tongyi_agent.tools.base import ToolContext, ToolError
from tongyi_agent.tools.list_files import list_files


def test_lists_all_text_files_sorted_with_sizes(project: Path, ctx: ToolContext) -> None:
    result = list_files(ctx)
    assert result.ok
    expected = ["README.md", "docs/guide.md", "src/pkg/core.py"]
    assert result.output.splitlines() == [f"{p}  ({(project / p).stat().st_size} B)" for p in expected]


def test_pattern_on_names_and_paths(ctx: ToolContext) -> None:
    assert list_files(ctx, pattern="*.py").output.splitlines() == ["src/pkg/core.py  (32 B)"]
    assert list_files(ctx, pattern="*.MD").output.splitlines()[0].startswith("README.md")
    assert list_files(ctx, pattern="docs/*.md").output.startswith("docs/guide.md")
    assert list_files(ctx, pattern="**/*.py").output.startswith("src/pkg/core.py")


def test_path_narrows_the_listing(ctx: ToolContext) -> None:
    assert list_files(ctx, path="src").output.splitlines() == ["src/pkg/core.py  (32 B)"]
    # A path pattern may be relative to the listed folder as well as to the root.
    assert list_files(ctx, path="src", pattern="pkg/*.py").output.startswith("src/pkg/core.py")
    assert list_files(ctx, path="README.md").output.startswith("README.md")


def test_no_match_says_so(ctx: ToolContext) -> None:
    result = list_files(ctx, pattern="*.rs")
    assert result.ok
    assert result.output == "no files match '*.rs' under '.'"


def test_skips_gitignored_binary_and_tool_folders(project: Path, ctx: ToolContext) -> None:
    (project / ".gitignore").write_text("*.log\nbuild/\n")
    (project / "app.log").write_text("noise")
    (project / "build").mkdir()
    (project / "build" / "out.txt").write_text("generated")
    (project / ".venv").mkdir()
    (project / ".venv" / "site.py").write_text("x")
    (project / "logo.png").write_bytes(b"\x89PNG\0\0\0")
    output = list_files(ctx).output
    for hidden in ("app.log", "build/out.txt", ".venv", "logo.png"):
        assert hidden not in output
    assert "README.md" in output


def test_cap_reports_how_many_more(project: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_files_module, "MAX_ENTRIES", 2)
    lines = list_files(ctx).output.splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("... 1 more")


def test_sizes_are_human_readable(project: Path, ctx: ToolContext) -> None:
    (project / "big.txt").write_text("x" * 3000)
    assert "big.txt  (2.9 KB)" in list_files(ctx).output


def test_missing_folder_lists_whole_root_with_note(ctx: ToolContext) -> None:
    result = list_files(ctx, path="nowhere")
    assert result.output.startswith("Note: 'nowhere' does not exist; listed the whole project instead.")
    assert result.output.count("\n") >= 2  # the root's files follow the note


def test_outside_paths_are_errors(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="outside the project root"):
        list_files(ctx, path="..")
