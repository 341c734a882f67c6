"""A/B experiments: assignment, per-arm stats from SQL, and the significance-tested decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.factories import make_run
from tongyi_agent.config.training import ExperimentsSettings
from tongyi_agent.learn.evaluation.experiments import (
    EXPERIMENT_KEY,
    HISTORY_KEY,
    Experiment,
    ExperimentManager,
    assign_arm,
    permutation_p,
    sign_flip_p,
)
from tongyi_agent.store import PromptStore, RewardRecord, StoreError, TrajectoryStore
from tongyi_agent.store.records import RunStatus

TARGET = "response_quality"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TrajectoryStore]:
    with TrajectoryStore(tmp_path / "trajectories.sqlite") as s:
        yield s


@pytest.fixture
def prompts(store: TrajectoryStore) -> PromptStore:
    return PromptStore(store)


@pytest.fixture
def versions(prompts: PromptStore) -> tuple[str, str]:
    """(active control id, candidate treatment id)."""
    control = prompts.ensure_default({"system": "You are a research assistant."})
    treatment = prompts.add({"system": "You are a careful research assistant. Cite sources."},
                            parent=control.id, author="optimizer:test")
    return control.id, treatment.id


def manager(store: TrajectoryStore, *, ratio: float = 0.5, duration: int = 40,
            enabled: bool = True) -> ExperimentManager:
    settings = ExperimentsSettings(enable_ab_testing=enabled, control_ratio=ratio, experiment_duration=duration)
    return ExperimentManager(store, settings, TARGET)


def record(store: TrajectoryStore, experiment: Experiment, arm: str, question: str, reward: float | None, *,
           at: float, version: str | None = None, status: RunStatus = "success", seconds: float = 1.0,
           ab_arm: str | None = "same") -> str:
    """One run served by ``arm``, ``at`` seconds after the experiment started."""
    rewards = [] if reward is None else [RewardRecord(TARGET, reward, "builtin"),
                                         RewardRecord("response_speed", 0.0, "builtin")]  # other names must not leak in
    run = make_run(question, started_at=experiment.started_at + at, seconds=seconds, status=status,
                   prompt_version=version or experiment.version(arm), ab_arm=arm if ab_arm == "same" else ab_arm,
                   rewards=rewards)
    return store.record_run(run)


# -- assignment ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_assignment_is_deterministic_and_follows_the_ratio(store: TrajectoryStore, versions: tuple[str, str],
                                                           ratio: float) -> None:
    m = manager(store, ratio=ratio)
    experiment = m.start(versions[1])
    keys = [f"run-{i}" for i in range(2000)]
    first = [m.assign(key) for key in keys]
    assert [m.assign(key) for key in keys] == first  # same key, same arm, every time
    assert all(a is not None and a[1] == (versions[0] if a[0] == "control" else versions[1]) for a in first)
    share = sum(a is not None and a[0] == "control" for a in first) / len(keys)
    # Binomial sd at n=2000 is about 0.011; 0.04 is well over 3 sd.
    assert abs(share - ratio) < 0.04
    # The experiment id is part of the hash: another experiment splits the same keys differently.
    other = [assign_arm(experiment.id + "x", key, ratio) for key in keys]
    assert other != [a[0] for a in first if a is not None]


def test_assign_is_none_without_a_running_experiment(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    assert manager(store).assign("run-1") is None
    manager(store).start(versions[1])
    assert manager(store).assign("run-1") is not None
    assert manager(store, enabled=False).assign("run-1") is None  # switching A/B off pauses assignment


def test_ratio_extremes_send_everything_to_one_arm() -> None:
    assert {assign_arm("exp-1", f"k{i}", 1.0) for i in range(200)} == {"control"}
    assert {assign_arm("exp-1", f"k{i}", 0.0) for i in range(200)} == {"treatment"}


# -- starting ------------------------------------------------------------------------------------


def test_start_records_the_experiment_in_meta(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    experiment = manager(store, ratio=0.3, duration=60).start(versions[1][:6])  # a prefix is enough
    assert (experiment.control, experiment.treatment) == versions
    assert (experiment.control_ratio, experiment.duration, experiment.status) == (0.3, 60, "running")
    assert experiment.id.startswith("exp-")
    assert manager(store).current() == experiment  # read back from meta by a fresh manager
    assert store.get_meta(EXPERIMENT_KEY) is not None


def test_start_refuses_a_second_experiment(store: TrajectoryStore, prompts: PromptStore,
                                           versions: tuple[str, str]) -> None:
    first = manager(store).start(versions[1])
    another = prompts.add({"system": "Third prompt."}, parent=versions[0], author="user")
    with pytest.raises(StoreError, match=f"experiment {first.id} is already running"):
        manager(store).start(another.id)
    assert manager(store).current() == first


def test_start_refuses_a_treatment_that_is_not_a_candidate(store: TrajectoryStore, prompts: PromptStore,
                                                           versions: tuple[str, str]) -> None:
    with pytest.raises(StoreError, match="is active, not a candidate"):
        manager(store).start(versions[0])
    prompts.set_status(versions[1], "rejected", reason="test")
    with pytest.raises(StoreError, match="is rejected, not a candidate"):
        manager(store).start(versions[1])
    assert manager(store).current() is None


def test_start_refuses_when_ab_testing_is_off(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    with pytest.raises(StoreError, match="A/B testing is off"):
        manager(store, enabled=False).start(versions[1])


# -- stats ---------------------------------------------------------------------------------------


def test_arm_stats_on_a_known_data_set(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    m = manager(store)
    e = m.start(versions[1])
    record(store, e, "control", "q1", 0.2, at=1, seconds=1.0)
    record(store, e, "control", "q2", 0.4, at=2, seconds=2.0, status="failed")
    record(store, e, "control", "q3", 0.6, at=3, seconds=3.0)
    record(store, e, "control", "q4", None, at=4, seconds=6.0)  # counted, but has no reward to average
    record(store, e, "treatment", "q1", 0.8, at=5, seconds=4.0)
    record(store, e, "treatment", "q2", 1.0, at=6, seconds=2.0, status="forced")
    # Not the experiment's: wrong version for the arm, before the start, and no arm at all.
    record(store, e, "control", "q9", 0.0, at=7, version=versions[1])
    record(store, e, "treatment", "q9", 0.0, at=-10)
    record(store, e, "control", "q9", 0.0, at=8, ab_arm=None)

    stats = m.arm_stats()
    control, treatment = stats["control"], stats["treatment"]
    assert control["runs"] == 4
    assert control["mean_reward"] == pytest.approx(0.4)
    assert control["success_rate"] == pytest.approx(0.75)
    assert control["mean_seconds"] == pytest.approx(3.0)
    assert treatment["runs"] == 2
    assert treatment["mean_reward"] == pytest.approx(0.9)
    assert treatment["success_rate"] == pytest.approx(0.5)
    assert treatment["mean_seconds"] == pytest.approx(3.0)


def test_arm_stats_with_no_runs_yet(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    m = manager(store)
    with pytest.raises(StoreError, match="no experiment is running"):
        m.arm_stats()
    m.start(versions[1])
    assert m.arm_stats()["treatment"] == {"runs": 0, "mean_reward": None, "success_rate": 0.0, "mean_seconds": 0.0}


# -- deciding ------------------------------------------------------------------------------------


def fill_paired(store: TrajectoryStore, e: Experiment, *, lift: float, questions: int = 10,
                per_arm: int = 2) -> None:
    """Each question answered ``per_arm`` times on each arm; the treatment scores ``lift`` higher,
    with question-to-question variation that a paired test cancels out."""
    at = 1.0
    for q in range(questions):
        base = 0.2 + 0.06 * q  # questions differ a lot in difficulty
        for rep in range(per_arm):
            noise = 0.02 if rep % 2 else -0.02
            record(store, e, "control", f"question {q}", base + noise, at=at)
            record(store, e, "treatment", f"question {q}", min(1.0, base + lift - noise), at=at + 0.5)
            at += 1


def test_maybe_conclude_waits_for_the_duration(store: TrajectoryStore, versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    e = m.start(versions[1])
    fill_paired(store, e, lift=0.3, questions=9)  # 36 runs
    assert m.maybe_conclude() is None
    assert m.current() == e
    assert PromptStore(store).active().id == versions[0]  # type: ignore[union-attr]


def test_clearly_better_treatment_is_promoted(store: TrajectoryStore, prompts: PromptStore,
                                              versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    e = m.start(versions[1])
    fill_paired(store, e, lift=0.25)
    decision = m.maybe_conclude()

    assert decision is not None
    assert (decision.action, decision.test, decision.questions) == ("promote", "paired", 10)
    assert decision.p_value < 0.05
    assert decision.means["treatment"] > decision.means["control"]  # type: ignore[operator]
    assert decision.runs == {"control": 20, "treatment": 20}
    assert prompts.active().id == versions[1]  # type: ignore[union-attr]
    assert prompts.get(versions[0]).status == "retired"
    reasons = {(ev["version"], ev["action"]): ev["reason"] for ev in prompts.events()}
    assert reasons[(versions[1], "activated")] == decision.reason
    assert decision.reason.startswith(f"A/B {e.id}: treatment ")
    assert "paired permutation p=" in decision.reason

    assert m.current() is None  # the next experiment may start
    [past] = m.history()
    assert (past.id, past.status) == (e.id, "promoted")
    assert past.result is not None and past.result["action"] == "promote"
    assert m.maybe_conclude() is None  # concluded once only


def test_equal_arms_roll_back(store: TrajectoryStore, prompts: PromptStore, versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    e = m.start(versions[1])
    fill_paired(store, e, lift=0.0)
    decision = m.maybe_conclude()

    assert decision is not None
    assert (decision.action, decision.test) == ("roll_back", "paired")
    assert decision.p_value >= 0.05
    assert prompts.get(versions[1]).status == "rejected"
    assert prompts.active().id == versions[0]  # type: ignore[union-attr]
    rejected = [ev for ev in prompts.events() if ev["action"] == "rejected"]
    assert [ev["version"] for ev in rejected] == [versions[1]]
    assert rejected[0]["reason"] == decision.reason and "rolled back" in decision.reason
    assert m.history()[-1].status == "rolled_back"


def test_worse_treatment_is_rolled_back_even_when_significant(store: TrajectoryStore, prompts: PromptStore,
                                                              versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    fill_paired(store, m.start(versions[1]), lift=-0.15)
    decision = m.maybe_conclude()
    assert decision is not None and decision.action == "roll_back"
    assert decision.p_value < 0.05  # significant, but in the wrong direction
    assert prompts.get(versions[1]).status == "rejected"


def test_unpaired_test_when_questions_do_not_repeat(store: TrajectoryStore, prompts: PromptStore,
                                                    versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    e = m.start(versions[1])
    for i in range(20):  # every question asked once
        record(store, e, "control", f"control question {i}", 0.4 + 0.01 * (i % 5), at=i + 1)
        record(store, e, "treatment", f"treatment question {i}", 0.7 + 0.01 * (i % 5), at=i + 1.5)
    decision = m.maybe_conclude()
    assert decision is not None
    assert (decision.test, decision.action, decision.questions) == ("permutation", "promote", 0)
    assert decision.means == {"control": pytest.approx(0.42), "treatment": pytest.approx(0.72)}
    assert decision.p_value < 0.05 and "permutation p=" in decision.reason and "paired" not in decision.reason
    assert prompts.active().id == versions[1]  # type: ignore[union-attr]


def test_too_few_shared_questions_fall_back_to_the_unpaired_test(store: TrajectoryStore,
                                                                 versions: tuple[str, str]) -> None:
    m = manager(store, duration=32)
    e = m.start(versions[1])
    fill_paired(store, e, lift=0.0, questions=4)  # 4 shared questions: below the paired minimum of 5
    for i in range(8):
        record(store, e, "control", f"only control {i}", 0.5, at=100 + i)
        record(store, e, "treatment", f"only treatment {i}", 0.5, at=100.5 + i)
    decision = m.maybe_conclude()
    assert decision is not None and decision.test == "permutation" and decision.action == "roll_back"


def test_a_treatment_without_rewarded_runs_is_rolled_back(store: TrajectoryStore, prompts: PromptStore,
                                                          versions: tuple[str, str]) -> None:
    m = manager(store, duration=6)
    e = m.start(versions[1])
    for i in range(6):
        record(store, e, "control", f"q{i}", 0.9, at=i + 1)
    decision = m.maybe_conclude()
    assert decision is not None
    assert (decision.action, decision.p_value, decision.means["treatment"]) == ("roll_back", 1.0, None)
    assert prompts.get(versions[1]).status == "rejected"


def test_a_treatment_moved_by_hand_is_left_alone(store: TrajectoryStore, prompts: PromptStore,
                                                 versions: tuple[str, str]) -> None:
    m = manager(store, duration=40)
    fill_paired(store, m.start(versions[1]), lift=0.0)
    prompts.activate(versions[1], reason="user chose it")
    decision = m.maybe_conclude()
    assert decision is not None and decision.action == "roll_back" and not decision.applied
    assert prompts.active().id == versions[1]  # type: ignore[union-attr]
    assert m.history()[-1].result["applied"] is False  # type: ignore[index]


def test_history_keeps_the_last_twenty(store: TrajectoryStore, prompts: PromptStore,
                                       versions: tuple[str, str]) -> None:
    m = manager(store, duration=2)
    ids = []
    for n in range(22):
        candidate = prompts.add({"system": f"Prompt {n}."}, parent=versions[0], author="user")
        e = m.start(candidate.id)
        ids.append(e.id)
        record(store, e, "control", f"q{n}", 0.5, at=1)
        record(store, e, "treatment", f"q{n}", 0.5, at=2)
        assert m.maybe_conclude() is not None
    assert [x.id for x in m.history()] == ids[-20:]
    assert store.get_meta(HISTORY_KEY) is not None


# -- the statistics ------------------------------------------------------------------------------


def test_sign_flip_p_matches_the_exact_value_and_is_reproducible() -> None:
    diffs = [0.1] * 10  # exact two-sided p: 2 of 1024 sign patterns are as extreme
    p = sign_flip_p(diffs)
    assert p == sign_flip_p(diffs)
    assert p == pytest.approx(2 / 1024, abs=0.002)
    assert sign_flip_p([0.0] * 8) == 1.0
    assert sign_flip_p([]) == 1.0


def test_permutation_p_separates_shifted_groups_only() -> None:
    a = [0.1, 0.2, 0.3, 0.4, 0.5] * 4
    assert permutation_p(a, [x + 0.5 for x in a]) < 0.001
    assert permutation_p(a, list(reversed(a))) == 1.0
    assert permutation_p(a, []) == 1.0
