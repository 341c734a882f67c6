"""Add or replace one profile section in a user's models.ini without touching the rest of the file.

configparser would rewrite the whole file and drop the user's comments, so the section is edited as
text: the block from its ``[name]`` header to the next header is replaced, or appended when absent.
The result is parsed before it replaces the file, and the write is atomic.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tongyi_agent.config.ini import read_models_file

_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def upsert_profile(path: Path, name: str, values: Mapping[str, str], comment: str = "") -> None:
    """Write ``[name]`` with ``values`` into ``path`` (created if missing); raises ConfigError if invalid."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    block = ([f"# {line}" for line in comment.splitlines()] + [f"[{name}]"]
             + [f"{key} = {value}" for key, value in values.items()])
    start, end = _section_span(lines, name)
    if start is None:
        new_lines = lines + ([""] if lines and lines[-1].strip() else []) + block
    else:
        new_lines = lines[:start] + block + [""] + lines[end:]
    text = "\n".join(new_lines).rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        read_models_file(Path(tmp))  # refuse to leave a file the next run cannot read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _section_span(lines: list[str], name: str) -> tuple[int | None, int]:
    """Line range of section ``name`` (with its leading comment lines), or (None, 0)."""
    start = None
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and start is not None:
            return start, _strip_trailing_comments(lines, start, index)
        if match and match.group(1).strip() == name:
            start = index
            while start > 0 and lines[start - 1].lstrip().startswith(("#", ";")):
                start -= 1
    return start, len(lines)


def _strip_trailing_comments(lines: list[str], start: int, end: int) -> int:
    """Comments just above the next header belong to that section, not to the one being replaced."""
    while end > start and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(("#", ";"))):
        end -= 1
    return end
