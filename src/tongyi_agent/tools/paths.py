"""Path confinement and file classification shared by the file tools.

Every path a model names goes through `resolve_in_root`: the tools may only ever see files under the
project root, whatever mix of absolute paths, `..` and symlinks the model produces.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tongyi_agent.tools.base import ToolError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

BINARY_SNIFF_BYTES = 8192


def resolve_in_root(root: Path, path: str) -> Path:
    """Resolve `path` (relative to `root`, or absolute inside it) and refuse anything outside `root`.

    The returned path is fully resolved, so a symlink whose target leaves the root is refused too.
    It need not exist: callers report missing files in their own words.
    """
    root_resolved = root.resolve()
    raw = path.strip() or "."
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root_resolved / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops
        raise ToolError(f"path {path!r} cannot be used: {exc}") from exc
    if resolved.is_relative_to(root_resolved):
        return resolved
    # Same test without following links tells the model *why* it was refused.
    lexical = Path(os.path.normpath(candidate))
    if lexical.is_relative_to(root_resolved):
        raise ToolError(f"path {path!r} is a link that points outside the project root")
    raise ToolError(f"path {path!r} is outside the project root")


def start_or_root(root: Path, path: str, verb: str) -> tuple[Path, str]:
    """Where a listing or search starts, plus a note for the model.

    Small models guess folder names ("src", the service's name); a guess that does not exist falls
    back to the whole root with a note instead of an error the model then loops on. Escapes from
    the root are still refused by resolve_in_root.
    """
    start = resolve_in_root(root, path)
    if start.exists():
        return start, ""
    return root.resolve(), f"Note: {path!r} does not exist; {verb} the whole project instead.\n"


def relative_label(root: Path, path: Path) -> str:
    """The posix path of `path` relative to `root`, as used in citations ("." for the root itself)."""
    resolved_root = root.resolve()
    try:
        rel = path.relative_to(resolved_root)
    except ValueError:
        rel = path.resolve().relative_to(resolved_root)
    return rel.as_posix()


class NotRegularFileError(OSError):
    """A FIFO, device or socket: opening or reading it could block forever."""


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most `limit`). Anything else raises NotRegularFileError.

    Opened non-blocking and checked on the open descriptor, so a FIFO put in place of a file after a
    stat() cannot make the read hang."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(f"{path.name} is not a regular file (a FIFO, device or socket)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read() if limit is None else handle.read(limit)
    finally:
        os.close(fd)


def is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def is_binary(path: Path) -> bool:
    """True when the first 8 KiB contain a NUL byte (the heuristic git and grep use)."""
    return b"\0" in read_regular(path, BINARY_SNIFF_BYTES)


def read_lines(path: Path) -> list[str]:
    """The file's lines without line endings, numbered the way editors and grep number them.

    `str.splitlines` would also split on form feeds and Unicode separators and shift line numbers.
    """
    text = read_regular(path).decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


@dataclass
class GitIgnore:
    """`.gitignore` rules of the root and of nested folders (loaded lazily, deeper files win)."""

    root: Path
    _specs: dict[str, GitIgnoreSpec | None] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> GitIgnore:
        ignore = cls(root.resolve())
        ignore._spec_for("")
        return ignore

    def _spec_for(self, rel_dir: str) -> GitIgnoreSpec | None:
        if rel_dir not in self._specs:
            file = self.root / rel_dir / ".gitignore"
            try:
                lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
                # Imported only when a folder has a .gitignore: most searched trees load no rules.
                from pathspec import GitIgnoreSpec

                self._specs[rel_dir] = GitIgnoreSpec.from_lines(lines)
            except OSError:  # no such file, or unreadable: nothing ignored here
                self._specs[rel_dir] = None
        return self._specs[rel_dir]

    def has_own_rules(self, rel_dir: str, has_gitignore: bool) -> bool:
        """Whether the folder `rel_dir` has a .gitignore with rules; `has_gitignore` is what its listing
        shows, so that a walker need not try to open a .gitignore in every folder."""
        if not has_gitignore and rel_dir not in self._specs:
            self._specs[rel_dir] = None
        return self._spec_for(rel_dir) is not None

    def has_rules_for(self, rel_dir: str) -> bool:
        """Whether any .gitignore from the root down to the folder `rel_dir` has rules (a quick
        answer for the common case of folders no .gitignore covers)."""
        parts = [p for p in rel_dir.split("/") if p not in ("", ".")]
        return any(self._spec_for("/".join(parts[:depth])) is not None for depth in range(len(parts) + 1))

    def is_ignored(self, rel_path: str, *, is_dir: bool = False) -> bool:
        """Whether the posix path relative to the root is ignored; `is_dir` makes `dir/` patterns apply."""
        parts = [p for p in rel_path.split("/") if p not in ("", ".")]
        ignored = False
        for depth in range(len(parts)):
            spec = self._spec_for("/".join(parts[:depth]))
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            decision = spec.check_file(sub).include
            if decision is not None:  # a later (deeper) match, including `!negation`, overrides
                ignored = decision
        return ignored


def checked_range(start: int | None, end: int | None, total: int, label: str, unit: str) -> tuple[int, int]:
    """The 1-based inclusive range to show of `total` lines or pages; an end past the last is clamped."""
    first = 1 if start is None else start
    last = total if end is None else min(end, total)
    if first < 1:
        raise ToolError(f"start_{unit} must be 1 or more, got {first}")
    if first > total:
        raise ToolError(f"start_{unit} {first} is past the end of {label}, which has {total} {unit}s")
    if last < first:
        raise ToolError(f"end_{unit} {end} is before start_{unit} {first}")
    return first, last
