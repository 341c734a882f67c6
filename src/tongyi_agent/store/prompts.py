"""Versioned prompts: every system prompt the agent has used or could use, and which one is active.

A version is a set of named texts (``components``, e.g. ``{"system": ..., "forced_answer": ...}``)
with the version it was derived from (``parent``), who made it (``"default"``, ``"user"``,
``"optimizer:<run id>"``) and the scores it earned. Exactly one version is ``active`` once any exists;
learners add ``candidate`` versions and promote one with :meth:`PromptStore.activate`, which retires
the previous one. Every lifecycle change is logged in ``prompt_events``; that log is what
:meth:`PromptStore.rollback` walks back through.

Event actions: ``created``, ``activated``, ``retired``, ``rolled_back`` (a version made active again
by a rollback), and ``rejected`` / ``candidate`` when :meth:`PromptStore.set_status` moves a version.

Prompt texts are stored as given, not redacted: they are configuration written on purpose, and a
redaction pattern that matched ordinary instructions ("the password: ...") would silently change
what the agent is told.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from tongyi_agent.store.db import StoreError
from tongyi_agent.store.trajectories import TrajectoryStore

ID_PREFIX = "p-"
MIN_PREFIX = 3  # characters after "p-"; ids are short, so fewer than git's 6 are enough to be unique
STATUSES: frozenset[str] = frozenset({"active", "candidate", "retired", "rejected"})
SETTABLE_STATUSES: frozenset[str] = frozenset({"candidate", "rejected"})
DEFAULT_AUTHOR = "default"


@dataclass
class PromptVersion:
    id: str
    components: dict[str, str]  # {"system": ..., "forced_answer": ...}
    parent: str | None
    author: str
    status: str  # active | candidate | retired | rejected
    scores: dict[str, float]
    note: str
    created_at: float


def new_prompt_id() -> str:
    # Short enough to type and read in a table; collisions are checked on insert.
    return ID_PREFIX + secrets.token_hex(4)


class PromptStore:
    """Prompt versions in the trajectory store's SQLite file (tables from migration ``m005_prompt_versions``).

    Uses the given store's connection and write transactions, so it is safe under several processes
    like the store itself; closing is the store's job.
    """

    def __init__(self, store: TrajectoryStore) -> None:
        self._store = store
        self._conn = store.connection

    # -- writing -------------------------------------------------------------------------------

    def ensure_default(self, components: dict[str, str]) -> PromptVersion:
        """Create ``components`` as the active version (author ``default``) if no version exists yet;
        otherwise return the active version (or the newest, if none is active) and store nothing."""
        found = self.active()
        if found is not None:
            return found
        checked = _check_components(components)

        def write(conn: sqlite3.Connection) -> PromptVersion:
            # Re-checked under the write lock: two processes starting on a fresh project at once must
            # not both create a default.
            row = (conn.execute("SELECT * FROM prompt_versions WHERE status = 'active'").fetchone()
                   or conn.execute("SELECT * FROM prompt_versions ORDER BY created_at DESC, rowid DESC LIMIT 1")
                   .fetchone())  # fmt: skip
            if row is not None:
                return _version_from_row(row)
            return self._insert(conn, checked, parent=None, author=DEFAULT_AUTHOR, scores={},
                                note="packaged default prompts", status="active", reason="first use")

        return self._store._write(write)

    def add(self, components: dict[str, str], *, parent: str | None, author: str,
            scores: dict[str, float] | None = None, note: str = "", status: str = "candidate") -> PromptVersion:
        """Store a new version. ``parent`` may be an id prefix; it must exist. ``status="active"``
        retires the current active version in the same transaction (as :meth:`activate` would)."""
        checked = _check_components(components)
        checked_scores = _check_scores(scores or {})
        if status not in STATUSES:
            raise ValueError(f"prompt status must be one of {sorted(STATUSES)}, not {status!r}")
        if not isinstance(author, str) or not author.strip():
            raise ValueError("a prompt version needs an author")

        def write(conn: sqlite3.Connection) -> PromptVersion:
            parent_id = None if parent is None else self._resolve(parent)
            return self._insert(conn, checked, parent=parent_id, author=author, scores=checked_scores, note=note,
                                status=status, reason=note)

        return self._store._write(write)

    def activate(self, version_id: str, *, reason: str) -> PromptVersion:
        """Make a version active and retire the previous one, in one transaction. Activating the
        version that is already active changes nothing and logs nothing."""

        def write(conn: sqlite3.Connection) -> PromptVersion:
            vid = self._resolve(version_id)
            current = _active_id(conn)
            if current != vid:
                self._switch(conn, current, vid, "activated", reason)
            return self._version(vid)

        return self._store._write(write)

    def rollback(self, *, reason: str) -> PromptVersion:
        """Re-activate the version that was active before the current one; returns it.

        Successive rollbacks walk further back (like undo), skipping versions rejected since.
        StoreError if nothing is active or there is no earlier active version to return to."""

        def write(conn: sqlite3.Connection) -> PromptVersion:
            current = _active_id(conn)
            if current is None:
                raise StoreError("no active prompt version to roll back from")
            stack = _activation_stack(conn)
            if stack and stack[-1] == current:
                stack.pop()
            while stack:
                row = conn.execute("SELECT status FROM prompt_versions WHERE id = ?", (stack[-1],)).fetchone()
                if stack[-1] != current and row is not None and row["status"] != "rejected":
                    break
                stack.pop()
            if not stack:
                raise StoreError(f"nothing to roll back to: no version was active before {current}")
            self._switch(conn, current, stack[-1], "rolled_back", reason)
            return self._version(stack[-1])

        return self._store._write(write)

    def set_scores(self, version_id: str, scores: dict[str, float]) -> None:
        """Merge ``scores`` into the version's scores (same names are overwritten)."""
        checked = _check_scores(scores)

        def write(conn: sqlite3.Connection) -> None:
            vid = self._resolve(version_id)
            # Read and update inside one write transaction so two scorers merging at once lose nothing.
            row = conn.execute("SELECT scores FROM prompt_versions WHERE id = ?", (vid,)).fetchone()
            merged = {**json.loads(row["scores"]), **checked}
            conn.execute("UPDATE prompt_versions SET scores = ? WHERE id = ?", (_dumps(merged), vid))

        self._store._write(write)

    def set_status(self, version_id: str, status: str, *, reason: str) -> None:
        """Move a version to ``candidate`` or ``rejected``. The active version cannot be moved (there
        would be none active): activate another one or roll back first."""
        if status not in SETTABLE_STATUSES:
            hint = "; use activate()" if status == "active" else ""
            raise ValueError(f"set_status takes one of {sorted(SETTABLE_STATUSES)}, not {status!r}{hint}")

        def write(conn: sqlite3.Connection) -> None:
            vid = self._resolve(version_id)
            row = conn.execute("SELECT status FROM prompt_versions WHERE id = ?", (vid,)).fetchone()
            if row["status"] == "active":
                raise StoreError(f"{vid} is the active prompt version; activate another or roll back first")
            if row["status"] == status:
                return
            conn.execute("UPDATE prompt_versions SET status = ? WHERE id = ?", (status, vid))
            _log(conn, vid, status, reason, time.time())

        self._store._write(write)

    # -- reading -------------------------------------------------------------------------------

    def get(self, id_or_prefix: str) -> PromptVersion:
        """The version with this id, or the one whose id starts with this prefix (with or without
        ``p-``; at least 3 characters after it). StoreError if none or several match."""
        return self._version(self._resolve(id_or_prefix))

    def list(self) -> list[PromptVersion]:
        """Every version, newest first."""
        rows = self._conn.execute("SELECT * FROM prompt_versions ORDER BY created_at DESC, rowid DESC")
        return [_version_from_row(row) for row in rows]

    def active(self) -> PromptVersion | None:
        row = self._conn.execute("SELECT * FROM prompt_versions WHERE status = 'active'").fetchone()
        return None if row is None else _version_from_row(row)

    def events(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest lifecycle events, newest first: ``{id, version, action, reason, created_at}``."""
        rows = self._conn.execute(
            "SELECT id, version, action, reason, created_at FROM prompt_events ORDER BY id DESC LIMIT ?",
            (max(0, limit),),
        )
        return [dict(row) for row in rows]

    # -- internals -----------------------------------------------------------------------------

    def _resolve(self, id_or_prefix: str) -> str:
        text = str(id_or_prefix).strip().lower()
        prefix = text if text.startswith(ID_PREFIX) else ID_PREFIX + text
        if len(prefix) - len(ID_PREFIX) < MIN_PREFIX:
            raise StoreError(f"prompt version id {id_or_prefix!r} is too short: give at least {MIN_PREFIX}"
                             f" characters after '{ID_PREFIX}'")
        if self._conn.execute("SELECT 1 FROM prompt_versions WHERE id = ?", (prefix,)).fetchone():
            return prefix
        # A range on the primary key instead of LIKE, so the lookup uses the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._conn.execute(
            "SELECT id FROM prompt_versions WHERE id >= ? AND id < ? ORDER BY id LIMIT 2", (prefix, upper)
        ).fetchall()
        if not rows:
            raise StoreError(f"no prompt version id starts with {prefix!r}")
        if len(rows) > 1:
            raise StoreError(f"prompt version id prefix {prefix!r} is ambiguous: give more characters")
        return str(rows[0][0])

    def _version(self, vid: str) -> PromptVersion:
        row = self._conn.execute("SELECT * FROM prompt_versions WHERE id = ?", (vid,)).fetchone()
        if row is None:
            raise StoreError(f"no prompt version {vid!r}")
        return _version_from_row(row)

    def _insert(self, conn: sqlite3.Connection, components: dict[str, str], *, parent: str | None, author: str,
                scores: dict[str, float], note: str, status: str, reason: str) -> PromptVersion:
        """Insert inside the caller's write transaction; logs ``created`` (and the activation)."""
        vid = new_prompt_id()
        while conn.execute("SELECT 1 FROM prompt_versions WHERE id = ?", (vid,)).fetchone():
            vid = new_prompt_id()
        now = time.time()
        # Inserted as a candidate and then switched, so an active insert retires the old one first and
        # the partial unique index never sees two active rows.
        conn.execute(
            "INSERT INTO prompt_versions (id, components, parent, author, status, scores, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (vid, _dumps(components), parent, author, "candidate" if status == "active" else status,
             _dumps(scores), note, now),
        )
        _log(conn, vid, "created", reason, now)
        if status == "active":
            self._switch(conn, _active_id(conn), vid, "activated", reason)
        return self._version(vid)

    def _switch(self, conn: sqlite3.Connection, current: str | None, target: str, action: str, reason: str) -> None:
        now = time.time()
        if current is not None:
            conn.execute("UPDATE prompt_versions SET status = 'retired' WHERE id = ?", (current,))
            _log(conn, current, "retired", reason, now)
        conn.execute("UPDATE prompt_versions SET status = 'active' WHERE id = ?", (target,))
        _log(conn, target, action, reason, now)


def _active_id(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT id FROM prompt_versions WHERE status = 'active'").fetchone()
    return None if row is None else str(row[0])


def _activation_stack(conn: sqlite3.Connection) -> list[str]:
    """The versions that were active, oldest first, as undo history: an activation pushes, a rollback
    pops back to the version it re-activated."""
    stack: list[str] = []
    for row in conn.execute("SELECT version, action FROM prompt_events"
                            " WHERE action IN ('activated', 'rolled_back') ORDER BY id"):  # fmt: skip
        version = row["version"]
        if row["action"] == "rolled_back" and version in stack:
            while stack[-1] != version:
                stack.pop()
        else:
            stack.append(version)
    return stack


def _log(conn: sqlite3.Connection, version: str, action: str, reason: str, now: float) -> None:
    conn.execute("INSERT INTO prompt_events (version, action, reason, created_at) VALUES (?, ?, ?, ?)",
                 (version, action, reason or "", now))


def _check_components(components: dict[str, str]) -> dict[str, str]:
    if not isinstance(components, dict) or not components:
        raise ValueError("a prompt version needs at least one component")
    for name, text in components.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"prompt component names must be non-empty strings, not {name!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompt component {name!r} must be a non-empty string")
    return dict(components)


def _check_scores(scores: dict[str, float]) -> dict[str, float]:
    checked: dict[str, float] = {}
    for name, value in scores.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"score names must be non-empty strings, not {name!r}")
        # bool is an int subclass; True as a score is a caller's bug, not 1.0.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"score {name!r} must be a number, not {value!r}")
        checked[name] = float(value)
    return checked


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _version_from_row(row: sqlite3.Row) -> PromptVersion:
    return PromptVersion(id=row["id"], components=json.loads(row["components"]), parent=row["parent"],
                         author=row["author"], status=row["status"], scores=json.loads(row["scores"]),
                         note=row["note"], created_at=row["created_at"])
