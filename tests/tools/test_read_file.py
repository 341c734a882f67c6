"""read_file: numbering, ranges, paging and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools import read_file as read_file_module
from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError
from tongyi_agent.tools.read_file import read_file


def test_reads_whole_file_with_line_numbers(ctx: ToolContext) -> None:
    result = read_file(ctx, "src/pkg/core.py")
    assert result.ok
    assert result.output == "1: def add(a, b):\n2:     return a + b"
    assert result.sources == [
        SourceRef(path="src/pkg/core.py", line=1, text="def add(a, b):"),
        SourceRef(path="src/pkg/core.py", line=2, text="    return a + b"),
    ]


def test_reads_a_line_range(project: Path, ctx: ToolContext) -> None:
    (project / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    result = read_file(ctx, "long.txt", start_line=3, end_line=4)
    assert result.output.splitlines() == ["3: line 3", "4: line 4", "[showing lines 3-4 of 10]"]
    assert [s.line for s in result.sources] == [3, 4]
    # end_line past the end is clamped, not an error.
    assert read_file(ctx, "long.txt", start_line=9, end_line=99).output.splitlines()[:2] == [
        "9: line 9", "10: line 10"]


def test_pages_long_files(project: Path, ctx: ToolContext) -> None:
    (project / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 1001)))
    first = read_file(ctx, "long.txt")
    lines = first.output.splitlines()
    assert lines[0] == "1: line 1"
    assert lines[-2] == "400: line 400"
    assert lines[-1] == ("[truncated: showing lines 1-400 of 1000; "
                         "call read_file with start_line=401 to continue]")
    assert len(first.sources) == 400
    second = read_file(ctx, "long.txt", start_line=401)
    assert second.output.splitlines()[0] == "401: line 401"
    assert "start_line=801" in second.output
    last = read_file(ctx, "long.txt", start_line=801)
    assert last.output.splitlines()[-2:] == ["1000: line 1000", "[showing lines 801-1000 of 1000]"]
    assert "truncated" not in last.output


def test_character_cap_also_pages(project: Path, ctx: ToolContext,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_file_module, "MAX_CHARS", 100)
    (project / "wide.txt").write_text("".join(f"{'x' * 40}\n" for _ in range(5)))
    result = read_file(ctx, "wide.txt")
    assert len(result.sources) == 2
    assert result.output.endswith("call read_file with start_line=3 to continue]")


def test_single_huge_line_is_cut_but_shown(project: Path, ctx: ToolContext) -> None:
    (project / "min.js").write_text("y" * 50_000 + "\nnext\n")
    result = read_file(ctx, "min.js")
    first = result.output.splitlines()[0]
    assert first.startswith("1: yyy") and first.endswith("[... line cut]")
    assert len(result.output) < 20_000


def test_decodes_invalid_utf8_with_replacement(project: Path, ctx: ToolContext) -> None:
    (project / "latin.txt").write_bytes(b"caf\xe9\n")
    assert read_file(ctx, "latin.txt").output == "1: caf\ufffd"


def test_empty_file(project: Path, ctx: ToolContext) -> None:
    (project / "empty.txt").write_text("")
    result = read_file(ctx, "empty.txt")
    assert result.ok
    assert result.output == "empty.txt is empty"


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("missing.txt", {}, "no such file"),
        ("src", {}, "is a folder"),
        ("../x.txt", {}, "outside the project root"),
        ("README.md", {"start_line": 0}, "start_line must be 1 or more"),
        ("README.md", {"start_line": 9}, "past the end of README.md, which has 2 lines"),
        ("README.md", {"start_line": 2, "end_line": 1}, "before start_line"),
    ],
)
def test_refusals(ctx: ToolContext, path: str, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ToolError, match=message):
        read_file(ctx, path, **kwargs)


def test_refuses_binary(project: Path, ctx: ToolContext) -> None:
    (project / "logo.png").write_bytes(b"\x89PNG\r\n\0\0")
    with pytest.raises(ToolError, match="binary file"):
        read_file(ctx, "logo.png")


def test_refuses_symlink_to_outside(project: Path, ctx: ToolContext) -> None:
    secret = project.parent / "secret.txt"
    secret.write_text("password")
    (project / "link.txt").symlink_to(secret)
    with pytest.raises(ToolError, match="outside the project root"):
        read_file(ctx, "link.txt")


def test_absolute_path_inside_root(project: Path, ctx: ToolContext) -> None:
    result = read_file(ctx, str(project / "README.md"))
    assert result.sources[0].path == "README.md"


CHANGELOG = """\
Changelog
=========

25.0 - 2025-04-19
~~~~~~~~~~~~~~~~~

* PEP 751: Add support for extras and dependency groups (:issue:`885`)
* Fix a crash on empty versions (:issue:`880`)

24.2 - 2024-11-08
~~~~~~~~~~~~~~~~~

* PEP 639: Implement License-Expression
* Normalize license names
* Drop Python 3.7
"""


def test_a_document_page_names_each_section_with_its_list_items(project: Path, ctx: ToolContext) -> None:
    (project / "CHANGELOG.rst").write_text(CHANGELOG)
    page = read_file(ctx, "CHANGELOG.rst", start_line=4, end_line=15).output.splitlines()
    assert page[0] == '[CHANGELOG.rst, section "25.0 - 2025-04-19", 2 list items:]'
    assert page[1] == "4: 25.0 - 2025-04-19"
    second = '[CHANGELOG.rst, section "24.2 - 2024-11-08", 3 list items:]'
    assert page[page.index(second) + 1] == "10: 24.2 - 2024-11-08"
    # The named lines are not lines of the file: sources stay the file's own lines.
    assert [s.line for s in read_file(ctx, "CHANGELOG.rst", start_line=4, end_line=15).sources] == list(range(4, 16))


def test_a_page_starting_inside_a_section_opens_with_its_name(project: Path, ctx: ToolContext) -> None:
    (project / "CHANGELOG.rst").write_text(CHANGELOG)
    page = read_file(ctx, "CHANGELOG.rst", start_line=13, end_line=14).output.splitlines()
    assert page == ['[CHANGELOG.rst, section "24.2 - 2024-11-08", 3 list items:]',
                    "13: * PEP 639: Implement License-Expression", "14: * Normalize license names",
                    "[showing lines 13-14 of 15]"]


def test_code_pages_carry_no_section_lines(project: Path, ctx: ToolContext) -> None:
    (project / "mod.py").write_text("def a():\n    return 1\n\n\nclass B:\n    pass\n")
    assert not any(line.startswith("[") for line in read_file(ctx, "mod.py").output.splitlines())
