"""search_files: word and regex matching, ranking, context and caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools import search_files as search_module
from tongyi_agent.tools.base import ToolContext, ToolError
from tongyi_agent.tools.search_files import search_files


@pytest.fixture
def notes(project: Path) -> Path:
    (project / "notes.txt").write_text(
        "intro line\n"
        "the cache is fast\n"
        "after cache\n"
        "cache eviction uses LRU order\n"
        "last line\n"
    )
    return project


def test_ranks_lines_by_distinct_words_matched(notes: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, "how does the cache eviction work")
    assert result.ok
    lines = [s.line for s in result.sources]
    # Line 4 matches "cache" and "eviction"; the others only "cache", in file order.
    assert lines == [4, 2, 3]
    assert all(s.path == "notes.txt" for s in result.sources)
    assert result.sources[0].text == "cache eviction uses LRU order"


def test_output_marks_hits_and_context(notes: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, "eviction")
    assert result.output == (
        "notes.txt-3- after cache\n"
        "notes.txt:4: cache eviction uses LRU order\n"
        "notes.txt-5- last line"
    )


def test_context_at_file_edges(notes: Path, ctx: ToolContext) -> None:
    first = search_files(ctx, "intro").output.splitlines()
    assert first == ["notes.txt:1: intro line", "notes.txt-2- the cache is fast"]


def test_matching_is_case_insensitive(notes: Path, ctx: ToolContext) -> None:
    assert [s.line for s in search_files(ctx, "lru").sources] == [4]


def test_regex_outranks_word_matches(notes: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, r"uses\s+lru")
    assert result.sources[0].line == 4
    result = search_files(ctx, r"^af\w+ cache$")
    assert result.sources[0].line == 3


def test_invalid_regex_falls_back_to_words(notes: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, "eviction(")
    assert [s.line for s in result.sources] == [4]


def test_only_short_words_search_the_literal_text(project: Path, ctx: ToolContext) -> None:
    (project / "langs.txt").write_text("we use C# here\nand go there\n")
    assert [s.line for s in search_files(ctx, "C#").sources] == [1]


def test_ranking_across_files_breaks_ties_by_path(project: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, "agent")
    # The hits in rank order, then the section header shown above README.md's hit ("# Demo").
    assert [(s.path, s.line) for s in result.sources] == [("README.md", 2), ("docs/guide.md", 2), ("README.md", 1)]


def test_path_limits_the_search(notes: Path, ctx: ToolContext) -> None:
    result = search_files(ctx, "agent", path="docs")
    assert [s.path for s in result.sources] == ["docs/guide.md"]
    result = search_files(ctx, "agent", path="README.md")
    assert {s.path for s in result.sources} == {"README.md"}


def test_no_hits_suggest_list_files(ctx: ToolContext) -> None:
    result = search_files(ctx, "kubernetes")
    assert result.ok
    assert result.sources == []
    assert "no matches under" in result.output
    # Not echoed: a made-up id the model searches for must not then appear in a tool result.
    assert "kubernetes" not in result.output
    assert "list_files" in result.output


def test_caps_hits_and_says_how_many_more(project: Path, ctx: ToolContext,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module, "MAX_HITS", 3)
    (project / "many.txt").write_text("".join(f"token {n}\n" for n in range(10)))
    result = search_files(ctx, "token")
    assert len(result.sources) == 3
    assert result.output.endswith("... 7 more matching lines; use more specific words or a path")


def test_skips_ignored_and_binary_files(project: Path, ctx: ToolContext) -> None:
    (project / ".gitignore").write_text("secret.txt\n")
    (project / "secret.txt").write_text("needle\n")
    (project / "data.bin").write_bytes(b"needle\0\0")
    (project / "node_modules").mkdir()
    (project / "node_modules" / "lib.js").write_text("needle\n")
    assert search_files(ctx, "needle").sources == []


def test_does_not_follow_links_out_of_root(project: Path, ctx: ToolContext) -> None:
    outside = project.parent / "outside"
    outside.mkdir()
    (outside / "leak.txt").write_text("needle\n")
    (project / "leak.txt").symlink_to(outside / "leak.txt")
    (project / "leakdir").symlink_to(outside, target_is_directory=True)
    assert search_files(ctx, "needle").sources == []


def test_bad_requests_are_errors(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="query is empty"):
        search_files(ctx, "   ")
    with pytest.raises(ToolError, match="outside the project root"):
        search_files(ctx, "x", path="/etc")



def test_missing_folder_searches_whole_root_with_note(ctx: ToolContext) -> None:
    result = search_files(ctx, "install", path="missing")
    assert result.output.startswith("Note: 'missing' does not exist; searched the whole project instead.")
    assert result.sources  # hits from the root follow the note


async def test_tools_run_through_the_registry(notes: Path, ctx: ToolContext) -> None:
    from tongyi_agent.tools import default_registry

    registry = default_registry()
    ok = await registry.run("read_file", {"path": "notes.txt", "start_line": "2", "end_line": 2}, ctx)
    assert ok.ok
    assert ok.output.startswith("2: the cache is fast")
    refused = await registry.run("read_file", {"path": "../../etc/passwd"}, ctx)
    assert not refused.ok
    assert refused.output.startswith("Error: path '../../etc/passwd' is outside the project root")


def test_line_in_file_about_the_subject_ranks_first(tmp_path: Path) -> None:
    (tmp_path / "billing.md").write_text("# Billing\n- Listens on port 8443.\n")
    (tmp_path / "search.md").write_text("# Search service\n- Listens on port 9200.\n")
    result = search_files(ToolContext(root=tmp_path), "search service port")
    # search.md's port line matches "port" itself and "search service" in its heading: it comes first.
    assert [s.label() for s in result.sources] == ["search.md:2", "search.md:1", "billing.md:2", "billing.md:1"]
