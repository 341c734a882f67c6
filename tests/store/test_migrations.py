from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tongyi_agent.store import MIGRATIONS, TrajectoryStore, applied_migrations, connect, migrate
from tongyi_agent.store.migrations import m001_initial


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _indexes(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_blank_database_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "t.sqlite"
    with TrajectoryStore(path) as store:
        conn = store.connection
        assert applied_migrations(conn) == [fn.__name__ for fn in MIGRATIONS]
        assert {"runs", "spans", "rewards", "feedback", "meta", "_migrations", "experiences", "experience_uses"} <= {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert "ab_arm" in _columns(conn, "runs")
        assert {"runs_started_at", "runs_question", "runs_seconds", "rewards_run_name_value",
                "rewards_name_created_at"} <= _indexes(conn)  # fmt: skip
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_reopening_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    TrajectoryStore(path).close()
    conn = connect(path)
    assert migrate(conn) == []
    conn.close()


def test_upgrade_from_m001_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = connect(path)
    assert migrate(old, [m001_initial]) == ["m001_initial"]
    old.execute(
        "INSERT INTO runs (id, question, answer, status, started_at, seconds, tools_used)"
        " VALUES ('abcdef0123456789', 'old question', 'old answer', 'success', 1.0, 2.5, '[\"read_file\"]')"
    )
    old.execute(
        "INSERT INTO rewards (run_id, name, value, source, created_at)"
        " VALUES ('abcdef0123456789', 'task_success', 0.75, 'builtin', 1.0)"
    )
    assert "ab_arm" not in _columns(old, "runs")
    assert "rewards_run_id" in _indexes(old)
    old.close()

    with TrajectoryStore(path) as store:
        assert applied_migrations(store.connection) == [fn.__name__ for fn in MIGRATIONS]
        assert "ab_arm" in _columns(store.connection, "runs")
        indexes = _indexes(store.connection)
        assert "rewards_name_created_at" in indexes and "rewards_run_id" not in indexes
        run = store.get_run("abcdef0123456789")
        assert (run.question, run.answer, run.seconds, run.tools_used) == ("old question", "old answer", 2.5,
                                                                           ["read_file"])  # fmt: skip
        assert run.ab_arm is None
        assert run.reward() == 0.75
        assert run.grounded is None  # recorded before the grounding check existed


def test_failing_migration_rolls_back_and_is_not_recorded(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.sqlite")
    migrate(conn)

    def m900_broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        migrate(conn, [*MIGRATIONS, m900_broken])
    assert "m900_broken" not in applied_migrations(conn)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()


def test_grounded_round_trips_as_true_false_or_unknown(tmp_path: Path) -> None:
    from tongyi_agent.store import RunRecord

    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        assert "grounded" in _columns(store.connection, "runs")
        for grounded in (True, False, None):
            store.record_run(RunRecord(question=f"q {grounded}", answer="a", status="success", grounded=grounded),
                             [], [])
        assert sorted((r.question, r.grounded) for r in store.iter_runs()) == [
            ("q False", False), ("q None", None), ("q True", True)]
