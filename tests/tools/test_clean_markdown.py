"""clean_markdown: each operation, code fences left alone, preview diff, and where it may write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools import clean_markdown as md_module
from tongyi_agent.tools.base import SourceRef, Tool, ToolContext, ToolError
from tongyi_agent.tools.clean_markdown import clean_markdown


def _cleaned(project: Path, ctx: ToolContext, text: str, operations: str) -> tuple[str, str]:
    """Run the operations, writing to a fresh file; returns (tool output, written text)."""
    (project / "in.md").write_text(text)
    out = project / "out.md"
    out.unlink(missing_ok=True)
    result = clean_markdown(ctx, "in.md", operations=operations, output="out.md")
    return result.output, out.read_text()


def test_whitespace(project: Path, ctx: ToolContext) -> None:
    text = ("Intro line   \nhard break  \nnext line  \n\n\n\n\tTabbed text\n"
            "```\n\tcode keeps its tab   \n\n\n\nx\n```\nlast")
    output, cleaned = _cleaned(project, ctx, text, "whitespace")
    # Trailing spaces before another paragraph line are a hard break: kept as exactly two.
    assert cleaned == ("Intro line  \nhard break  \nnext line\n\n    Tabbed text\n"
                       "```\n\tcode keeps its tab   \n\n\n\nx\n```\nlast\n")
    assert "2 extra blank line(s) removed" in output


def test_duplicates_keep_the_first_and_spare_short_blocks_and_code(project: Path, ctx: ToolContext) -> None:
    para = "The turbines produced 45 GWh last year."
    text = f"# A\n\n{para}\n\n---\n\n# A\n\n{para}\n\n---\n\n```\nprint(1)\n```\n\n```\nprint(1)\n```\n"
    output, cleaned = _cleaned(project, ctx, text, "duplicates")
    assert cleaned.count(para) == 1
    assert cleaned.count("# A") == 2 and cleaned.count("---") == 2  # headings and rules are structure
    assert cleaned.count("print(1)") == 2  # code is never deduplicated
    assert "duplicates: 1 repeated block(s) removed" in output


def test_frontmatter_is_removed_and_its_keys_reported(project: Path, ctx: ToolContext) -> None:
    text = "---\ntitle: Tides\nauthors:\n  - Ada\ndate: 2026-11-03\n---\n\n# Tides\n"
    output, cleaned = _cleaned(project, ctx, text, "frontmatter")
    assert cleaned == "# Tides\n"
    assert "frontmatter: removed (3 key(s): title, authors, date)" in output
    none_output, _ = _cleaned(project, ctx, "# No front matter\n", "frontmatter")
    assert "frontmatter: none found" in none_output


def test_headings(project: Path, ctx: ToolContext) -> None:
    text = ("---\ntitle: x\n---\nTitle\n=====\n\n##Setup\n\nPart\n---\n\n#### Too deep\n\n"
            "- item\n---\n\n```\n#comment\n```\n")
    output, cleaned = _cleaned(project, ctx, text, "headings")
    assert cleaned == ("---\ntitle: x\n---\n# Title\n\n## Setup\n\n## Part\n\n#### Too deep\n\n"
                       "- item\n---\n\n```\n#comment\n```\n")
    assert "2 Setext heading(s) converted to #, 1 heading(s) given a space after #" in output
    assert "skipped levels (not changed): line 10 (h2 -> h4)" in output


def test_preview_shows_a_diff_and_writes_nothing(project: Path, ctx: ToolContext) -> None:
    original = "# Notes   \n\n\n\nText"
    (project / "notes.md").write_text(original)
    result = clean_markdown(ctx, "notes.md")
    assert (project / "notes.md").read_text() == original
    assert not (project / "out.md").exists()
    assert "preview only: nothing written" in result.output
    diff = result.output.split("\n\n", 1)[1]
    assert diff.splitlines()[:2] == ["--- a/notes.md", "+++ b/notes.md"]
    assert "-# Notes   " in diff and "+# Notes" in diff
    assert "(a final newline is added)" in diff
    assert result.sources == [SourceRef(path="notes.md")]


def test_preview_diff_is_capped(project: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md_module, "MAX_DIFF_LINES", 5)
    (project / "long.md").write_text("".join(f"line {n}  \n\n" for n in range(50)))
    output = clean_markdown(ctx, "long.md", operations="whitespace").output
    assert "[diff cut:" in output
    assert len(output.split("\n\n", 1)[1].splitlines()) == 6


def test_clean_file_reports_no_changes(ctx: ToolContext) -> None:
    result = clean_markdown(ctx, "docs/guide.md")
    assert "no changes" in result.output and "---" not in result.output


def test_output_rules(project: Path, ctx: ToolContext) -> None:
    (project / "a.md").write_text("Text   \n")
    with pytest.raises(ToolError, match="outside the project root"):
        clean_markdown(ctx, "a.md", output="/tmp/elsewhere.md")
    with pytest.raises(ToolError, match="already exists"):
        clean_markdown(ctx, "a.md", output="README.md")
    result = clean_markdown(ctx, "a.md", output="a.md")
    assert (project / "a.md").read_text() == "Text\n"
    assert "wrote 1 lines to a.md" in result.output
    with pytest.raises(ToolError, match="unknown operation"):
        clean_markdown(ctx, "a.md", operations="spelling")


def test_crlf_files_stay_crlf(project: Path, ctx: ToolContext) -> None:
    (project / "w.md").write_bytes(b"Title\r\n=====\r\n\r\n\r\n\r\nBody  \r\n")
    clean_markdown(ctx, "w.md", operations="headings,whitespace", output="w.md")
    assert (project / "w.md").read_bytes() == b"# Title\r\n\r\nBody\r\n"


def test_schema() -> None:
    tool = Tool.from_function(clean_markdown, writes=True)
    assert tool.parameters["properties"]["operations"]["default"] == "whitespace,duplicates"
