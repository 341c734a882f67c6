"""Prompt versions: migration m005, lifecycle (add, activate, rollback), prefixes, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from tests.store.factories import make_rewards, make_run
from tongyi_agent.store import (
    MIGRATIONS,
    PromptStore,
    StoreError,
    TrajectoryStore,
    applied_migrations,
    connect,
    migrate,
)
from tongyi_agent.store.prompts import new_prompt_id

SPAWN = multiprocessing.get_context("spawn")  # no inherited SQLite handles, like two separate CLI runs
DEADLINE = 60.0
DEFAULT = {"system": "You are a careful research assistant.", "forced_answer": "Stop now ({reason})."}


@pytest.fixture
def prompts(store: TrajectoryStore) -> PromptStore:
    return PromptStore(store)


def _v(text: str) -> dict[str, str]:
    return {**DEFAULT, "system": text}


def _active_ids(store: TrajectoryStore) -> list[str]:
    return [r[0] for r in store.connection.execute("SELECT id FROM prompt_versions WHERE status = 'active'")]


# -- migration ------------------------------------------------------------------------------------


def test_blank_database_has_prompt_tables(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        conn = store.connection
        assert "m005_prompt_versions" in applied_migrations(conn)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"prompt_versions", "prompt_events"} <= tables
        assert PromptStore(store).list() == [] and PromptStore(store).active() is None


def test_upgrade_from_m004_applies_m005_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    m001_to_m004 = MIGRATIONS[:4]
    assert [fn.__name__ for fn in m001_to_m004][-1] == "m004_runs_cost"
    old = connect(path)
    migrate(old, m001_to_m004)
    old.execute("INSERT INTO runs (id, question, answer, status, started_at, seconds, cost)"
                " VALUES ('0123456789abcdef', 'old q', 'old a', 'success', 1.0, 2.0, 0.25)")
    old.execute("INSERT INTO rewards (run_id, name, value, source, created_at)"
                " VALUES ('0123456789abcdef', 'task_success', 0.5, 'builtin', 1.0)")
    assert old.execute("SELECT name FROM sqlite_master WHERE name = 'prompt_versions'").fetchone() is None
    old.close()

    with TrajectoryStore(path) as store:
        assert applied_migrations(store.connection) == [fn.__name__ for fn in MIGRATIONS]
        run = store.get_run("0123456789abcdef")
        assert (run.question, run.answer, run.cost, run.reward()) == ("old q", "old a", 0.25, 0.5)
        version = PromptStore(store).ensure_default(DEFAULT)
        assert version.status == "active"
        store.record_run(make_run("new q"), rewards=make_rewards())
        assert store.count_runs() == 2


def test_database_refuses_a_second_active_row(store: TrajectoryStore, prompts: PromptStore) -> None:
    first = prompts.ensure_default(DEFAULT)
    other = prompts.add(_v("other"), parent=first.id, author="user")
    # Even a writer that bypasses PromptStore cannot leave two active versions.
    with pytest.raises(sqlite3.IntegrityError):
        store.connection.execute("UPDATE prompt_versions SET status = 'active' WHERE id = ?", (other.id,))
    assert _active_ids(store) == [first.id]


# -- creating and reading -------------------------------------------------------------------------


def test_ensure_default_is_idempotent(store: TrajectoryStore, prompts: PromptStore) -> None:
    first = prompts.ensure_default(DEFAULT)
    assert first.id.startswith("p-") and len(first.id) == 10
    assert (first.status, first.author, first.parent, first.components) == ("active", "default", None, DEFAULT)
    again = prompts.ensure_default({"system": "something else"})
    assert again == first
    assert len(prompts.list()) == 1
    assert [e["action"] for e in prompts.events()] == ["activated", "created"]


def test_ensure_default_returns_newest_when_none_is_active(store: TrajectoryStore, prompts: PromptStore) -> None:
    prompts.add(_v("one"), parent=None, author="user")
    newest = prompts.add(_v("two"), parent=None, author="user")
    assert prompts.ensure_default(DEFAULT).id == newest.id
    assert prompts.active() is None and len(prompts.list()) == 2


def test_add_and_get_by_prefix(prompts: PromptStore) -> None:
    base = prompts.ensure_default(DEFAULT)
    cand = prompts.add(_v("Be brief."), parent=base.id[:5], author="optimizer:run1", scores={"val": 0.5},
                       note="shorter")
    assert (cand.status, cand.parent, cand.author, cand.scores, cand.note) == (
        "candidate", base.id, "optimizer:run1", {"val": 0.5}, "shorter")
    assert prompts.get(cand.id) == cand
    assert prompts.get(cand.id[:5]) == cand  # "p-" + 3 characters
    assert prompts.get(cand.id[2:].upper()) == cand  # without "p-", any case
    assert [v.id for v in prompts.list()] == [cand.id, base.id]  # newest first


@pytest.mark.parametrize("bad", ["p-", "p-ab", "ab", ""])
def test_too_short_prefix_is_one_line_error(prompts: PromptStore, bad: str) -> None:
    prompts.ensure_default(DEFAULT)
    with pytest.raises(StoreError, match="too short") as info:
        prompts.get(bad)
    assert "\n" not in str(info.value)


def test_unknown_and_ambiguous_prefix(store: TrajectoryStore, prompts: PromptStore,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["p-abc11111", "p-abc22222"])
    monkeypatch.setattr("tongyi_agent.store.prompts.new_prompt_id", lambda: next(ids))
    prompts.add(_v("one"), parent=None, author="user")
    prompts.add(_v("two"), parent=None, author="user")
    with pytest.raises(StoreError, match="ambiguous") as info:
        prompts.get("p-abc")
    assert str(info.value) == "prompt version id prefix 'p-abc' is ambiguous: give more characters"
    assert prompts.get("p-abc2").components["system"] == "two"
    with pytest.raises(StoreError, match="no prompt version id starts with 'p-fff'"):
        prompts.get("fff")


def test_new_ids_do_not_collide(prompts: PromptStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["p-00000001", "p-00000001", "p-00000002"])  # the second draw repeats the first
    monkeypatch.setattr("tongyi_agent.store.prompts.new_prompt_id", lambda: next(ids))
    a = prompts.add(_v("one"), parent=None, author="user")
    b = prompts.add(_v("two"), parent=None, author="user")
    assert (a.id, b.id) == ("p-00000001", "p-00000002")
    assert len(new_prompt_id()) == 10


@pytest.mark.parametrize("components", [{}, {"system": ""}, {"system": "   "}, {"": "text"}, {"system": 3}])
def test_components_must_be_non_empty_strings(prompts: PromptStore, components: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        prompts.add(components, parent=None, author="user")
    assert prompts.list() == []


def test_bad_parent_status_and_scores_are_rejected(prompts: PromptStore) -> None:
    with pytest.raises(StoreError, match="no prompt version id starts with"):
        prompts.add(DEFAULT, parent="p-fffffff0", author="user")
    with pytest.raises(ValueError, match="prompt status"):
        prompts.add(DEFAULT, parent=None, author="user", status="live")
    with pytest.raises(ValueError, match="must be a number"):
        prompts.add(DEFAULT, parent=None, author="user", scores={"val": "high"})  # type: ignore[dict-item]
    assert prompts.list() == []


def test_set_scores_merges(prompts: PromptStore) -> None:
    v = prompts.add(DEFAULT, parent=None, author="user", scores={"val": 0.25, "cost": 1.0})
    prompts.set_scores(v.id, {"val": 0.75, "test": 1})
    assert prompts.get(v.id).scores == {"val": 0.75, "cost": 1.0, "test": 1.0}


def test_set_status(prompts: PromptStore) -> None:
    base = prompts.ensure_default(DEFAULT)
    cand = prompts.add(_v("x"), parent=base.id, author="user")
    prompts.set_status(cand.id, "rejected", reason="worse on validation")
    assert prompts.get(cand.id).status == "rejected"
    assert prompts.events(1)[0] | {"id": 0, "created_at": 0} == {
        "id": 0, "version": cand.id, "action": "rejected", "reason": "worse on validation", "created_at": 0}
    with pytest.raises(ValueError, match="use activate"):
        prompts.set_status(cand.id, "active", reason="")
    with pytest.raises(StoreError, match="is the active prompt version"):
        prompts.set_status(base.id, "rejected", reason="")
    assert prompts.active() == base


# -- activation and rollback ----------------------------------------------------------------------


def test_activate_keeps_exactly_one_active_and_logs(store: TrajectoryStore, prompts: PromptStore) -> None:
    base = prompts.ensure_default(DEFAULT)
    cand = prompts.add(_v("Be brief."), parent=base.id, author="user")
    active = prompts.activate(cand.id[:6], reason="won on held-out tasks")
    assert active.id == cand.id and active.status == "active"
    assert _active_ids(store) == [cand.id]
    assert prompts.get(base.id).status == "retired"
    latest = prompts.events(2)
    assert [(e["version"], e["action"], e["reason"]) for e in latest] == [
        (cand.id, "activated", "won on held-out tasks"), (base.id, "retired", "won on held-out tasks")]
    # Re-activating the active version is a no-op, not a retire-and-activate of itself.
    assert prompts.activate(cand.id, reason="again").status == "active"
    assert len(prompts.events()) == 5 and _active_ids(store) == [cand.id]


def test_add_as_active_retires_the_previous(store: TrajectoryStore, prompts: PromptStore) -> None:
    base = prompts.ensure_default(DEFAULT)
    new = prompts.add(_v("new"), parent=base.id, author="user", status="active")
    assert _active_ids(store) == [new.id] and prompts.get(base.id).status == "retired"
    assert prompts.rollback(reason="undo").id == base.id


def test_rollback_returns_to_the_previous_active(store: TrajectoryStore, prompts: PromptStore) -> None:
    v1 = prompts.ensure_default(DEFAULT)
    v2 = prompts.add(_v("two"), parent=v1.id, author="user")
    v3 = prompts.add(_v("three"), parent=v2.id, author="user")
    prompts.activate(v2.id, reason="")
    prompts.activate(v3.id, reason="")

    back = prompts.rollback(reason="v3 regressed")
    assert back.id == v2.id and _active_ids(store) == [v2.id]
    assert prompts.get(v3.id).status == "retired"
    assert [(e["version"], e["action"]) for e in prompts.events(2)] == [(v2.id, "rolled_back"), (v3.id, "retired")]
    # A second rollback goes further back (undo history), not forth to v3 again.
    assert prompts.rollback(reason="").id == v1.id
    with pytest.raises(StoreError, match="nothing to roll back to"):
        prompts.rollback(reason="")
    assert _active_ids(store) == [v1.id]


def test_rollback_skips_versions_rejected_since(prompts: PromptStore) -> None:
    v1 = prompts.ensure_default(DEFAULT)
    v2 = prompts.add(_v("two"), parent=v1.id, author="user")
    v3 = prompts.add(_v("three"), parent=v1.id, author="user")
    prompts.activate(v2.id, reason="")
    prompts.activate(v3.id, reason="")
    prompts.set_status(v2.id, "rejected", reason="found a bug in it")
    assert prompts.rollback(reason="").id == v1.id


def test_rollback_without_history_errors(prompts: PromptStore) -> None:
    with pytest.raises(StoreError, match="no active prompt version"):
        prompts.rollback(reason="")
    v1 = prompts.ensure_default(DEFAULT)
    with pytest.raises(StoreError) as info:
        prompts.rollback(reason="")
    assert str(info.value) == f"nothing to roll back to: no version was active before {v1.id}"
    assert prompts.active() == v1


def test_failed_write_changes_nothing(store: TrajectoryStore, prompts: PromptStore) -> None:
    base = prompts.ensure_default(DEFAULT)
    events = prompts.events()
    with pytest.raises(StoreError):
        prompts.activate("p-fff", reason="")
    assert prompts.active() == base and prompts.events() == events
    assert not store.connection.in_transaction


# -- several processes ----------------------------------------------------------------------------


def activate_many(path: str, ids: list[str], rounds: int) -> None:
    """Child process: activate each of ``ids`` in turn, ``rounds`` times (spawned, so module-level)."""
    with TrajectoryStore(Path(path)) as store:
        prompts = PromptStore(store)
        for _ in range(rounds):
            for vid in ids:
                prompts.activate(vid, reason=f"process {os.getpid()}")


def test_concurrent_activate_keeps_exactly_one_active(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with TrajectoryStore(path) as store:
        prompts = PromptStore(store)
        base = prompts.ensure_default(DEFAULT)
        ids = [prompts.add(_v(f"v{i}"), parent=base.id, author="user").id for i in range(4)]
    procs = [SPAWN.Process(target=activate_many, args=(str(path), order, 25)) for order in (ids, ids[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(DEADLINE)
        if p.exitcode is None:  # bounded: never leave a child behind on a hang
            p.kill()
            p.join()
        assert p.exitcode == 0
    with TrajectoryStore(path) as store:
        prompts = PromptStore(store)
        assert len(_active_ids(store)) == 1
        statuses = [v.status for v in prompts.list()]
        assert statuses.count("active") == 1 and set(statuses) == {"active", "retired"}
        # The log agrees with the table: the last activation names the version that is active now.
        activations = [e for e in prompts.events(10_000) if e["action"] == "activated"]
        assert activations[0]["version"] == _active_ids(store)[0]
        assert len({e["reason"] for e in activations}) == 3  # the default's, and both children's
        assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
