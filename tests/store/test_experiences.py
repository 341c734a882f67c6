"""The experiences table: migration from an older store, FTS5 retrieval, use counting, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.factories import DAY0, make_run, make_spans
from tongyi_agent.store import (
    MIGRATIONS,
    ExperienceStore,
    RewardRecord,
    StoreError,
    TrajectoryStore,
    UseChanges,
    applied_migrations,
    connect,
    migrate,
)
from tongyi_agent.store.experiences import fts_query


def _keep(store: TrajectoryStore, question: str, root: str = "/p", **run_fields: object) -> int:
    run_id = store.record_run(make_run(question, root=root, **run_fields))
    return ExperienceStore(store).add(run_id=run_id, question=question, root=root, trajectory={"steps": []},
                                      answer="a", model="m", dialect="react", prompt_version=None,
                                      confirmed_by="task").id


def test_an_older_store_is_migrated_in_place_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = connect(path)
    migrate(conn, MIGRATIONS[:5])  # the schema before experiences existed
    conn.close()
    # Fill it through a store opened on the old schema only: write rows by the old migrations' tables.
    old = connect(path)
    old.execute("INSERT INTO runs (id, question, answer, status, started_at, seconds, root) "
                "VALUES ('r1', 'Which port?', '8443', 'success', ?, 1.0, '/p')", (DAY0,))
    old.execute("INSERT INTO spans (run_id, seq, kind, name, input, output) VALUES ('r1', 0, 'tool', 'read_file', "
                "'{\"path\": \"a.md\"}', '\"port 8443\"')")
    old.execute("INSERT INTO rewards (run_id, name, value, source, created_at) VALUES ('r1', 'task', 1.0, 'task', ?)",
                (DAY0,))
    old.execute("INSERT INTO feedback (run_id, score, created_at) VALUES ('r1', 0.9, ?)", (DAY0,))
    old.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
    old.execute("INSERT INTO prompt_versions (id, components, author, status, created_at) "
                "VALUES ('p-1', '{\"system\": \"x\"}', 'default', 'active', ?)", (DAY0,))
    old.close()

    with TrajectoryStore(path) as store:
        assert applied_migrations(store.connection) == [fn.__name__ for fn in MIGRATIONS]
        run = store.get_run("r1")
        assert (run.question, run.answer, run.root) == ("Which port?", "8443", "/p")
        assert [r.value for r in run.rewards] == [1.0]
        assert [s.output for s in store.iter_spans("r1")] == ["port 8443"]
        assert store.connection.execute("SELECT score FROM feedback").fetchone()[0] == 0.9
        assert store.get_meta("k") == "v"
        assert store.connection.execute("SELECT id FROM prompt_versions").fetchone()[0] == "p-1"
        assert ExperienceStore(store).counts() == {"exist": 0, "active": 0, "retired": 0}
        # The new table works on the migrated file.
        kept = ExperienceStore(store).add(run_id="r1", question="Which port?", root="/p", trajectory={}, answer="8443",
                                          model="m", dialect="react", prompt_version="p-1", confirmed_by="feedback")
        assert ExperienceStore(store).similar("which port is it", "/p", limit=2, recent=50)[0].id == kept.id


def test_a_store_from_before_per_run_uses_keeps_its_counters_and_adds_to_them(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = connect(path)
    migrate(conn, MIGRATIONS[:7])  # experiences with counters only, no use per run
    assert MIGRATIONS[7].__name__ == "m008_experience_uses"
    for n, (uses, failures, streak, status) in enumerate([(4, 3, 2, "active"), (5, 3, 3, "retired")]):
        conn.execute("INSERT INTO runs (id, question, answer, status, started_at, seconds, root) "
                     "VALUES (?, 'Which port?', '8443', 'success', ?, 1.0, '/p')", (f"r{n}", DAY0 + n))
        conn.execute("""INSERT INTO experiences (run_id, question, root, trajectory, answer, confirmed_by, status,
                            uses, failures, failure_streak, created_at, last_used_at)
                        VALUES (?, ?, '/p', '{}', '8443', 'task', ?, ?, ?, ?, ?, ?)""",
                     (f"r{n}", f"Which port, take {n}?", status, uses, failures, streak, DAY0 + n, DAY0 + 10))
    # A run that used the first one, counted in its totals back then.
    conn.execute("INSERT INTO runs (id, question, answer, status, started_at, seconds, root, metadata) "
                 "VALUES ('u0', 'Which port now?', '80', 'success', ?, 1.0, '/p', '{\"experiences\": [1]}')",
                 (DAY0 + 10,))
    conn.close()

    with TrajectoryStore(path) as store:
        memory = ExperienceStore(store)
        active, retired = memory.list()[::-1]
        assert (active.status, active.uses, active.failures, active.failure_streak) == ("active", 4, 3, 2)
        assert (retired.status, retired.uses, retired.failures, retired.failure_streak) == ("retired", 5, 3, 3)
        assert memory.uses(active.id) == [] and active.last_used_at == DAY0 + 10
        # A new failed use adds to the old streak: the third failure in a row retires it.
        later = store.record_run(make_run("later", metadata={"experiences": [active.id]}))
        assert memory.record_use(later, [active.id], success=False, retire_after=3) == UseChanges(retired=[active.id])
        now = memory.get(active.id)
        assert (now.status, now.uses, now.failures, now.failure_streak) == ("retired", 5, 4, 3)
        # Judged again as a success: the old totals stay, only this use changes.
        assert memory.rejudge_uses(later, success=True, retire_after=3) == UseChanges(reactivated=[active.id])
        now = memory.get(active.id)
        assert (now.status, now.uses, now.failures, now.failure_streak) == ("active", 5, 3, 0)
        # An old run's use has no row to judge again: rating it changes nothing (it is not counted twice).
        assert active.id == 1 and store.get_run("u0").metadata["experiences"] == [1]
        assert memory.rejudge_uses("u0", success=False, retire_after=3) == UseChanges()
        assert (memory.get(active.id).uses, memory.get(active.id).failures) == (5, 3)
        assert memory.get(retired.id).uses == 5


def test_transaction_commits_meta_together_and_rolls_back_on_error(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        with store.transaction() as tx:
            tx.set_meta("a", "1")
            tx.set_meta("b", tx.get_meta("a"))
        assert (store.get_meta("a"), store.get_meta("b")) == ("1", "1")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.delete_meta("a")
            tx.set_meta("c", "3")
            raise RuntimeError("boom")
        assert (store.get_meta("a"), store.get_meta("c")) == ("1", None)
        store.delete_meta("a")
        assert store.get_meta("a") is None


def test_similar_ranks_by_bm25_within_the_root_and_recent_window(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        port = _keep(store, "Which port does the billing service listen on?", started_at=DAY0)
        _keep(store, "Who leads project Heron?", started_at=DAY0 + 1)
        auth = _keep(store, "What port does the auth service use?", started_at=DAY0 + 2)
        _keep(store, "Which port does the billing service listen on?", root="/other", started_at=DAY0 + 3)
        memory = ExperienceStore(store)
        found = memory.similar("Which port does the payments service listen on?", "/p", limit=2, recent=50)
        assert [e.id for e in found] == [port, auth]
        assert all(e.root == "/p" for e in found)
        # Only the newest `recent` experiences are eligible.
        assert [e.id for e in memory.similar("billing port", "/p", limit=2, recent=1)] == [auth]
        assert memory.similar("the of and", "/p", limit=2, recent=50) == []


def test_ties_go_to_the_newer_experience_and_duplicates_count_once(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        _keep(store, "Who leads project Heron?")
        newer = _keep(store, "Who leads project Heron?")
        other = _keep(store, "Who leads project Kestrel?")
        found = ExperienceStore(store).similar("Who leads project Heron?", "/p", limit=2, recent=50)
        assert [e.id for e in found] == [newer, other]


def _use(memory: ExperienceStore, store: TrajectoryStore, ids: list[int], *, success: bool) -> UseChanges:
    """A later run shown ``ids``, recorded as one use of each."""
    run_id = store.record_run(make_run("later", metadata={"experiences": ids}))
    return memory.record_use(run_id, ids, success=success, retire_after=3)


def test_failures_lower_rank_and_three_in_a_row_retire(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        exact = _keep(store, "Which port does billing listen on?")
        loose = _keep(store, "Which port is open?")
        memory = ExperienceStore(store)
        assert memory.similar("Which port does billing listen on?", "/p", limit=1, recent=50)[0].id == exact
        assert _use(memory, store, [exact], success=False) == UseChanges()
        assert _use(memory, store, [exact], success=False) == UseChanges()
        # Two failures in a row divide its score by 3: the other one now ranks first.
        assert memory.similar("Which port does billing listen on?", "/p", limit=1, recent=50)[0].id == loose
        _use(memory, store, [exact], success=True)  # a success ends the streak
        assert memory.get(exact).failure_streak == 0
        for _ in range(2):
            _use(memory, store, [exact], success=False)
        assert _use(memory, store, [exact], success=False) == UseChanges(retired=[exact])
        kept = memory.get(exact)
        assert (kept.status, kept.uses, kept.failures) == ("retired", 6, 5)
        assert [e.id for e in memory.similar("billing port", "/p", limit=2, recent=50)] == [loose]
        assert memory.counts() == {"exist": 2, "active": 1, "retired": 1}


def test_a_run_counts_once_per_experience_and_can_be_judged_again(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        kept = _keep(store, "Which port does billing listen on?")
        memory = ExperienceStore(store)
        run_id = store.record_run(make_run("later", metadata={"experiences": [kept]}))
        memory.record_use(run_id, [kept, kept], success=True, retire_after=3)
        memory.record_use(run_id, [kept], success=True, retire_after=3)  # recorded again: still one use
        assert [(u.run_id, u.success) for u in memory.uses(kept)] == [(run_id, True)]
        assert (memory.get(kept).uses, memory.get(kept).failures) == (1, 0)
        memory.rejudge_uses(run_id, success=False, retire_after=3)
        memory.rejudge_uses(run_id, success=False, retire_after=3)
        assert [(u.run_id, u.success) for u in memory.uses(kept)] == [(run_id, False)]
        assert (memory.get(kept).uses, memory.get(kept).failures, memory.get(kept).failure_streak) == (1, 1, 1)
        memory.rejudge_uses(run_id, success=True, retire_after=3)
        assert (memory.get(kept).uses, memory.get(kept).failures, memory.get(kept).failure_streak) == (1, 0, 0)
        # A run that recorded no use (shown nothing) gains none by being judged.
        other = store.record_run(make_run("unrelated"))
        assert memory.rejudge_uses(other, success=False, retire_after=3) == UseChanges()
        assert memory.get(kept).uses == 1 and memory.uses(kept)[0].run_id == run_id


def test_rejudging_a_failed_use_as_a_success_brings_a_retired_experience_back(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        kept = _keep(store, "Which port does billing listen on?")
        memory = ExperienceStore(store)
        runs = []
        for _ in range(3):
            runs.append(store.record_run(make_run("later", metadata={"experiences": [kept]})))
            changes = memory.record_use(runs[-1], [kept], success=False, retire_after=3)
        assert changes == UseChanges(retired=[kept]) and memory.get(kept).status == "retired"
        # The middle run is rated good: the latest three uses no longer all failed.
        assert memory.rejudge_uses(runs[1], success=True, retire_after=3) == UseChanges(reactivated=[kept])
        back = memory.get(kept)
        assert (back.status, back.uses, back.failures, back.failure_streak) == ("active", 3, 2, 1)
        assert memory.similar("billing port", "/p", limit=1, recent=50)[0].id == kept
        # Rated down again: retired again, still three uses.
        assert memory.rejudge_uses(runs[1], success=False, retire_after=3) == UseChanges(retired=[kept])
        assert (memory.get(kept).status, memory.get(kept).uses) == ("retired", 3)


def test_a_forgotten_experience_takes_its_uses_with_it(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        kept = _keep(store, "Which port does billing listen on?")
        memory = ExperienceStore(store)
        run_id = store.record_run(make_run("later", metadata={"experiences": [kept]}))
        memory.record_use(run_id, [kept], success=False, retire_after=3)
        memory.forget(kept)
        assert store.connection.execute("SELECT COUNT(*) FROM experience_uses").fetchone()[0] == 0
        # Judging the run again after the experience is gone changes nothing and does not fail.
        assert memory.rejudge_uses(run_id, success=True, retire_after=3) == UseChanges()
        assert memory.record_use(run_id, [kept], success=True, retire_after=3) == UseChanges()


def test_forget_redaction_and_cascade(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite", secrets=["sk-live-123456"]) as store:
        run_id = store.record_run(make_run("token sk-live-123456?", root="/p"), make_spans())
        memory = ExperienceStore(store)
        kept = memory.add(run_id=run_id, question="token sk-live-123456?", root="/p",
                          trajectory={"steps": [{"observation": "key sk-live-123456"}]}, answer="sk-live-123456",
                          model="m", dialect="native", prompt_version=None, confirmed_by="feedback")
        assert "sk-live" not in str(kept)
        assert memory.add(run_id=run_id, question="again", root="/p", trajectory={}, answer="", model="m",
                          dialect="native", prompt_version=None, confirmed_by="task").id == kept.id
        assert memory.forget(kept.id).id == kept.id
        with pytest.raises(StoreError, match="no experience"):
            memory.get(kept.id)
        with pytest.raises(StoreError, match="no run"):
            memory.add(run_id="nope", question="q", root="/p", trajectory={}, answer="", model="m", dialect="react",
                       prompt_version=None, confirmed_by="task")


def test_usage_outcomes_split_runs_with_and_without_examples(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        store.record_run(make_run("a", metadata={"experiences": [1]}, rewards=[RewardRecord("task", 1.0, "task")]))
        store.record_run(make_run("b", status="forced", metadata={"experiences": []},
                                  rewards=[RewardRecord("task", 0.0, "task")]))
        store.record_run(make_run("c", rewards=[RewardRecord("task", 1.0, "task")]))
        outcome = ExperienceStore(store).usage_outcomes("task", min_reward=0.7, confirmed=0.5)
        assert outcome["with"] == {"runs": 1, "success_rate": 1.0, "mean_reward": 1.0}
        assert outcome["without"] == {"runs": 2, "success_rate": 0.5, "mean_reward": 0.5}


def test_usage_outcomes_judge_by_the_latest_rating_first(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        used = {"experiences": [1]}
        right = store.record_run(make_run("a", metadata=used, rewards=[RewardRecord("task", 1.0, "task")]))
        wrong = store.record_run(make_run("b", metadata=used, rewards=[RewardRecord("task", 0.0, "task")]))
        store.record_run(make_run("c", metadata=used, rewards=[RewardRecord("quality", 0.8)]))  # target >= 0.7
        store.record_run(make_run("d", metadata=used, status="forced", rewards=[RewardRecord("quality", 0.9)]))
        store.record_run(make_run("e", metadata=used))  # no reward at all: not a success
        memory = ExperienceStore(store)

        def rate() -> float:
            return memory.usage_outcomes("quality", min_reward=0.7, confirmed=0.5)["with"]["success_rate"]

        assert rate() == 2 / 5  # a (task 1) and c (target)
        store.add_feedback(right, -1.0)  # thumbs-down: stored as 0, below 0.5
        assert rate() == 1 / 5
        store.add_feedback(wrong, 0.5)  # a rating outranks the known answer
        assert rate() == 2 / 5
        store.add_feedback(right, 1.0)  # the latest rating counts
        assert rate() == 3 / 5


def test_fts_query_quotes_content_words() -> None:
    assert fts_query('Which "port" does billing-v2 use? (AND OR)') == '"port" OR "billing" OR "v2" OR "use"'
    assert fts_query("the of") == ""
