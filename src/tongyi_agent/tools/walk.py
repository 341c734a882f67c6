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


def iter_files(root: Path, start: Path) -> Iterator[Path]:
    """Text files under `start` (a resolved path inside `root`), in sorted order.

    Skips SKIP_DIRS, .gitignored paths, binary files and links leaving the root. A `start` that is
    itself a file is yielded if it is text: the model asked for it by name.
    """
    root = root.resolve()
    if start.is_file():
        if _is_text_file_in_root(start, root):
            yield start
        return
    for _label, entry in iter_unignored(root, start):
        path = Path(entry.path)
        if _is_text_file_in_root(path, root):
            yield path


def iter_unignored(root: Path, start: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to the root, entry) of the non-folder entries under the folder `start` that
    SKIP_DIRS and .gitignore leave, in sorted order.

    Neither their type nor their content is checked: the search index does that only for files it
    has not seen before, from their size and modification time. Folder links are not entered,
    which also rules out cycles.
    """
    root = root.resolve()
    ignore = GitIgnore.load(root)
    rel_start = start.relative_to(root).as_posix()
    stack = [(str(start), "" if rel_start == "." else f"{rel_start}/")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            continue
        folders = []
        ruled = ignore.has_rules_for(prefix)
        for entry in entries:
            label = prefix + entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_folder:
                if entry.name not in SKIP_DIRS and not (ruled and ignore.is_ignored(label, is_dir=True)):
                    folders.append((entry.path, f"{label}/"))
            elif not (ruled and ignore.is_ignored(label)):
                yield label, entry
        stack.extend(reversed(folders))
