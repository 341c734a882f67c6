"""clean_csv: sniffing, each operation, preview versus write, and where it may write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.tools.base import SourceRef, Tool, ToolContext, ToolError
from tongyi_agent.tools.clean_csv import clean_csv


def _rows(output: str) -> list[str]:
    """The preview rows (header included) at the end of the output."""
    return output.split("after cleaning:\n", 1)[1].splitlines()


def test_sniffs_semicolons_and_utf8_bom(project: Path, ctx: ToolContext) -> None:
    (project / "bom.csv").write_bytes("\ufeffname;city\nZoë;Köln\n".encode())
    output = clean_csv(ctx, "bom.csv").output
    assert "(utf-8-sig, semicolon delimiter, with header row, 1 data rows)" in output
    assert _rows(output) == ["name;city", "Zoë;Köln"]


def test_falls_back_to_latin1_and_says_so(project: Path, ctx: ToolContext) -> None:
    (project / "old.csv").write_bytes("name\tcity\nJosé\tMálaga\n".encode("latin-1"))
    output = clean_csv(ctx, "old.csv").output
    assert "(latin-1, tab delimiter" in output
    assert _rows(output)[1] == "José\tMálaga"


def test_trim_and_dedupe_by_default_preview_writes_nothing(project: Path, ctx: ToolContext) -> None:
    original = "name,team\n Ann ,red\nBob,blue\nAnn,red\nBob,blue\n"
    (project / "people.csv").write_text(original)
    before = set(project.rglob("*"))
    result = clean_csv(ctx, "people.csv")
    assert "trim: 1 cell(s) changed" in result.output
    assert "dedupe: 2 duplicate row(s) removed" in result.output  # " Ann " matches "Ann" once trimmed
    assert "preview only: nothing written" in result.output
    assert _rows(result.output) == ["name,team", "Ann,red", "Bob,blue"]
    assert (project / "people.csv").read_text() == original
    assert set(project.rglob("*")) == before
    assert result.sources == [SourceRef(path="people.csv")]


def test_dates_converted_when_the_order_is_clear(project: Path, ctx: ToolContext) -> None:
    (project / "d.csv").write_text("id,eu,us,text,iso\n"
                                   "1,25/12/2026,12/25/2026,3 Nov 2026,2026/1/5\n"
                                   "2,01/02/2026,02/01/2026,\"November 4, 2026\",2026-01-06 09:30\n")
    output = clean_csv(ctx, "d.csv", operations="dates").output
    assert _rows(output)[1:] == ["1,2026-12-25,2026-12-25,2026-11-03,2026-01-05",
                                 "2,2026-02-01,2026-02-01,2026-11-04,2026-01-06T09:30"]
    assert "column 'eu': numeric dates read as day/month/year" in output
    assert "column 'us': numeric dates read as month/day/year" in output


def test_ambiguous_dates_are_reported_not_guessed(project: Path, ctx: ToolContext) -> None:
    (project / "amb.csv").write_text("id,when\n1,03/04/2026\n2,05/06/2026\n")
    output = clean_csv(ctx, "amb.csv", operations="dates").output
    assert "column 'when': dates could be day/month or month/day" in output
    assert _rows(output)[1:] == ["1,03/04/2026", "2,05/06/2026"]


def test_numbers_strip_separators_and_currency(project: Path, ctx: ToolContext) -> None:
    (project / "n.csv").write_text('item,usd,eur,note\n'
                                   'a,"$1,234.50","1.234,50 €",ok\n'
                                   'b,(200),"12,5",fine\n'
                                   'c,"USD 3,000",7,good\n')
    output = clean_csv(ctx, "n.csv", operations="numbers").output
    assert _rows(output)[1:] == ["a,1234.50,1234.50,ok", "b,-200,12.5,fine", "c,3000,7,good"]
    assert "numbers: 5 cell(s) changed in 'usd' (3), 'eur' (2)" in output  # "7" was already plain


def test_numbers_leave_text_columns_alone(project: Path, ctx: ToolContext) -> None:
    # Only 1 of 4 values is numeric: the column is text, so "1,000" stays as written.
    (project / "t.csv").write_text("code\nalpha\nbeta\n\"1,000\"\ngamma\n")
    output = clean_csv(ctx, "t.csv", operations="numbers").output
    assert "numbers: 0 cell(s) changed" in output
    assert '"1,000"' in output


def test_empty_drops_blank_rows_and_columns(project: Path, ctx: ToolContext) -> None:
    (project / "e.csv").write_text("a,b,c\n1,,x\n,,\n2,,y\n")
    output = clean_csv(ctx, "e.csv", operations="empty").output
    assert "empty: 1 empty row(s) dropped, 1 empty column(s) dropped (b)" in output
    assert _rows(output) == ["a,c", "1,x", "2,y"]


def test_unknown_operation_lists_the_valid_ones(project: Path, ctx: ToolContext) -> None:
    (project / "x.csv").write_text("a\n1\n")
    with pytest.raises(ToolError) as info:
        clean_csv(ctx, "x.csv", operations="trim,sort")
    assert str(info.value) == "unknown operation(s) sort; valid operations: trim, empty, numbers, dates, dedupe"


def test_writes_only_with_output_and_only_inside_the_root(project: Path, ctx: ToolContext) -> None:
    (project / "w.csv").write_text("a,b\n 1 ,2\n1,2\n")
    result = clean_csv(ctx, "w.csv", output="out/clean.csv")
    assert (project / "out" / "clean.csv").read_text() == "a,b\n1,2\n"
    assert "wrote 1 data rows to out/clean.csv" in result.output
    assert SourceRef(path="out/clean.csv") in result.sources

    with pytest.raises(ToolError, match="outside the project root"):
        clean_csv(ctx, "w.csv", output="../escape.csv")
    assert not (project.parent / "escape.csv").exists()
    with pytest.raises(ToolError, match="already exists"):
        clean_csv(ctx, "w.csv", output="README.md")
    assert (project / "README.md").read_text().startswith("# Demo")

    clean_csv(ctx, "w.csv", output="w.csv")  # overwriting the input must be asked for by name
    assert (project / "w.csv").read_text() == "a,b\n1,2\n"


def test_refuses_missing_binary_and_empty_files(project: Path, ctx: ToolContext) -> None:
    (project / "bin.csv").write_bytes(b"a,b\x00\x01")
    (project / "empty.csv").write_text("")
    for path, message in [("nope.csv", "no such file"), ("bin.csv", "binary"), ("empty.csv", "empty")]:
        with pytest.raises(ToolError, match=message):
            clean_csv(ctx, path)


def test_schema() -> None:
    schema = Tool.from_function(clean_csv, writes=True)
    assert schema.writes
    assert schema.parameters["required"] == ["path"]
    assert schema.parameters["properties"]["output"]["type"] == ["string", "null"]
