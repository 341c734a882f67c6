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


def test_failures_lower_rank_and_three_in_a_row_retire(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        exact = _keep(store, "Which port does billing listen on?")
        loose = _keep(store, "Which port is open?")
        memory = ExperienceStore(store)
        assert memory.similar("Which port does billing listen on?", "/p", limit=1, recent=50)[0].id == exact
        assert memory.record_use([exact], success=False, retire_after=3) == []
        assert memory.record_use([exact], success=False, retire_after=3) == []
        # Two failures in a row divide its score by 3: the other one now ranks first.
        assert memory.similar("Which port does billing listen on?", "/p", limit=1, recent=50)[0].id == loose
        memory.record_use([exact], success=True, retire_after=3)  # a success ends the streak
        assert memory.get(exact).failure_streak == 0
        for _ in range(2):
            memory.record_use([exact], success=False, retire_after=3)
        assert memory.record_use([exact], success=False, retire_after=3) == [exact]
        kept = memory.get(exact)
        assert (kept.status, kept.uses, kept.failures) == ("retired", 6, 5)
        assert [e.id for e in memory.similar("billing port", "/p", limit=2, recent=50)] == [loose]
        assert memory.counts() == {"exist": 2, "active": 1, "retired": 1}


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
        outcome = ExperienceStore(store).usage_outcomes("task")
        assert outcome["with"] == {"runs": 1, "success_rate": 1.0, "mean_reward": 1.0}
        assert outcome["without"] == {"runs": 2, "success_rate": 0.5, "mean_reward": 0.5}


def test_fts_query_quotes_content_words() -> None:
    assert fts_query('Which "port" does billing-v2 use? (AND OR)') == '"port" OR "billing" OR "v2" OR "use"'
    assert fts_query("the of") == ""
