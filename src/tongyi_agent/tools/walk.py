"""The one file walker behind list_files and search_files, so both skip exactly the same files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tongyi_agent.tools.paths import GitIgnore, is_binary

# Never useful to a research question and often huge; skipped even without a .gitignore.
SKIP_DIRS = frozenset({".git", ".tongyi_training", ".venv", "__pycache__", "node_modules"})


def _is_text_file_in_root(path: Path, root: Path) -> bool:
    try:
        # A symlinked file may point anywhere; only follow the ones that stay inside the root.
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            return False
        return path.is_file() and not is_binary(path)
    except OSError:
        return False


def utf8_name(name: str) -> bool:
    """False for a name whose bytes were not UTF-8 (Python holds them as lone surrogates): it could not be
    shown to the model, stored or named back by it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """A non-UTF-8 name with its odd bytes written as \\xNN, for messages."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def iter_files(root: Path, start: Path, unnamed: list[str] | None = None) -> Iterator[Path]:
    """Text files under `start` (a resolved path inside `root`), in sorted order.

    Skips SKIP_DIRS, .gitignored paths, binary files and links leaving the root. A `start` that is
    itself a file is yielded if it is text: the model asked for it by name. Files and folders whose
    names are not UTF-8 are skipped too; their printable names are appended to `unnamed`, if given.
    """
    root = root.resolve()
    if start.is_file():
        if _is_text_file_in_root(start, root):
            yield start
        return
    for _label, entry in iter_unignored(root, start, unnamed):
        path = Path(entry.path)
        if _is_text_file_in_root(path, root):
            yield path


def iter_unignored(root: Path, start: Path,
                   unnamed: list[str] | None = None) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to the root, entry) of the non-folder entries under the folder `start` that
    SKIP_DIRS and .gitignore leave, in sorted order. Entries whose names are not UTF-8 are left out
    (and named in `unnamed`, if given).

    Neither their type nor their content is checked: the search index does that only for files it
    has not seen before, from their size and modification time. Folder links are not entered,
    which also rules out cycles.
    """
    root = root.resolve()
    ignore = GitIgnore.load(root)
    rel_start = start.relative_to(root).as_posix()
    start_prefix = "" if rel_start == "." else f"{rel_start}/"
    ruled_above_start = bool(start_prefix) and ignore.has_rules_for(start_prefix[:-1].rpartition("/")[0])
    # (folder, its label with a trailing slash, whether a .gitignore above it has rules)
    stack = [(str(start), start_prefix, ruled_above_start)]
    while stack:
        folder, prefix, ruled_above = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            continue
        folders = []
        # The listing shows whether the folder has a .gitignore: folders without one (most) are not probed.
        has_gitignore = any(entry.name == ".gitignore" for entry in entries)
        ruled = ignore.has_own_rules(prefix.removesuffix("/"), has_gitignore) or ruled_above
        for entry in entries:
            label = prefix + entry.name
            if not (entry.name.isascii() or utf8_name(entry.name)):
                if unnamed is not None:
                    unnamed.append(printable_name(label))
                continue
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_folder:
                if entry.name not in SKIP_DIRS and not (ruled and ignore.is_ignored(label, is_dir=True)):
                    folders.append((entry.path, f"{label}/", ruled))
            elif not (ruled and ignore.is_ignored(label)):
                yield label, entry
        stack.extend(reversed(folders))
