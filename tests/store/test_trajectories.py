from __future__ import annotations

import sqlite3
import threading

import pytest

from tests.store.factories import DAY0, make_rewards, make_run, make_spans
from tongyi_agent.store import RewardRecord, StoreError, TrajectoryStore, connect


def test_record_and_get_round_trip(store: TrajectoryStore) -> None:
    run = make_run(prompt_version="v3", training_mode="prompt", root="/proj", input_tokens=60, output_tokens=13,
                   model_calls=2, tool_calls=1, tools_used=["read_file"], ab_arm="B", stop_reason="answer",
                   sources=[{"path": "src/core.py", "line": 1, "text": "def add"}], metadata={"k": [1, 2]})  # fmt: skip
    spans = make_spans()
    run_id = store.record_run(run, spans, [*make_rewards(0.5), RewardRecord("custom", None, "custom", "raised")])
    back = store.get_run(run_id)
    assert back.rewards[0].value == 0.5
    assert back.rewards[1].value is None and back.rewards[1].source == "custom"
    back.rewards = run.rewards = []
    assert back == run
    assert list(store.iter_spans(run_id)) == spans
    assert store.count_runs() == 1


def test_run_is_atomic_when_a_span_is_invalid(store: TrajectoryStore) -> None:
    spans = make_spans()
    spans.append(spans[0])  # duplicate (run_id, seq): the insert fails after the run row was written
    with pytest.raises(Exception, match="UNIQUE"):
        store.record_run(make_run(), spans, make_rewards())
    assert store.count_runs() == 0
    assert store.connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 0


def test_invalid_status_is_rejected(store: TrajectoryStore) -> None:
    with pytest.raises(ValueError, match="status"):
        store.record_run(make_run(status="maybe"))  # type: ignore[arg-type]


def test_unknown_run_id_is_a_one_line_store_error(store: TrajectoryStore) -> None:
    with pytest.raises(KeyError) as info:
        store.add_reward("nope", RewardRecord("x", 1.0))
    assert isinstance(info.value, StoreError)
    assert str(info.value) == "no run with id 'nope'"
    with pytest.raises(StoreError):
        store.add_feedback("nope", 1.0)
    with pytest.raises(StoreError):
        store.get_run("nope")


def test_feedback_adds_user_reward(store: TrajectoryStore) -> None:
    run_id = store.record_run(make_run(), make_spans(), make_rewards(1.0))
    assert store.add_feedback(run_id, 0.25, "meh") == 0.25
    assert store.add_feedback(run_id, -1) == 0.0
    rewards = {(r.name, r.value, r.source) for r in store.get_run(run_id).rewards}
    assert ("user_feedback", 0.25, "user") in rewards and ("user_feedback", 0.0, "user") in rewards
    assert store.get_run(run_id).reward("user_feedback") == 0.125
    assert store.connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 2
    with pytest.raises(ValueError):
        store.add_feedback(run_id, 4)


def test_resolve_run_id_prefix(store: TrajectoryStore) -> None:
    a = store.record_run(make_run(id="abc123aa" + "0" * 24))
    store.record_run(make_run(id="abc123ab" + "0" * 24))
    assert store.resolve_run_id("ABC123AA") == a
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve_run_id("abc123")
    with pytest.raises(StoreError, match="at least 6"):
        store.resolve_run_id("abc12")
    with pytest.raises(StoreError, match="no run id"):
        store.resolve_run_id("ffffff")


def test_iter_runs_streams_in_batches_with_filter(store: TrajectoryStore) -> None:
    for i in range(23):
        # Equal timestamps for some runs exercise the (started_at, id) keyset tie-break.
        store.record_run(make_run(f"q{i}", started_at=DAY0 + i // 3), rewards=make_rewards(i / 22))
    store.record_run(make_run("no reward", started_at=DAY0 + 100))
    runs = list(store.iter_runs(batch=4))
    assert len(runs) == 24 and len({r.id for r in runs}) == 24
    assert [r.started_at for r in runs] == sorted(r.started_at for r in runs)
    assert all(len(r.rewards) == 1 for r in runs[:-1])
    good = list(store.iter_runs(min_reward=0.5, batch=5))
    assert {r.question for r in good} == {f"q{i}" for i in range(11, 23)}
    assert list(store.iter_runs(min_reward=0.5, reward_name="other")) == []


def test_reset_keeps_schema(store: TrajectoryStore) -> None:
    run_id = store.record_run(make_run(), make_spans(), make_rewards())
    store.add_feedback(run_id, 1.0)
    store.set_meta("active_prompt", "v2")
    store.reset()
    assert store.count_runs() == 0
    assert store.get_meta("active_prompt") is None
    store.record_run(make_run())
    assert store.count_runs() == 1


def test_write_retries_while_another_connection_holds_the_lock(store: TrajectoryStore) -> None:
    store.connection.execute("PRAGMA busy_timeout=0")  # make "database is locked" immediate for the test
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        other = connect(store.path)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        threading.Timer(0.1, release.set).start()  # released before the retries run out (~0.75 s)
        store.record_run(make_run())
    finally:
        release.set()
        holder.join(10)
    assert store.count_runs() == 1


def test_write_gives_up_after_bounded_retries(store: TrajectoryStore) -> None:
    store.connection.execute("PRAGMA busy_timeout=0")
    other = connect(store.path)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.record_run(make_run())
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.count_runs() == 0
