"""Host scratch folders of the weak sandbox: named after their owner process, removed without following links.

Standard library only, so that it can also run as an unprivileged user with any Python (tests do).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from typing import Any

SCRATCH_PREFIX = "tongyi-sandbox-"
SANDBOX_UID = 65534


def remove_stale_scratch(folder: str | None = None) -> list[str]:
    """Remove weak-mode scratch folders whose owner process is gone (it was killed); returns them."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for name in entries:
        pid_text = name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if not name.startswith(SCRATCH_PREFIX) or not pid_text.isdigit():
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (os.geteuid(), SANDBOX_UID):
            continue
        if _alive(int(pid_text)):
            continue
        remove_tree(path)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: str) -> None:
    """Delete a scratch tree the snippet may have filled with links and read-only folders.

    Never follows a symlink: rmtree itself does not, and the permission fix-up opens folders with
    O_NOFOLLOW and changes them through the descriptor (a plain chmod would follow a link the snippet
    planted to a file of the user's)."""

    def fix(func: Any, target: str, _exc: Any) -> None:
        for folder in (os.path.dirname(target), target):
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # a link, a file, or gone: nothing to fix through it
            try:
                os.fchmod(fd, 0o700)
            except OSError:
                pass
            finally:
                os.close(fd)
        with contextlib.suppress(OSError):
            func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=fix)
    else:
        shutil.rmtree(path, onerror=fix)
