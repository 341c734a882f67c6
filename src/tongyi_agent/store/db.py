"""Opening the SQLite file: the only place connection settings live."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


class StoreError(KeyError):
    """A store problem the caller can act on (unknown or ambiguous run id, bad record).

    A ``KeyError`` subclass so ``except KeyError`` works for lookups, but ``str(err)`` is the plain
    one-line message rather than KeyError's quoted repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating parent directories) a connection in autocommit mode with WAL and a busy timeout.

    Autocommit (``isolation_level=None``) because the store issues its own ``BEGIN IMMEDIATE``:
    Python's implicit transactions start as DEFERRED, and upgrading a deferred read to a write under
    concurrency fails with "database is locked" without waiting on the busy timeout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    # WAL: readers never block the writer and a killed process cannot corrupt committed data.
    _enable_wal(conn)
    # NORMAL is durable against process crashes in WAL mode; only an OS crash may lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out a concurrent opener.

    Setting the journal mode needs an exclusive lock, and SQLite answers "database is locked" at
    once, without the busy handler, while another process creates or migrates the same new file."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
