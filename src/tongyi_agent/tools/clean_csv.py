"""clean_csv: tidy a CSV file, previewing the changes unless asked to write them.

A writing tool: register it with `Tool.from_function(clean_csv, writes=True)`. Without `output` it only
previews (what each operation would change, plus the first rows after cleaning). With `output` it
writes the cleaned table there, under the project root. Overwrite rules: a new file may be created
(parent folders too); the input itself may be overwritten only by naming it explicitly as `output`;
any other existing file is refused, so a model cannot clobber unrelated files.

Operations always run in a fixed order, whatever order they are listed in: trim, empty, numbers,
dates, dedupe. Trimming first lets " a" and "a" count as duplicates; dedupe last compares rows in
their final form.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.paths import relative_label, resolve_in_root

OPERATIONS = ("trim", "empty", "numbers", "dates", "dedupe")
MAX_BYTES = 20_000_000
MAX_PREVIEW_ROWS = 50
MAX_PREVIEW_CHARS = 8_000
# A column is converted only when at least this share of its non-empty values parse; a column with a
# few numbers among words is text, and converting part of it would only make it inconsistent.
COLUMN_SHARE = 0.8
SNIFF_BYTES = 64_000

Row = list[str]


@dataclass
class Table:
    header: Row | None
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def resolve_output(ctx: ToolContext, source_path: str, output: str) -> tuple[str, Path]:
    """Where to write `output`: inside the root, a new file, or the input itself named explicitly.

    Returns the citation label and the resolved path; shared with clean_markdown."""
    source = resolve_in_root(ctx.root, source_path)
    target = resolve_in_root(ctx.root, output)
    if target.is_dir():
        raise ToolError(f"output {output!r} is a folder; name a file")
    if target.exists() and target != source:
        raise ToolError(f"output {output!r} already exists; choose a new name, or pass output={source_path!r} "
                        f"to overwrite the input")
    return relative_label(ctx.root, target), target


def read_source(ctx: ToolContext, path: str, max_bytes: int, kind: str) -> tuple[str, bytes]:
    """The label and bytes of the file to clean (confined to the root); refuses missing, oversized
    and binary files."""
    file = resolve_in_root(ctx.root, path)
    if not file.is_file():
        raise ToolError(f"no such file: {path!r}; use list_files to find the right path")
    label = relative_label(ctx.root, file)
    if file.stat().st_size > max_bytes:
        raise ToolError(f"{label} is larger than {max_bytes // 1_000_000} MB; too big to clean here")
    raw = file.read_bytes()
    if b"\0" in raw[:8192]:
        raise ToolError(f"{label} is a binary file, not {kind}")
    return label, raw


def parse_operations(operations: str, valid: tuple[str, ...]) -> list[str]:
    """The requested operations, in the canonical order of `valid`; unknown names are a ToolError."""
    names = [n.strip().lower() for n in operations.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ToolError(f"unknown operation(s) {', '.join(unknown)}; valid operations: {', '.join(valid)}")
    if not names:
        raise ToolError(f"no operations given; valid operations: {', '.join(valid)}")
    return [n for n in valid if n in names]


def _decode(raw: bytes) -> tuple[str, str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # latin-1 maps every byte, so it never fails; for cp1252 exports it is right for letters.
        return raw.decode("latin-1"), "latin-1"


def _sniff(text: str) -> tuple[type[csv.Dialect] | csv.Dialect, bool, str]:
    sample = text[:SNIFF_BYTES]
    sniffer = csv.Sniffer()
    try:
        dialect: type[csv.Dialect] | csv.Dialect = sniffer.sniff(sample, delimiters=",;\t|")
        described = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(dialect.delimiter,
                                                                                  repr(dialect.delimiter))
    except csv.Error:  # one column, or too irregular to tell: the default comma dialect
        dialect, described = csv.excel, "comma (default; could not detect)"
    try:
        has_header = sniffer.has_header(sample)
    except csv.Error:
        has_header = False
    return dialect, has_header, described


def _looks_like_header(row: Row) -> bool:
    """Names, not data: every cell filled, no repeats, nothing that reads as a number or a date.

    csv.Sniffer.has_header only recognises a header above numeric columns; tables of text (names,
    dates written as text) are common, so this second test catches theirs."""
    cells = [c.strip() for c in row]
    return (bool(cells) and all(cells) and len(set(cells)) == len(cells)
            and not any(any(_number_candidates(c)) or any(_date_reads(c)) for c in cells))


# -- operations -------------------------------------------------------------------------------------


def _trim(table: Table) -> str:
    changed = 0
    for row in ([table.header] if table.header else []) + table.rows:
        for i, cell in enumerate(row):
            stripped = cell.strip()
            if stripped != cell:
                row[i] = stripped
                changed += 1
    return f"trim: {changed} cell(s) changed"


def _empty(table: Table) -> str:
    before = len(table.rows)
    table.rows = [r for r in table.rows if any(c.strip() for c in r)]
    width = max([len(r) for r in table.rows] + [len(table.header or [])], default=0)
    empty_cols = [i for i in range(width) if all(i >= len(r) or not r[i].strip() for r in table.rows)]
    names = [(table.header[i] if table.header and i < len(table.header) and table.header[i] else f"#{i + 1}")
             for i in empty_cols]
    if empty_cols:
        keep = [i for i in range(width) if i not in set(empty_cols)]
        if table.header is not None:
            table.header = [table.header[i] for i in keep if i < len(table.header)]
        table.rows = [[r[i] for i in keep if i < len(r)] for r in table.rows]
    cols = f"{len(empty_cols)} empty column(s) dropped" + (f" ({', '.join(names)})" if names else "")
    return f"empty: {before - len(table.rows)} empty row(s) dropped, {cols}"


def _dedupe(table: Table) -> str:
    seen: set[tuple[str, ...]] = set()
    kept: list[Row] = []
    for row in table.rows:
        key = tuple(row)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    removed = len(table.rows) - len(kept)
    table.rows = kept
    return f"dedupe: {removed} duplicate row(s) removed"


def _column_name(table: Table, index: int) -> str:
    if table.header and index < len(table.header) and table.header[index]:
        return repr(table.header[index])
    return f"#{index + 1}"


def _convert_columns(table: Table, parse: Callable[[list[str]], tuple[dict[str, str] | None, str]],
                     label: str) -> str:
    """Run `parse(values)` per column; it returns {old: new} for a convertible column, or None and a reason."""
    width = max((len(r) for r in table.rows), default=0)
    changed = 0
    converted: list[str] = []
    notes: list[str] = []
    for index in range(width):
        values = [r[index].strip() for r in table.rows if index < len(r) and r[index].strip()]
        if not values:
            continue
        mapping, note = parse(values)
        if note:
            notes.append(f"column {_column_name(table, index)}: {note}")
        if mapping is None:
            continue
        column_changed = 0
        for row in table.rows:
            if index < len(row) and row[index].strip() in mapping and mapping[row[index].strip()] != row[index]:
                row[index] = mapping[row[index].strip()]
                column_changed += 1
        if column_changed:
            converted.append(f"{_column_name(table, index)} ({column_changed})")
            changed += column_changed
    summary = f"{label}: {changed} cell(s) changed" + (f" in {', '.join(converted)}" if converted else "")
    return "; ".join([summary, *notes])


_CURRENCY_CODE = re.compile(r"^(USD|EUR|GBP|CHF|JPY)\s*|\s*(USD|EUR|GBP|CHF|JPY)$")
_CURRENCY_SYMBOLS = " $€£¥₹"


def _number_candidates(value: str) -> tuple[str | None, str | None]:
    """The value read with "." as decimal mark and with "," as decimal mark (None where it does not parse)."""
    core = _CURRENCY_CODE.sub("", value.strip()).strip(_CURRENCY_SYMBOLS)
    # Accounting style writes negatives in parentheses: "(1,200.00)".
    negative = core.startswith("-") or (core.startswith("(") and core.endswith(")"))
    core = core.strip("()").lstrip("-+").strip(_CURRENCY_SYMBOLS)
    core = core.replace("\u00a0", "").replace("\u202f", "").replace("'", "")  # NBSP, narrow NBSP, Swiss 1'234
    core = re.sub(r"(?<=\d) (?=\d{3}\b)", "", core)  # "1 234 567" as written in French or Swedish
    sign = "-" if negative else ""
    point = comma = None
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?|\d+(\.\d+)?", core):
        point = sign + core.replace(",", "")
    if re.fullmatch(r"\d{1,3}(\.\d{3})+(,\d+)?|\d+(,\d+)?", core):
        comma = sign + core.replace(".", "").replace(",", ".")
    return point, comma


def _parse_numbers(values: list[str]) -> tuple[dict[str, str] | None, str]:
    reads = {v: _number_candidates(v) for v in values}
    parsed = [v for v, (p, c) in reads.items() if p or c]
    if sum(1 for v in values if v in parsed) < COLUMN_SHARE * len(values):
        return None, ""
    # Which decimal mark does the column use? Values such as "1.5" or "1,234.50" can be read only one
    # way; "1,234" and "1.234" can be read both ways and follow the column's unambiguous values.
    point_only = sum(1 for p, c in reads.values() if p and not c)
    comma_only = sum(1 for p, c in reads.values() if c and not p)
    if point_only and comma_only:
        return None, "mixes decimal points and decimal commas; left unchanged"
    use_comma = comma_only > 0
    note = ""
    if not point_only and not comma_only and any(p != c for p, c in reads.values() if p and c):
        note = 'values such as "1,234" could use either decimal mark; read "," as a thousands separator'
    mapping = {v: (c if use_comma else p) or v for v, (p, c) in reads.items()}
    return mapping, note


_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
_MONTH = r"(?P<mon>[A-Za-z]{3,9})\.?"
_TIME = r"(?:[ T](?P<time>\d{1,2}:\d{2}(?::\d{2})?))?"
_ISO = re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})" + _TIME)
_NUMERIC = re.compile(r"(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})" + _TIME)
_DAY_MONTH = re.compile(r"(?P<d>\d{1,2})(?:st|nd|rd|th)?[ -]" + _MONTH + r",?[ -](?P<y>\d{4})" + _TIME)
_MONTH_DAY = re.compile(_MONTH + r" (?P<d>\d{1,2})(?:st|nd|rd|th)?,? (?P<y>\d{4})" + _TIME)


def _iso(year: int, month: int, day: int, time: str | None) -> str | None:
    try:
        text = date(year, month, day).isoformat()
    except ValueError:
        return None
    if time:
        hours, _, rest = time.partition(":")
        text += f"T{int(hours):02d}:{rest}"
    return text


def _month(name: str) -> int | None:
    """1-12 for an English month name or an abbreviation of at least three letters ("Nov", "Sept")."""
    name = name.lower()
    return next((i for i, full in enumerate(_MONTH_NAMES, start=1) if full.startswith(name)), None) \
        if len(name) >= 3 else None


def _date_reads(value: str) -> tuple[str | None, str | None]:
    """ISO text of `value` read day-first and month-first; both equal when the format is unambiguous."""
    if m := _ISO.fullmatch(value):
        iso = _iso(int(m["y"]), int(m["m"]), int(m["d"]), m["time"])
        return iso, iso
    if m := _NUMERIC.fullmatch(value):
        a, b, y = int(m["a"]), int(m["b"]), int(m["y"])
        return _iso(y, b, a, m["time"]), _iso(y, a, b, m["time"])
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        if (m := pattern.fullmatch(value)) and (month := _month(m["mon"])):
            iso = _iso(int(m["y"]), month, int(m["d"]), m["time"])
            return iso, iso
    return None, None


def _parse_dates(values: list[str]) -> tuple[dict[str, str] | None, str]:
    reads = {v: _date_reads(v) for v in values}
    if sum(1 for v in values if any(reads[v])) < COLUMN_SHARE * len(values):
        return None, ""
    day_first_ok = all(dmy for dmy, mdy in reads.values() if dmy or mdy)
    month_first_ok = all(mdy for dmy, mdy in reads.values() if dmy or mdy)
    ambiguous = any(dmy != mdy and dmy and mdy for dmy, mdy in reads.values())
    if ambiguous and day_first_ok and month_first_ok:
        # Every value could be either d/m/Y or m/d/Y (no day above 12): report, do not guess.
        return None, "dates could be day/month or month/day (no day above 12); left unchanged"
    if not day_first_ok and not month_first_ok:
        return None, "dates mix day/month and month/day order; left unchanged"
    pick = 0 if day_first_ok else 1
    note = ("numeric dates read as day/month/year" if pick == 0 else "numeric dates read as month/day/year") \
        if ambiguous or any(dmy != mdy for dmy, mdy in reads.values()) else ""
    return {v: r[pick] or v for v, r in reads.items()}, note


def _numbers(table: Table) -> str:
    return _convert_columns(table, _parse_numbers, "numbers")


def _dates(table: Table) -> str:
    return _convert_columns(table, _parse_dates, "dates")


_OPS: dict[str, Callable[[Table], str]] = {"trim": _trim, "empty": _empty, "numbers": _numbers, "dates": _dates,
                                           "dedupe": _dedupe}


# -- the tool ---------------------------------------------------------------------------------------


def _render(rows: list[Row], delimiter: str, quotechar: str, lineterminator: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quotechar=quotechar, lineterminator=lineterminator).writerows(rows)
    return buffer.getvalue()


def clean_csv(ctx: ToolContext, path: str, operations: str = "trim,dedupe", output: str | None = None,
              preview_rows: int = 10) -> ToolResult:
    """Clean a CSV file: shows what would change and a preview; writes only when output is given.

    Operations: trim (strip spaces around cells), dedupe (drop repeated rows), dates (to ISO 8601),
    numbers (drop thousands separators and currency signs, decimal comma to point), empty (drop empty
    rows and columns).

    Args:
        path: CSV file relative to the project root
        operations: comma-separated operation names, e.g. "trim,dedupe,dates"
        output: file to write the cleaned CSV to (inside the project); omit to only preview
        preview_rows: how many cleaned rows to show (at most 50)
    """
    ops = parse_operations(operations, OPERATIONS)
    label, raw = read_source(ctx, path, MAX_BYTES, "CSV")
    text, encoding = _decode(raw)
    dialect, has_header, delimiter_name = _sniff(text)
    try:
        rows = [list(r) for r in csv.reader(io.StringIO(text, newline=""), dialect)]
    except csv.Error as exc:
        raise ToolError(f"{label} could not be parsed as CSV: {exc}") from exc
    if not rows:
        raise ToolError(f"{label} is empty")
    has_header = has_header or _looks_like_header(rows[0])
    table = Table(header=rows[0] if has_header else None, rows=rows[1:] if has_header else rows)
    before_rows = len(table.rows)
    ragged = sum(1 for r in table.rows if len(r) != len(rows[0]))

    summary = [f"file: {label} ({encoding}, {delimiter_name} delimiter, "
               f"{'with' if has_header else 'no'} header row, {before_rows} data rows)"]
    if ragged:
        summary.append(f"note: {ragged} row(s) have a different number of fields than the first row")
    summary += [_OPS[op](table) for op in ops]
    all_rows = ([table.header] if table.header is not None else []) + table.rows

    delimiter, quotechar = dialect.delimiter, dialect.quotechar or '"'
    sources = [SourceRef(path=label)]
    if output is not None:
        out_label, target = resolve_output(ctx, path, output)
        newline = "\r\n" if "\r\n" in text[:SNIFF_BYTES] else "\n"
        content = _render(all_rows, delimiter, quotechar, newline)
        ctx.check_cancelled()  # abandoned at its deadline while cleaning: write nothing
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written as UTF-8 (with the BOM again if the input had one, for spreadsheet programs).
        target.write_text(content, encoding="utf-8-sig" if encoding == "utf-8-sig" else "utf-8", newline="")
        summary.append(f"wrote {len(table.rows)} data rows to {out_label}"
                       + ("" if encoding != "latin-1" else " (re-encoded from latin-1 to utf-8)"))
        sources.append(SourceRef(path=out_label))
    else:
        summary.append(f"preview only: nothing written; pass output=<file> to save ({len(table.rows)} data rows "
                       f"after cleaning)")

    shown = max(0, min(preview_rows, MAX_PREVIEW_ROWS))
    preview = _render(all_rows[: shown + (1 if table.header is not None else 0)], delimiter, quotechar)
    if len(preview) > MAX_PREVIEW_CHARS:
        preview = preview[:MAX_PREVIEW_CHARS] + "\n[preview cut]"
    parts = ["\n".join(summary)]
    if shown:
        parts.append(f"first {min(shown, len(table.rows))} row(s) after cleaning:\n{preview.rstrip()}")
    return ToolResult(output="\n\n".join(parts), sources=sources)
