"""Several processes on one file, and processes killed mid-write (the CLI can be Ctrl-C'd or kill -9'd)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.store import workers
from tests.store.factories import make_run
from tongyi_agent.store import TrajectoryStore

SPAWN = multiprocessing.get_context("spawn")  # no inherited SQLite handles, like two separate CLI runs
DEADLINE = 60.0


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def _integrity_ok(path: Path) -> None:
    with TrajectoryStore(path) as store:
        assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_record_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"  # not created yet: both processes also race to create and migrate it
    procs = [SPAWN.Process(target=workers.record_many, args=(str(path), label, 50)) for label in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(DEADLINE)
        assert p.exitcode == 0
    with TrajectoryStore(path) as store:
        assert store.count_runs() == 100
        assert store.connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 300
        questions = {r.question for r in store.iter_runs()}
        assert questions == {f"{label} question {i}" for label in "ab" for i in range(50)}
    _integrity_ok(path)


def test_kill_inside_open_transaction_keeps_committed_runs(tmp_path: Path) -> None:
    path, marker = tmp_path / "t.sqlite", tmp_path / "marker"
    proc = SPAWN.Process(target=workers.hold_open_transaction, args=(str(path), 7, str(marker)))
    proc.start()
    try:
        _wait_for(marker.exists, "the child to open its transaction")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(DEADLINE)
    assert proc.exitcode == -signal.SIGKILL
    _integrity_ok(path)
    with TrajectoryStore(path) as store:
        assert store.count_runs() == 7
        assert all(r.question.startswith("committed") for r in store.iter_runs())
        store.record_run(make_run("after the crash"))  # the write lock was released by the kill
        assert store.count_runs() == 8


def test_kill_while_recording_in_a_loop(tmp_path: Path) -> None:
    path, log = tmp_path / "t.sqlite", tmp_path / "ids.log"
    log.touch()
    proc = SPAWN.Process(target=workers.record_forever, args=(str(path), str(log)))
    proc.start()
    try:
        _wait_for(lambda: len(log.read_text().split()) >= 15, "15 committed runs")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(DEADLINE)
    logged = set(log.read_text().split())
    _integrity_ok(path)
    with TrajectoryStore(path) as store:
        stored = {r.id for r in store.iter_runs()}
        # The log is written after each commit, so it can lag the database by one run, never lead it.
        assert logged <= stored
        assert len(stored) - len(logged) <= 1
        for run_id in stored:
            assert len(list(store.iter_spans(run_id))) == 3  # no run without its spans
