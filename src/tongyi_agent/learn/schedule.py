"""Scheduled optimization: when to optimize on its own, and running it in the background, one at a time.

After a run is recorded the caller asks :func:`check_triggers`; on a reason it calls
:func:`start_background`, which launches ``tongyi_agent --optimize`` as a detached process unless one
is already running. The child holds :class:`OptimizationLock` while it optimizes; ``flock`` locks die
with their process, so a crashed optimizer never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tongyi_agent.config.training import OptimizationScheduleSettings
from tongyi_agent.store import TrajectoryStore
from tongyi_agent.store.run_queries import recent_mean_reward

LAST_COUNT_KEY = "schedule.last_count"
LAST_STARTED_KEY = "schedule.last_started"
LOCK_FILE = "optimizer.lock"
LOG_FILE = "optimizer.log"

CommandBuilder = Callable[[Path, list[str]], list[str]]


class OptimizationLockedError(RuntimeError):
    """Raised by ``with OptimizationLock(...)`` when another process holds the lock."""


def check_triggers(store: TrajectoryStore, settings: OptimizationScheduleSettings, target: str,
                   window: int = 20) -> str | None:
    """A one-line reason to optimize now, or None.

    * periodic schedule: at least ``periodic_interval`` runs recorded since the last scheduled
      optimization started (meta ``schedule.last_count``);
    * ``trigger_on_performance_drop`` (any schedule): the mean target reward of the last ``window``
      runs that have it is below ``performance_threshold``. It needs ``window`` runs recorded since
      the last scheduled optimization, so a drop is judged on a full window and one that lingers
      does not start a new optimization after every run.
    """
    total = store.count_runs()
    last = _int(store.get_meta(LAST_COUNT_KEY))
    # A reset store starts counting again from zero (its meta is wiped too, but be safe).
    since = total - last if total >= last else total
    reasons: list[str] = []
    if settings.trigger_on_performance_drop and since >= window:
        mean = rolling_mean_reward(store, target, window)
        if mean is not None and mean < settings.performance_threshold:
            reasons.append(f"performance drop: mean {target} of the last {window} runs is {mean:.2f},"
                           f" below {settings.performance_threshold:.2f}")
    if settings.schedule == "periodic" and since >= settings.periodic_interval:
        reasons.append(f"periodic: {since} runs since the last optimization (every {settings.periodic_interval})")
    return "; ".join(reasons) or None


def rolling_mean_reward(store: TrajectoryStore, target: str, window: int) -> float | None:
    """Mean target reward of the newest ``window`` runs that have one; None with fewer than ``window``."""
    count, mean = recent_mean_reward(store, target, window)
    return float(mean) if count >= window and mean is not None else None


class OptimizationLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the kernel drops it when the holder exits.

    ``flock`` locks belong to an open file, so two instances in one process exclude each other too.
    The file is never deleted: removing it while another process has it open would let a third
    process lock a fresh file at the same path and run alongside.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; True if this instance now holds it (or already did)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # The pid is for people reading the file; the lock itself is the flock, not the content.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def held_by_other(self) -> bool:
        """True if another open file (usually another process) holds the lock. Probes by taking and
        dropping it, so a holder that starts at this very instant may see it taken for a moment."""
        if self._fd is not None:
            return False
        if self.acquire():
            self.release()
            return False
        return True

    def holder_pid(self) -> int | None:
        """The pid the last holder wrote, if readable (may be stale once the lock is free)."""
        try:
            return int(self.path.read_text().strip() or "x")
        except (OSError, ValueError):
            return None

    def __enter__(self) -> OptimizationLock:
        if not self.acquire():
            pid = self.holder_pid()
            raise OptimizationLockedError("another optimization is already running"
                                          + (f" (pid {pid})" if pid else ""))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def optimize_command(root: Path, argv: list[str]) -> list[str]:
    """The child's command line: this interpreter running the package with ``--optimize``.

    ``-I`` (isolated mode): ``-m`` would otherwise put the working directory first on ``sys.path``, and
    PYTHONPATH or a user site could slip other code in; the package comes only from its installation."""
    return [sys.executable, "-I", "-m", "tongyi_agent", "--root", str(root), "--optimize", *argv]


def start_background(root: Path, data_dir: Path, argv: list[str], *, store: TrajectoryStore, reason: str = "",
                     command: CommandBuilder = optimize_command) -> subprocess.Popen[bytes] | None:
    """Launch a detached optimization unless one is running (``data_dir/optimizer.lock`` is held).

    The child outlives this process (own session, no stdin) and appends its output to
    ``data_dir/optimizer.log``. On launch, meta ``schedule.last_count`` becomes the current run count
    (so the periodic trigger counts from here) and ``schedule.last_started`` records when, why and the
    pid. The child takes the lock itself; this function only checks it."""
    if OptimizationLock(data_dir / LOCK_FILE).held_by_other():
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    count = store.count_runs()
    with open(data_dir / LOG_FILE, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} scheduled optimization: {reason}\n".encode())
        log.flush()
        # close_fds (the default) matters: a lock fd inherited by the child would outlive this process.
        # cwd: the store's own folder, never the caller's working directory (which may be the researched folder).
        process = subprocess.Popen(command(root, argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, close_fds=True, cwd=data_dir)
    store.set_meta(LAST_COUNT_KEY, str(count))
    store.set_meta(LAST_STARTED_KEY, json.dumps({"time": time.time(), "reason": reason, "pid": process.pid}))
    return process


def schedule_status(store: TrajectoryStore) -> dict[str, Any]:
    """For ``--training-stats``: ``last_started`` ({time, reason, pid} or None) and ``last_count``."""
    raw = store.get_meta(LAST_STARTED_KEY)
    last_started = None
    if raw:
        with contextlib.suppress(ValueError):
            last_started = json.loads(raw)
    return {"last_started": last_started, "last_count": _int(store.get_meta(LAST_COUNT_KEY))}


def _int(raw: str | None) -> int:
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0
