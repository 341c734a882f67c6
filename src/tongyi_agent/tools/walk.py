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
    ignore = GitIgnore.load(root)
    # followlinks=False: linked folders are not entered, which also rules out cycles.
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else f"{rel_dir}/"
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not ignore.is_ignored(prefix + d, is_dir=True)
        )
        for name in sorted(filenames):
            if ignore.is_ignored(prefix + name):
                continue
            path = here / name
            if _is_text_file_in_root(path, root):
                yield path
