"""list_files: what is in the project, so the model knows which paths exist before reading."""

from __future__ import annotations

from fnmatch import fnmatchcase

from tongyi_agent.tools.base import ToolContext, ToolResult
from tongyi_agent.tools.paths import relative_label, start_or_root
from tongyi_agent.tools.walk import iter_files

MAX_ENTRIES = 200


def _matches(pattern: str, name: str, rel_to_start: str, label: str) -> bool:
    # Case-insensitive: a small model writes "*.MD" as often as "*.md".
    pattern = pattern.lower()
    if "/" not in pattern:
        return fnmatchcase(name.lower(), pattern)
    candidates = [pattern, pattern.removeprefix("**/")]
    return any(fnmatchcase(text.lower(), p) for p in candidates for text in (rel_to_start, label))


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    if num_bytes < 1024 * 1024:
        return f"{num_bytes / 1024:.1f} KB"
    return f"{num_bytes / (1024 * 1024):.1f} MB"


def list_files(ctx: ToolContext, path: str = ".", pattern: str = "*") -> ToolResult:
    """List text files under a folder, recursively, with their sizes.

    Args:
        path: folder to list, relative to the project root
        pattern: glob on file names like "*.py", or on paths like "docs/*.md"
    """
    start, note = start_or_root(ctx.root, path, "listed")
    pattern = pattern.strip() or "*"
    found: list[tuple[str, int]] = []
    unnamed: list[str] = []
    for file in iter_files(ctx.root, start, unnamed):
        label = relative_label(ctx.root, file)
        rel_to_start = file.relative_to(start).as_posix() if start.is_dir() else file.name
        if _matches(pattern, file.name, rel_to_start, label):
            found.append((label, file.stat().st_size))
    where = relative_label(ctx.root, start)
    if unnamed:
        shown = ", ".join(unnamed[:5]) + (f" and {len(unnamed) - 5} more" if len(unnamed) > 5 else "")
        note += f"left out {len(unnamed)} name(s) that are not valid UTF-8: {shown}\n"
    if not found:
        return ToolResult(output=f"{note}no files match {pattern!r} under {where!r}")
    found.sort()
    lines = [f"{label}  ({_size(size)})" for label, size in found[:MAX_ENTRIES]]
    if len(found) > MAX_ENTRIES:
        lines.append(f"... {len(found) - MAX_ENTRIES} more; narrow the path or pattern to see them")
    return ToolResult(output=note + "\n".join(lines))


