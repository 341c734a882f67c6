"""Computed corrections: the run_python program a question asks for, kept when it prints the known answer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tongyi_agent.learn.computations import asked_operations, programs
from tongyi_agent.learn.corrections import Reference, find_correction

LONG = ("date,metric,value\n2024-01-02,latency_ms,301.5\n2024-01-02,samples,40\n2024-01-09,latency_ms,188.0\n"
        "2024-01-09,samples,31\n2024-01-16,latency_ms,240.2\n2024-01-16,samples,52\n")
MEAN = ("What is the mean of the latency_ms values in project Plover's measurements (data/plover.csv), "
        "rounded to 1 decimal place?")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "world"
    (root / "data").mkdir(parents=True)
    (root / "data" / "plover.csv").write_text(LONG)
    (root / "data" / "heron_runs.tsv").write_text("run\tyield_pct\tsamples\nr1\t88.5\t12\nr2\t91.0\t\nr3\t84.1\t9\n")
    return root


def test_a_mean_over_a_long_table_is_computed_in_the_sandbox(folder: Path) -> None:
    found = find_correction(MEAN, folder, Reference("243.2"))  # (301.5 + 188.0 + 240.2) / 3 = 243.23
    assert found is not None and found.tool == "run_python"
    assert "243.2" in found.observation and "exit status: 0" in found.observation  # the sandbox's real output
    assert found.cited.path == "data/plover.csv"  # the file the program opened (the sandbox's access log)
    assert found.answer == "243.2 (data/plover.csv)"
    assert "row['metric'] == 'latency_ms'" in found.arguments["code"]
    assert "round(sum(values) / len(values), 1)" in found.arguments["code"]


def test_a_column_of_a_table_named_by_its_subject_gives_integers_and_skips_empty_cells(folder: Path) -> None:
    # No path in the question: the table whose path holds the name "Heron"; "samples" is a column here.
    found = find_correction("What is the total of the samples column for project Heron?", folder, Reference("21"))
    assert found is not None and found.cited.path == "data/heron_runs.tsv"
    assert "stdout:\n21\n" in found.observation  # int(), not 21.0; the empty cell is left out
    highest = find_correction("What is the highest yield_pct recorded for project Heron?", folder, Reference("91.0"))
    assert highest is not None and "max(values)" in highest.arguments["code"]


def test_only_the_operation_the_question_names_is_tried(folder: Path) -> None:
    # 301.5 is the highest latency, but the question asks for the mean: no program prints it.
    assert find_correction(MEAN, folder, Reference("301.5")) is None
    assert [op.name for op in asked_operations("How many samples readings are there?")] == ["count"]
    assert asked_operations("Who leads project Plover?") == []


def test_no_program_for_a_question_with_a_condition_or_without_a_named_column(folder: Path) -> None:
    # Counting all three readings would print 3, which is also how many ... here exceed 100 by chance.
    assert find_correction("How many latency_ms readings in project Plover's measurements (data/plover.csv) "
                           "exceed 100 ms?", folder, Reference("3")) is None
    assert list(programs("What is the mean reading in data/plover.csv?", folder, [])) == []
    assert list(programs("What is the mean of the latency_ms values in data/missing.csv?", folder, [])) == []


def test_names_from_the_folder_enter_the_program_only_as_string_literals(tmp_path: Path) -> None:
    """The folder is untrusted: a file name built to break out of a string must stay a string."""
    root = tmp_path / "world"
    (root / "data").mkdir(parents=True)
    hostile = "plover');print('injected');open('x"
    (root / "data" / f"{hostile}.csv").write_text(LONG)
    codes = list(programs("What is the highest latency_ms value for project Plover?", root, ["Plover"]))
    assert codes
    for code in codes:
        opened = [node for node in ast.walk(ast.parse(code))
                  if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open"]
        assert [call.args[0].value for call in opened] == [f"data/{hostile}.csv"]  # type: ignore[attr-defined]
        calls = {getattr(n.func, "id", getattr(n.func, "attr", None)) for n in ast.walk(ast.parse(code))
                 if isinstance(n, ast.Call)}
        assert calls <= {"open", "list", "DictReader", "float", "int", "print", "max", "strip"}
    found = find_correction("What is the highest latency_ms value for project Plover?", root, Reference("301.5"))
    assert found is not None and "injected" not in found.observation
