"""read_file: numbered lines of one text file, paged so one call never floods the context."""

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
    for number in range(first, last + 1):
        text = lines[number - 1]
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " [... line cut]"
        entry = f"{number}: {text}"
        # Always show at least one line so paging makes progress.
        if out and (len(out) >= MAX_LINES or chars + len(entry) + 1 > MAX_CHARS):
            break
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
