"""Computed corrections: a short program that prints a known answer no file states.

"What is the mean of the latency_ms values in project Bittern's measurements (data/bittern_...csv)?"
has an answer only a computation gives, so a correction cannot be a search hit (learn/corrections.py)
and the small model, which mostly guesses such numbers, never had one right to copy. For such a
question the memory writes the program a careful analyst would: read the table the question names,
take the values of the column (or the metric in a long-format table) the question names, apply the
operation the question asks for (mean, highest, sum, how many, ...), print it. The program runs in
the product's own sandbox (tools/run_python.py); it is kept only when what it printed holds the known
answer, so the example shows a real call with a real result.

Only operations the question names are tried, so a coincidence (a sum that happens to equal the mean
asked for) cannot teach the wrong operation; and a question with a condition ("readings that exceed
the alert threshold") gets none, since the program would count them all (a count of all six readings
matched "six exceed it" in one world). Strings taken from the folder (its paths, column names
and cell values, which are untrusted) enter the program only as Python literals (``repr``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tongyi_agent.tools.walk import iter_files

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
MAX_TABLE_BYTES = 1_000_000  # a table read whole to plan the program; bigger ones are left alone
MAX_PROGRAMS = 8  # programs run per correction

_CONDITION = re.compile(r"\b(exceed\w*|above|below|over|under|greater|less|more than|fewer|at least|at most|"
                        r"between|except|excluding|without|where|whose|which|that)\b", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Operation:
    """An aggregate a question can ask for: the words that ask for it and the expression computing it."""

    name: str
    words: tuple[str, ...]
    expression: str  # over ``values``; {decimals} is filled in for a rounded result


OPERATIONS = (
    Operation("mean", ("mean", "average"), "round(sum(values) / len(values), {decimals})"),
    Operation("median", ("median",), "statistics.median(values)"),
    Operation("max", ("highest", "maximum", "largest", "max", "peak"), "max(values)"),
    Operation("min", ("lowest", "minimum", "smallest", "min"), "min(values)"),
    Operation("sum", ("sum", "total"), "sum(values)"),
    Operation("count", ("how many", "count", "number of"), "len(values)"),
)


@dataclass(frozen=True)
class Selection:
    """Which cells of a table are the values: a column, or a value column in the rows of one metric."""

    column: str
    integers: bool
    key: str | None = None  # a long-format table: the column naming the metric ...
    metric: str | None = None  # ... and the metric the question names


def programs(question: str, root: Path, names: list[str]) -> Iterator[str]:
    """The programs that may compute ``question``'s answer in ``root``, most likely first; ``names``
    are the question's names, which pick a table when the question gives no path."""
    operations = asked_operations(question)
    if not operations or _CONDITION.search(question):
        return
    decimals = _decimals(question)
    count = 0
    for table in _tables(question, root, names):
        relative = table.relative_to(root).as_posix()
        for selection in _selections(question, table):
            for operation in operations:
                yield _program(relative, TABLE_SUFFIXES[table.suffix.lower()], selection, operation, decimals)
                count += 1
                if count >= MAX_PROGRAMS:
                    return


def asked_operations(question: str) -> list[Operation]:
    """The operations whose words the question uses ("the highest ..." -> max)."""
    text = " " + " ".join(re.findall(r"[a-z]+", question.lower())) + " "
    return [op for op in OPERATIONS if any(f" {word} " in text for word in op.words)]


def _decimals(question: str) -> int:
    found = re.search(r"(\d+) decimal", question)
    return int(found.group(1)) if found else 2


def _tables(question: str, root: Path, names: list[str]) -> list[Path]:
    """Tables the question names by path, else tables whose path holds one of its names ("Bittern")."""
    top = root.resolve()
    named: list[Path] = []
    for token in re.findall(r"[\w./-]+\.\w+", question):
        candidate = (top / token).resolve()
        if candidate.is_relative_to(top) and candidate.is_file() and candidate.suffix.lower() in TABLE_SUFFIXES:
            named.append(candidate)
    if named:
        return [t for t in named if t.stat().st_size <= MAX_TABLE_BYTES]
    words = {w.lower() for w in names}
    return [f for f in iter_files(top, top)
            if f.suffix.lower() in TABLE_SUFFIXES and f.stat().st_size <= MAX_TABLE_BYTES
            and words & set(re.split(r"[^a-z0-9]+", f.relative_to(top).as_posix().lower()))]


def _selections(question: str, table: Path) -> list[Selection]:
    """The value selections the question names: a numeric column by name, or a metric named in a
    text column (a long table of date, metric, value) with the numeric column beside it."""
    try:
        with table.open(encoding="utf-8", newline="") as handle:
            read = list(csv.DictReader(handle, delimiter=TABLE_SUFFIXES[table.suffix.lower()]))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not read:
        return []
    columns = [c for c in read[0] if isinstance(c, str)]
    # Cells stripped once; a missing cell is empty. (The program itself reads the table as it is.)
    rows = [{c: (r.get(c) or "").strip() for c in columns} for r in read]
    numeric = [c for c in columns if all(_NUMBER.fullmatch(r[c]) for r in rows if r[c]) and any(r[c] for r in rows)]
    words = set(re.findall(r"[\w-]+", question.lower()))
    found: list[Selection] = []
    for column in numeric:
        if column.lower() in words:
            found.append(Selection(column, _integers(rows, column)))
    for key in (c for c in columns if c not in numeric):
        metrics = sorted({r[key] for r in rows} - {""})
        for metric in (m for m in metrics if m.lower() in words):
            chosen = [r for r in rows if r[key] == metric]
            found += [Selection(column, _integers(chosen, column), key, metric) for column in numeric]
    return found


def _integers(rows: list[dict[str, str]], column: str) -> bool:
    return all(_INTEGER.fullmatch(r[column]) for r in rows if r[column])


def _program(path: str, delimiter: str, selection: Selection, operation: Operation, decimals: int) -> str:
    convert = "int" if selection.integers else "float"
    cell = f"row[{selection.column!r}]"
    where = f"{cell}.strip()" if selection.key is None else f"row[{selection.key!r}] == {selection.metric!r}"
    delimiter_argument = "" if delimiter == "," else f", delimiter={delimiter!r}"
    lines = ["import csv"] + (["import statistics"] if "statistics." in operation.expression else []) + [
        "",
        f"with open({path!r}, newline='') as handle:",
        f"    rows = list(csv.DictReader(handle{delimiter_argument}))",
        f"values = [{convert}({cell}) for row in rows if {where}]",
        f"print({operation.expression.format(decimals=decimals)})",
    ]
    return "\n".join(lines) + "\n"
