"""Schema migrations: an ordered list of named functions, applied forward only.

Applied names are stored in ``_migrations``. Never rename or reorder an entry of ``MIGRATIONS``;
add a new function at the end. Each migration runs in its own ``BEGIN IMMEDIATE`` transaction and
re-checks whether it was applied once it holds the write lock, so two processes opening a fresh
database at the same moment do not apply anything twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def m001_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            status TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            backend TEXT NOT NULL DEFAULT '',
            dialect TEXT NOT NULL DEFAULT '',
            prompt_version TEXT,
            training_mode TEXT,
            root TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL,
            seconds REAL NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            model_calls INTEGER NOT NULL DEFAULT 0,
            tool_calls INTEGER NOT NULL DEFAULT 0,
            tools_used TEXT NOT NULL DEFAULT '[]',
            sources TEXT NOT NULL DEFAULT '[]',
            error TEXT,
            stop_reason TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    # (started_at, id) is the keyset for streaming; question groups runs for DPO pairs.
    conn.execute("CREATE INDEX runs_started_at ON runs (started_at, id)")
    conn.execute("CREATE INDEX runs_question ON runs (question)")
    conn.execute(
        """CREATE TABLE spans (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            input TEXT,
            output TEXT,
            started_at REAL NOT NULL DEFAULT 0,
            duration REAL NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, seq)
        )"""
    )
    conn.execute(
        """CREATE TABLE rewards (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value REAL,
            source TEXT NOT NULL,
            detail TEXT,
            created_at REAL NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX rewards_run_id ON rewards (run_id)")
    conn.execute(
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            score REAL NOT NULL,
            comment TEXT,
            created_at REAL NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX feedback_run_id ON feedback (run_id)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")


def m002_runs_ab_arm(conn: sqlite3.Connection) -> None:
    # Which A/B arm served a run; NULL for runs outside an experiment (and for all older rows).
    conn.execute("ALTER TABLE runs ADD COLUMN ab_arm TEXT")
    conn.execute("CREATE INDEX runs_ab_arm ON runs (ab_arm) WHERE ab_arm IS NOT NULL")


def m003_stats_indexes(conn: sqlite3.Connection) -> None:
    # Reward history per name; p95 by walking an index instead of sorting every run; and a covering
    # index for "this run's reward named X", the correlated subquery behind min_reward and the trend
    # (without it SQLite may pick the name index and scan every reward of that name per run).
    conn.execute("CREATE INDEX rewards_name_created_at ON rewards (name, created_at)")
    conn.execute("CREATE INDEX runs_seconds ON runs (seconds)")
    conn.execute("CREATE INDEX rewards_run_name_value ON rewards (run_id, name, value)")
    # Its leading column serves every lookup the m001 index did; one index less to update per reward.
    conn.execute("DROP INDEX rewards_run_id")


def m004_runs_cost(conn: sqlite3.Connection) -> None:
    # USD a run cost at its model's prices; NULL where unknown (older rows, runs that failed early).
    conn.execute("ALTER TABLE runs ADD COLUMN cost REAL")


def m005_prompt_versions(conn: sqlite3.Connection) -> None:
    # Versioned prompts (store/prompts.py). Status is checked in Python rather than by a CHECK
    # constraint, so a later status does not need SQLite's copy-the-table dance.
    conn.execute(
        """CREATE TABLE prompt_versions (
            id TEXT PRIMARY KEY,
            components TEXT NOT NULL,
            parent TEXT REFERENCES prompt_versions (id),
            author TEXT NOT NULL,
            status TEXT NOT NULL,
            scores TEXT NOT NULL DEFAULT '{}',
            note TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )"""
    )
    # The database itself guarantees at most one active version, whatever a buggy or racing writer does.
    conn.execute("CREATE UNIQUE INDEX prompt_versions_one_active ON prompt_versions (status) WHERE status = 'active'")
    conn.execute("CREATE INDEX prompt_versions_created_at ON prompt_versions (created_at)")
    conn.execute(
        """CREATE TABLE prompt_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            version TEXT NOT NULL REFERENCES prompt_versions (id),
            action TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )"""
    )


def m006_experiences(conn: sqlite3.Connection) -> None:
    # Confirmed runs kept as worked examples (store/experiences.py). One experience per run; deleting
    # the run deletes it. The trajectory is compact JSON (tool calls, cited lines, final answer).
    conn.execute(
        """CREATE TABLE experiences (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE REFERENCES runs (id) ON DELETE CASCADE,
            question TEXT NOT NULL,
            root TEXT NOT NULL DEFAULT '',
            trajectory TEXT NOT NULL,
            answer TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            dialect TEXT NOT NULL DEFAULT '',
            prompt_version TEXT,
            confirmed_by TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            uses INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            failure_streak INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            last_used_at REAL
        )"""
    )
    # Retrieval looks at the newest active experiences of one root.
    conn.execute("CREATE INDEX experiences_root_recent ON experiences (root, status, created_at)")
    # Full-text index over the questions (bm25 ranking), kept in step by triggers.
    conn.execute("CREATE VIRTUAL TABLE experiences_fts USING fts5(question, content='experiences', content_rowid='id')")
    conn.execute("""CREATE TRIGGER experiences_fts_insert AFTER INSERT ON experiences BEGIN
        INSERT INTO experiences_fts (rowid, question) VALUES (new.id, new.question); END""")
    conn.execute("""CREATE TRIGGER experiences_fts_delete AFTER DELETE ON experiences BEGIN
        INSERT INTO experiences_fts (experiences_fts, rowid, question) VALUES ('delete', old.id, old.question); END""")
    conn.execute("""CREATE TRIGGER experiences_fts_update AFTER UPDATE OF question ON experiences BEGIN
        INSERT INTO experiences_fts (experiences_fts, rowid, question) VALUES ('delete', old.id, old.question);
        INSERT INTO experiences_fts (rowid, question) VALUES (new.id, new.question); END""")


def m007_runs_grounded(conn: sqlite3.Connection) -> None:
    # Whether every key fact of the answer came from a tool result of the run (1/0); NULL where the
    # check was off, and for every run recorded before it existed.
    conn.execute("ALTER TABLE runs ADD COLUMN grounded INTEGER")


def m008_experience_uses(conn: sqlite3.Connection) -> None:
    # One row per (experience, run that was shown it), so a use can be judged again when the run is
    # rated later, without being counted twice. Uses counted before this table existed have no rows:
    # their totals are kept as they were judged, in prior_*, and the per-use rows add to them.
    for column in ("prior_uses", "prior_failures", "prior_failure_streak"):
        conn.execute(f"ALTER TABLE experiences ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE experiences SET prior_uses = uses, prior_failures = failures, "
                 "prior_failure_streak = failure_streak")
    # No foreign key on run_id: a use stays counted even if its run is ever deleted, so the counters
    # on experiences always agree with these rows.
    conn.execute(
        """CREATE TABLE experience_uses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            experience_id INTEGER NOT NULL REFERENCES experiences (id) ON DELETE CASCADE,
            run_id TEXT NOT NULL,
            success INTEGER NOT NULL,
            used_at REAL NOT NULL,
            judged_at REAL NOT NULL,
            UNIQUE (experience_id, run_id)
        )"""
    )
    # Feedback on a run re-judges every use that run made.
    conn.execute("CREATE INDEX experience_uses_run ON experience_uses (run_id)")


MIGRATIONS: list[Migration] = [m001_initial, m002_runs_ab_arm, m003_stats_indexes, m004_runs_cost,
                               m005_prompt_versions, m006_experiences, m007_runs_grounded, m008_experience_uses]


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    _ensure_table(conn)
    return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY applied_at, name")]


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now. Needs an autocommit connection."""
    _ensure_table(conn)
    done_now: list[str] = []
    for fn in MIGRATIONS if migrations is None else migrations:
        name = fn.__name__
        if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            fn(conn)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done_now.append(name)
    return done_now


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
