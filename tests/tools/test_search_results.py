"""search_files output: hits grouped under their section's header lines, each line shown once."""

from __future__ import annotations

import shutil
from pathlib import Path

from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.search_files import search_files
from tongyi_agent.tools.search_results import Hit, render_hits, section_count, section_place, table_header

REAL_DOCS = Path(__file__).resolve().parents[2] / "benchmarks" / "real_docs" / "docs"

CHANGES = """\
Changelog
=========

2.1.0 (2025-03-02)
------------------

- Added the retry budget.
- Fixed a leak in the retry loop.
- Fixed the retry delay rounding.

2.0.0 (2024-11-30)
------------------

- Dropped Python 3.8.
- Fixed a retry crash.
"""


def test_hits_in_one_section_share_one_header_and_adjacent_context_shows_once(tmp_path: Path) -> None:
    (tmp_path / "CHANGES.rst").write_text(CHANGES)
    result = search_files(ToolContext(root=tmp_path), "retry")
    first, second = result.output.split("\n--\n")
    # Lines 7-9 are adjacent hits: their context windows overlap, yet every line appears once.
    assert first.splitlines() == [
        '[CHANGES.rst, section "2.1.0 (2025-03-02)", 3 list items:]',
        "CHANGES.rst:7: - Added the retry budget.",
        "CHANGES.rst:8: - Fixed a leak in the retry loop.",
        "CHANGES.rst:9: - Fixed the retry delay rounding.",
        '[whole section: read_file(path="CHANGES.rst", start_line=4, end_line=9)]',
    ]
    assert second.splitlines() == [
        '[CHANGES.rst, section "2.0.0 (2024-11-30)", 2 list items:]',
        "CHANGES.rst-14- - Dropped Python 3.8.",
        "CHANGES.rst:15: - Fixed a retry crash.",
        '[whole section: read_file(path="CHANGES.rst", start_line=11, end_line=15)]',
    ]
    # The header lines are returned text too, so answers can cite them.
    assert [s.label() for s in result.sources][-2:] == ["CHANGES.rst:4", "CHANGES.rst:11"]


def test_the_hint_reads_exactly_the_section(tmp_path: Path) -> None:
    from tongyi_agent.tools.read_file import read_file

    (tmp_path / "CHANGES.rst").write_text(CHANGES)
    ctx = ToolContext(root=tmp_path)
    assert "start_line=11, end_line=15" in search_files(ctx, "crash").output
    page = read_file(ctx, "CHANGES.rst", start_line=11, end_line=15).output.splitlines()
    # The page names the section as the search did, then shows it whole.
    assert page[0] == '[CHANGES.rst, section "2.0.0 (2024-11-30)", 2 list items:]'
    assert page[1] == "11: 2.0.0 (2024-11-30)" and page[-2] == "15: - Fixed a retry crash."


def test_gaps_inside_a_section_are_marked(tmp_path: Path) -> None:
    body = "\n".join(f"- change {n}" for n in range(1, 9))
    (tmp_path / "NEWS.md").write_text(f"## 3.0 - 2025-01-05\n- special first\n{body}\n- special again\n")
    lines = search_files(ToolContext(root=tmp_path), "special").output.splitlines()
    # Lines 2 and 11 are hits; the lines between their context windows are left out, and marked.
    assert lines[:5] == ['[NEWS.md, section "3.0 - 2025-01-05", 10 list items:]', "NEWS.md:2: - special first",
                         "NEWS.md-3- - change 1", "...", "NEWS.md-10- - change 8"]
    assert lines[5] == "NEWS.md:11: - special again"


def test_csv_rows_come_under_the_header_row(tmp_path: Path) -> None:
    (tmp_path / "budget.csv").write_text("team,quarter,budget_eur\npayments,Q3,125000\ndiscovery,Q3,98000\n")
    output = search_files(ToolContext(root=tmp_path), "discovery").output
    assert output.splitlines()[0] == '[budget.csv, section "team,quarter,budget_eur":]'
    assert "budget.csv:3: discovery,Q3,98000" in output


def test_python_hit_shows_its_function_signature(tmp_path: Path) -> None:
    code = "def convert(rate):\n    '''Convert money.'''\n\n    total = 0\n    total += rate * 1.19\n    return total\n"
    (tmp_path / "money.py").write_text(code)
    output = search_files(ToolContext(root=tmp_path), "1.19").output
    assert output.splitlines()[0] == '[money.py, section "def convert(rate):":]'
    assert '[whole section: read_file(path="money.py", start_line=1, end_line=6)]' in output


def test_real_changelog_hit_carries_its_release_header(tmp_path: Path) -> None:
    shutil.copytree(REAL_DOCS / "urllib3", tmp_path / "urllib3")
    output = search_files(ToolContext(root=tmp_path), "HTTPResponse.shutdown connection already released").output
    block = output.split("\n--\n")[0].splitlines()
    # The version and date are in the entry's header, the hit is under its Bugfixes subsection.
    assert block[0] == '[urllib3/CHANGES.rst, section "2.5.0 (2025-06-18) > Bugfixes", 4 list items:]'
    assert any(line.startswith("urllib3/CHANGES.rst:20:") for line in block)
    assert block[-1] == '[whole section: read_file(path="urllib3/CHANGES.rst", start_line=12, end_line=21)]'


def test_a_version_in_the_query_counts_as_a_word(tmp_path: Path) -> None:
    (tmp_path / "CHANGES.rst").write_text(CHANGES)
    # "3.8" used to split into "3" and "8", too short to count: every "python" line tied.
    (tmp_path / "NOTES.md").write_text("# Notes\n\nPython is used for scripts.\n")
    result = search_files(ToolContext(root=tmp_path), "Python 3.8")
    assert result.sources[0].label() == "CHANGES.rst:14"


def test_a_hit_on_a_heading_shows_the_first_lines_of_its_section(tmp_path: Path) -> None:
    (tmp_path / "CHANGES.rst").write_text(CHANGES)
    block = search_files(ToolContext(root=tmp_path), "2.0.0").output.split("\n--\n")[0].splitlines()
    # The heading alone says only that 2.0.0 exists; its items say what it changed. The underline
    # below the heading is not shown: it carries nothing.
    assert block == [
        '[CHANGES.rst, section "2.0.0 (2024-11-30)", 2 list items:]',
        "CHANGES.rst:11: 2.0.0 (2024-11-30)",
        "CHANGES.rst-14- - Dropped Python 3.8.",
        "CHANGES.rst-15- - Fixed a retry crash.",
        '[whole section: read_file(path="CHANGES.rst", start_line=11, end_line=15)]',
    ]


def test_list_items_count_the_sections_own_top_level_items(tmp_path: Path) -> None:
    news = ("# Changelog\n\n## 1.1 - 2025-02-01\n\nIntro line.\n\n- first\n  - a detail, not an item\n"
            "  continued\n* second\n3. third\n\n### Security\n\n- in a subsection\n")
    (tmp_path / "NEWS.md").write_text(news)
    lines = search_files(ToolContext(root=tmp_path), "intro").output.splitlines()
    # Nested bullets and the subsection's items are not the section's own items.
    assert lines[0] == '[NEWS.md, section "1.1 - 2025-02-01", 3 list items:]'
    (tmp_path / "tool.py").write_text("def items():\n    - 1\n    - 2\n")
    code = search_files(ToolContext(root=tmp_path), "items", path="tool.py").output
    assert code.splitlines()[0] == '[tool.py, section "def items():":]'  # code has no list items


def test_words_in_the_headings_above_a_line_rank_it(tmp_path: Path) -> None:
    shutil.copytree(REAL_DOCS / "urllib3", tmp_path / "urllib3")
    shutil.copytree(REAL_DOCS / "requests", tmp_path / "requests")
    output = search_files(ToolContext(root=tmp_path), "Bugfixes urllib3 2.5.0").output
    # requests' "Many, many urllib3 bugfixes" matches two words on its own line; urllib3's
    # Bugfixes heading matches one, and 2.5.0 and urllib3 in its entry's heading and path.
    first = output.split("\n--\n")[0].splitlines()
    assert first[0] == '[urllib3/CHANGES.rst, section "2.5.0 (2025-06-18) > Bugfixes", 4 list items:]'


def test_a_section_line_gives_its_file_name_and_count() -> None:
    line = '[urllib3/CHANGES.rst, section "2.4.0 (2025-04-10) > Features", 3 list items:]'
    assert section_place(line) == ("urllib3/CHANGES.rst", "2.4.0 (2025-04-10) > Features")
    assert section_count(line) == ("2.4.0 (2025-04-10) > Features", 3)
    plain = '[notes/a, b.md, section "Q3, planning":]'  # commas in the path and the name
    assert section_place(plain) == ("notes/a, b.md", "Q3, planning") and section_count(plain) is None
    assert section_place("urllib3/CHANGES.rst:24: 2.4.0 (2025-04-10)") is None


def test_a_table_row_hit_shows_its_tables_header_row() -> None:
    lines = ["# Staff", "", "| Name | Role |", "| --- | --- |", "| Ada | Director |", "| Bo | Technician |", "",
             "| not | a table |"]
    assert table_header(lines, 6) == 3 and table_header(lines, 5) == 3
    assert table_header(lines, 3) is None and table_header(lines, 1) is None  # the header itself, prose
    assert table_header(lines, 8) is None  # no separator row under it: not a Markdown table
    blocks, sources = render_hits([Hit("staff.md", 6, lines)])
    assert "staff.md-3- | Name | Role |" in blocks[0] and "staff.md:6: | Bo | Technician |" in blocks[0]
    assert any(s.line == 3 for s in sources)  # the header row can be cited
