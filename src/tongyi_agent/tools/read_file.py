"""read_file: numbered lines of one text file, paged so one call never floods the context.

In documents each section's heading comes after a line that names the section in words with the
count of its list items, as search_files shows it (`[CHANGES.rst, section "2.4.0 > Features", 3 list
items:]`); a range that starts inside a section opens with that section's line. A small model asked
"how many" counts badly, and the grounding check compares its count with these."""

from __future__ import annotations

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.paths import (
    checked_range,
    is_binary,
    is_regular_file,
    read_lines,
    relative_label,
    resolve_in_root,
)
from tongyi_agent.tools.search_results import section_line
from tongyi_agent.tools.sections import enclosing, find_sections, is_prose

MAX_LINES = 400
MAX_CHARS = 16_000
# One minified line must not eat the whole page.
MAX_LINE_CHARS = 2_000


def read_file(ctx: ToolContext, path: str, start_line: int | None = None,
              end_line: int | None = None) -> ToolResult:
    """Read a text file; each line comes back as "number: text".

    Args:
        path: file path relative to the project root
        start_line: first line to read (1-based); omit to start at the top
        end_line: last line to read (inclusive); omit to read to the end
    """
    file = resolve_in_root(ctx.root, path)
    if not file.exists():
        raise ToolError(f"no such file: {path!r}; use list_files or search_files to find the right path")
    if file.is_dir():
        raise ToolError(f"{path!r} is a folder, not a file; use list_files to see what it contains")
    if not is_regular_file(file):
        raise ToolError(f"{path!r} is not a regular file (a FIFO, device or socket) and is not read")
    if is_binary(file):
        raise ToolError(f"{path!r} is a binary file and cannot be shown as text")
    label = relative_label(ctx.root, file)
    lines = read_lines(file)
    total = len(lines)
    if total == 0:
        return ToolResult(output=f"{label} is empty", sources=[SourceRef(path=label)])

    first, last = checked_range(start_line, end_line, total, label, "line")

    out: list[str] = []
    sources: list[SourceRef] = []
    chars = 0
    shown_last = first - 1
    named = _section_lines(label, lines, first)
    for number in range(first, last + 1):
        text = lines[number - 1]
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " [... line cut]"
        entry = f"{number}: {text}"
        # Always show at least one line so paging makes progress.
        if sources and (len(sources) >= MAX_LINES or chars + len(entry) + 1 > MAX_CHARS):
            break
        if number in named:
            out.append(named[number])
        out.append(entry)
        sources.append(SourceRef(path=label, line=number, text=text))
        chars += len(entry) + 1
        shown_last = number
    if shown_last < last:
        out.append(f"[truncated: showing lines {first}-{shown_last} of {total}; "
                   f"call read_file with start_line={shown_last + 1} to continue]")
    elif first > 1 or last < total:
        out.append(f"[showing lines {first}-{last} of {total}]")
    return ToolResult(output="\n".join(out), sources=sources)


def _section_lines(label: str, lines: list[str], first: int) -> dict[int, str]:
    """For a document, the line naming each section, keyed by the line it goes above: the
    section's first line, or `first` for the section the range starts inside."""
    if not is_prose(label):
        return {}
    sections = find_sections(label, lines)
    named = {s.start: section_line(label, lines, sections, i) for i, s in enumerate(sections)}
    inside = enclosing(sections, first)
    if first not in named and inside:
        named[first] = section_line(label, lines, sections, inside[-1])
    return named
