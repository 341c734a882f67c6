"""Functions run in child processes (spawned, so they must be importable)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.store.factories import make_rewards, make_run, make_spans
from tongyi_agent.store import TrajectoryStore


def record_many(path: str, label: str, count: int) -> None:
    with TrajectoryStore(Path(path)) as store:
        for i in range(count):
            run = make_run(f"{label} question {i}", started_at=time.time())
            store.record_run(run, make_spans(), make_rewards(i / count))


def record_forever(path: str, log: str) -> None:
    """Record runs until killed; append each committed id to ``log`` after its commit returns."""
    with TrajectoryStore(Path(path)) as store, open(log, "a", encoding="utf-8") as out:
        i = 0
        while True:
            big = "x" * 20_000  # large rows so that a kill often lands inside a write
            run = make_run(f"loop {i}", answer=big, started_at=time.time())
            store.record_run(run, make_spans(answer=big), make_rewards())
            out.write(run.id + "\n")
            out.flush()
            i += 1


def hold_open_transaction(path: str, committed: int, marker: str) -> None:
    """Commit ``committed`` runs, then start a write transaction, insert a run and wait to be killed."""
    with TrajectoryStore(Path(path)) as store:
        for i in range(committed):
            store.record_run(make_run(f"committed {i}"), make_spans(), make_rewards())
        conn = store.connection
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO runs (id, question, answer, status, started_at, seconds) VALUES (?, ?, ?, ?, ?, ?)",
            ("uncommitted0000", "never committed", "", "success", time.time(), 1.0),
        )
        Path(marker).write_text("in transaction")
        time.sleep(60)
