"""The learned tool policy: arms, features, the two bandits, reward shaping and persistence."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tongyi_agent.learn.policy.tool_policy import (
    ARM_KEY,
    FEATURE_DIM,
    FEATURE_NAMES,
    FEATURES_KEY,
    POLICY_KEY,
    LinUCBPolicy,
    PolicyArm,
    PolicyStore,
    ThompsonPolicy,
    ToolPolicy,
    batch_update,
    default_arms,
    features,
    greedy,
    policy_reward,
    root_stats,
    run_policy_metadata,
    run_quality,
)
from tongyi_agent.store import RewardRecord, RunRecord, TrajectoryStore
from tongyi_agent.tools import FILE_TOOLS

AVAILABLE = ["list_files", "read_file", "search_files", "run_python", "pdf_text"]
ARMS = default_arms(AVAILABLE, profile_tools=list(FILE_TOOLS), max_steps=8)

# Three kinds of question, each with its own root, and the arm that serves it best.
CONTEXTS: list[tuple[np.ndarray, str]] = [
    (features("How many orders in total are in sales.csv?", {"csv": 40, "code": 2}), "compute"),
    (features("Which file sets the server port?", {"code": 300, "markdown": 5}), "search-first"),
    (features("Summarise the introduction of the annual report for me, section by section please.",
              {"pdf": 12, "markdown": 60}), "read-whole"),
]  # fmt: skip
# Mean reward per (context, arm): the best arm leads the runner-up by 0.25.
OTHERS = {"default": 0.5, "search-first": 0.45, "read-whole": 0.4, "compute": 0.35, "lean": 0.3, "full": 0.55}


def simulate(policy: ToolPolicy, rounds: int = 1500, seed: int = 1) -> list[tuple[int, str]]:
    """Round-robin over CONTEXTS with noisy rewards; returns (context index, chosen arm) per round."""
    noise = random.Random(seed)
    history: list[tuple[int, str]] = []
    for i in range(rounds):
        c = i % len(CONTEXTS)
        x, best = CONTEXTS[c]
        arm = policy.choose(x)
        mean = 0.8 if arm.name == best else OTHERS[arm.name]
        policy.update(arm.name, x, min(1.0, max(0.0, mean + noise.gauss(0.0, 0.15))))
        history.append((c, arm.name))
    return history


def make_policy(kind: str, seed: int = 0, epsilon: float = 0.05) -> ToolPolicy:
    if kind == "linucb":
        return LinUCBPolicy(ARMS, FEATURE_DIM, alpha=0.5, epsilon=epsilon, rng=random.Random(seed))
    return ThompsonPolicy(ARMS, FEATURE_DIM, v=0.5, epsilon=epsilon, rng=random.Random(seed))


def record(store: TrajectoryStore, metadata: dict[str, object], reward: float | None, *, started_at: float,
           model_calls: int = 2, tokens: int = 1000, seconds: float = 5.0) -> str:  # fmt: skip
    run = RunRecord(question="q?", answer="a", status="success", started_at=started_at, seconds=seconds,
                    model_calls=model_calls, input_tokens=tokens, output_tokens=0, metadata=metadata)  # fmt: skip
    rewards = [] if reward is None else [RewardRecord("response_quality", reward)]
    return store.record_run(run, rewards=rewards)


# -- arms ----------------------------------------------------------------------------------------


def test_default_arms_cover_the_documented_set_up() -> None:
    by_name = {a.name: a for a in ARMS}
    assert list(by_name) == ["default", "search-first", "read-whole", "compute", "lean", "full"]
    assert by_name["default"] == PolicyArm("default", FILE_TOOLS, 8, "")
    assert by_name["search-first"].tools == ("search_files", "read_file")
    assert by_name["search-first"].max_steps == 6
    assert by_name["read-whole"].tools == ("list_files", "read_file", "search_files")
    assert by_name["compute"].tools == ("search_files", "read_file", "run_python")
    assert "run_python" in by_name["compute"].hint
    assert by_name["lean"] == PolicyArm("lean", ("search_files",), 3, by_name["lean"].hint)
    assert by_name["full"].tools == tuple(AVAILABLE)
    assert all(a.hint for a in ARMS if a.name not in {"default", "full"})


def test_default_arms_only_use_available_tools() -> None:
    arms = default_arms(["read_file", "search_files"], max_steps=5)
    names = [a.name for a in arms]
    # compute needs run_python, so it is left out rather than offered without it.
    assert "compute" not in names
    assert {t for a in arms for t in a.tools} <= {"read_file", "search_files"}
    assert next(a for a in arms if a.name == "default").max_steps == 5
    assert default_arms([]) == []


def test_default_arms_drop_an_arm_identical_to_an_earlier_one() -> None:
    arms = default_arms(["read_file", "search_files"], max_steps=8)
    assert [a.name for a in arms] == ["default", "search-first", "read-whole", "lean"]  # full == default


# -- features ------------------------------------------------------------------------------------


def test_features_are_fixed_length_deterministic_and_bounded() -> None:
    questions = ["", "What is the port?", "How many rows total in 2023 vs 2024? " * 10, "Where is the file?"]
    for q in questions:
        x = features(q, {"csv": 5000, "pdf": 1})
        assert x.shape == (FEATURE_DIM,) == (len(FEATURE_NAMES),)
        assert np.array_equal(x, features(q, {"csv": 5000, "pdf": 1}))
        assert x.min() >= 0.0 and x.max() <= 1.0 and x[0] == 1.0


def test_features_detect_question_kinds() -> None:
    named = dict(zip(FEATURE_NAMES, features("How many orders in total in 2023 compared to 2022?"), strict=True))
    assert named["computation"] == named["has_digits"] == named["compare"] == 1.0
    assert named["location"] == named["lookup"] == 0.0
    named = dict(zip(FEATURE_NAMES, features("Which file defines who owns the repo?"), strict=True))
    assert named["location"] == named["lookup"] == 1.0 and named["computation"] == 0.0
    assert named["length"] == 0.0
    # "mean" as a word, not inside "meaning"; substrings must not trigger a kind.
    assert features("the meaning of whatever")[FEATURE_NAMES.index("computation")] == 0.0
    assert features("the meaning of whatever")[FEATURE_NAMES.index("lookup")] == 0.0


def test_root_stats_counts_by_extension_and_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for i in range(3):
        (tmp_path / "data" / f"t{i}.csv").write_text("a,b\n")
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "README.md").write_text("# hi")
    (tmp_path / "app.py").write_text("x = 1")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "lib.js").write_text("skipped")
    stats = root_stats(tmp_path)
    assert stats == {"files": 6, "csv": 3, "pdf": 1, "markdown": 1, "code": 1}
    assert root_stats(tmp_path, limit=2)["files"] == 2
    assert root_stats(tmp_path / "missing") == {"files": 0, "csv": 0, "pdf": 0, "markdown": 0, "code": 0}
    x = features("q", stats)
    assert x[FEATURE_NAMES.index("csv_files")] > x[FEATURE_NAMES.index("pdf_files")] > 0.0


# -- reward --------------------------------------------------------------------------------------


def test_policy_reward_bounds_and_cost_penalty() -> None:
    assert policy_reward(None, 1, 100, 1.0, 0.5) == 0.0
    assert policy_reward(0.8, 5, 5000, 10.0, 0.0) == 0.8
    cheap = policy_reward(0.8, 1, 500, 2.0, 0.3)
    dear = policy_reward(0.8, 10, 20_000, 60.0, 0.3)
    assert 0.8 > cheap > dear == pytest.approx(0.5)  # a whole budget of everything costs cost_weight
    assert policy_reward(0.1, 100, 10**6, 1e4, 1.0) == 0.0
    assert policy_reward(1.5, 0, 0, 0.0, 0.0) == 1.0
    assert policy_reward(float("nan"), 0, 0, 0.0, 0.0) == 0.0


# -- the bandits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_policy_converges_to_the_best_arm_per_context(kind: str) -> None:
    history = simulate(make_policy(kind))
    for c, (_, best) in enumerate(CONTEXTS):
        last = [arm for ctx, arm in history if ctx == c][-300:]
        share = last.count(best) / len(last)
        assert share > 0.8, f"{kind}: context {c} chose {best} in only {share:.0%} of the last 300 rounds"


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_policy_explores_early(kind: str) -> None:
    early = {arm for _, arm in simulate(make_policy(kind, epsilon=0.0), rounds=60)}
    assert len(early) >= 4


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_choice_per_context_is_the_best_arm_after_training(kind: str, seed: int) -> None:
    """Convergence on a simulated contextual reward: each kind of question has its own best arm."""
    policy = make_policy(kind, seed=seed)
    simulate(policy, rounds=600, seed=seed)
    learned = greedy(policy)
    for x, best in CONTEXTS:
        assert {learned.choose(x).name for _ in range(20)} == {best}, f"{kind}, seed {seed}"
    assert (policy.exploration, policy.epsilon) == (0.5, 0.05)  # greedy() copied, it did not change the policy


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_exploring_policy_tries_every_arm_once_before_trusting_rewards(kind: str) -> None:
    # The reported failure: rewards near 1 made the first arm outscore every untried one for good.
    policy = make_policy(kind, epsilon=0.0)
    x, _ = CONTEXTS[0]
    first = []
    for _ in ARMS:
        arm = policy.choose(x)
        policy.update(arm.name, x, 1.0)
        first.append(arm.name)
    assert sorted(first) == sorted(a.name for a in ARMS)


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_greedy_policy_skips_the_warm_up(kind: str) -> None:
    policy = make_policy(kind)
    x, _ = CONTEXTS[1]
    policy.update("lean", x, 0.9)
    assert {greedy(policy).choose(x).name for _ in range(50)} == {"lean"}


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_epsilon_floor_keeps_trying_other_arms(kind: str) -> None:
    policy = make_policy(kind, epsilon=0.3)
    x, _ = CONTEXTS[0]
    for _ in range(200):  # make "lean" a certain winner and every other arm a certain loser
        for arm in ARMS:
            policy.update(arm.name, x, 1.0 if arm.name == "lean" else 0.0)
    others = Counter(policy.choose(x).name for _ in range(3000))
    share = 1 - others["lean"] / 3000
    # Exploration picks uniformly, lean included, so the expected share of other arms is 0.3 × 5/6.
    assert share == pytest.approx(0.25, abs=0.04)
    assert len(others) == len(ARMS)
    greedy = make_policy(kind, epsilon=0.0)
    for arm in ARMS:
        for _ in range(200):
            greedy.update(arm.name, x, 1.0 if arm.name == "lean" else 0.0)
    assert {greedy.choose(x).name for _ in range(300)} == {"lean"}


def test_invalid_settings_and_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        LinUCBPolicy(ARMS, FEATURE_DIM, epsilon=1.5)
    with pytest.raises(ValueError, match="exploration"):
        ThompsonPolicy(ARMS, FEATURE_DIM, v=-1)
    with pytest.raises(ValueError, match="unique"):
        LinUCBPolicy([ARMS[0], ARMS[0]], FEATURE_DIM)
    policy = LinUCBPolicy(ARMS, FEATURE_DIM, rng=random.Random(0))
    with pytest.raises(ValueError, match="features"):
        policy.choose([1.0, 0.0])
    with pytest.raises(KeyError, match="nope"):
        policy.update("nope", CONTEXTS[0][0], 1.0)


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_round_trip_through_dict_chooses_identically(kind: str) -> None:
    policy = make_policy(kind, seed=3)
    simulate(policy, rounds=150)
    data = json.loads(json.dumps(policy.to_dict()))  # through JSON, as the store keeps it
    restored = type(policy).from_dict(data, rng=random.Random(42))
    policy.rng = random.Random(42)  # type: ignore[attr-defined]  # the RNG is not state: align both
    xs = [CONTEXTS[i % 3][0] for i in range(200)]
    assert [policy.choose(x).name for x in xs] == [restored.choose(x).name for x in xs]
    assert restored.summary() == policy.summary()
    assert restored.to_dict() == policy.to_dict()


def test_summary_reports_pulls_and_observed_mean() -> None:
    policy = LinUCBPolicy(ARMS, FEATURE_DIM, rng=random.Random(0))
    x = CONTEXTS[0][0]
    policy.update("lean", x, 1.0)
    policy.update("lean", x, 0.5)
    rows = {row["arm"]: row for row in policy.summary()}
    assert list(rows) == [a.name for a in ARMS]
    assert rows["lean"] == {"arm": "lean", "pulls": 2, "mean_reward": 0.75}
    assert rows["compute"] == {"arm": "compute", "pulls": 0, "mean_reward": None}
    policy.reset()
    assert all(row["pulls"] == 0 for row in policy.summary())


# -- persistence ---------------------------------------------------------------------------------


def test_policy_store_save_and_load(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        policies = PolicyStore(store, kind="linucb", epsilon=0.0, rng=random.Random(0))
        fresh = policies.load(ARMS)
        assert isinstance(fresh, LinUCBPolicy) and all(r["pulls"] == 0 for r in fresh.summary())
        simulate(fresh, rounds=90)
        policies.save(fresh)
        assert json.loads(store.get_meta(POLICY_KEY) or "{}")["kind"] == "linucb"

    with TrajectoryStore(tmp_path / "t.sqlite") as store:  # a new process reads it back
        loaded = PolicyStore(store, kind="linucb", epsilon=0.0, rng=random.Random(0)).load(ARMS)
        assert loaded.summary() == fresh.summary()
        assert [loaded.choose(x).name for x, _ in CONTEXTS] == [fresh.choose(x).name for x, _ in CONTEXTS]
        # Switching kind keeps the statistics (both kinds learn the same posterior).
        thompson = PolicyStore(store, kind="thompson", rng=random.Random(0)).load(ARMS)
        assert isinstance(thompson, ThompsonPolicy) and thompson.summary() == fresh.summary()
        # Another arm set means the statistics describe set-ups that are gone: start again.
        other = PolicyStore(store).load(ARMS[:3])
        assert [r["arm"] for r in other.summary()] == [a.name for a in ARMS[:3]]
        assert all(r["pulls"] == 0 for r in other.summary())
        changed = [*ARMS[:-1], PolicyArm(ARMS[-1].name, ("read_file",), 8, "")]
        assert all(r["pulls"] == 0 for r in PolicyStore(store).load(changed).summary())
        store.set_meta(POLICY_KEY, "{not json")
        assert all(r["pulls"] == 0 for r in PolicyStore(store).load(ARMS).summary())


def test_policy_store_update_is_one_transaction_per_run(tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        policies = PolicyStore(store, rng=random.Random(0))
        x = CONTEXTS[1][0]
        policies.update(ARMS, "search-first", x, 0.9)
        policies.update(ARMS, "search-first", x, 0.7)
        rows = {r["arm"]: r for r in policies.load(ARMS).summary()}
        assert rows["search-first"]["pulls"] == 2
        assert rows["search-first"]["mean_reward"] == pytest.approx(0.8)
        assert not store.connection.in_transaction


def test_batch_update_replays_recorded_runs(tmp_path: Path) -> None:
    x_compute, _ = CONTEXTS[0]
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        compute = next(a for a in ARMS if a.name == "compute")
        lean = next(a for a in ARMS if a.name == "lean")
        for i in range(4):
            record(store, run_policy_metadata(compute, x_compute), 0.9, started_at=100.0 + i)
        record(store, run_policy_metadata(lean, x_compute), 0.2, started_at=200.0)
        record(store, run_policy_metadata(lean, x_compute), None, started_at=201.0)  # unscored: reward 0
        record(store, {}, 1.0, started_at=300.0)  # no policy: not a policy run
        record(store, {ARM_KEY: "retired-arm", FEATURES_KEY: x_compute.tolist()}, 1.0, started_at=301.0)
        record(store, {ARM_KEY: "lean", FEATURES_KEY: [1.0, 2.0]}, 1.0, started_at=302.0)  # wrong length

        policy = LinUCBPolicy(ARMS, FEATURE_DIM, epsilon=0.0, rng=random.Random(0))
        used = batch_update(store, policy, "response_quality", cost_weight=0.0)
        assert used == 6
        rows = {r["arm"]: r for r in policy.summary()}
        assert rows["compute"]["pulls"] == 4 and rows["compute"]["mean_reward"] == pytest.approx(0.9)
        assert rows["lean"]["pulls"] == 2 and rows["lean"]["mean_reward"] == pytest.approx(0.1)
        # Replaying again rebuilds rather than double counts.
        assert batch_update(store, policy, "response_quality", cost_weight=0.0) == 6
        assert {r["arm"]: r["pulls"] for r in policy.summary()} == {r["arm"]: r["pulls"] for r in rows.values()}
        # A cost weight lowers every reward: these runs cost 2 calls, 1,000 tokens and 5 s each.
        batch_update(store, policy, "response_quality", cost_weight=0.5)
        penalised = {r["arm"]: r for r in policy.summary()}
        assert penalised["compute"]["mean_reward"] == pytest.approx(policy_reward(0.9, 2, 1000, 5.0, 0.5))
        assert penalised["compute"]["mean_reward"] < 0.9
        PolicyStore(store).save(policy)
        assert PolicyStore(store).load(ARMS).summary() == policy.summary()


def test_a_known_answer_outranks_the_target_reward(tmp_path: Path) -> None:
    """A cited but wrong answer scores well on response_quality; the task reward says it was wrong."""
    x = CONTEXTS[0][0]
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        wrong = record(store, run_policy_metadata(ARMS[0], x), 0.9, started_at=1.0)
        store.add_reward(wrong, RewardRecord("task", 0.0, "task"))
        unknown = record(store, run_policy_metadata(ARMS[0], x), 0.9, started_at=2.0)
        assert run_quality(store.get_run(wrong), "response_quality") == 0.0
        assert run_quality(store.get_run(unknown), "response_quality") == 0.9
        policy = LinUCBPolicy(ARMS, FEATURE_DIM, epsilon=0.0, rng=random.Random(0))
        assert batch_update(store, policy, "response_quality") == 2
        assert {r["arm"]: r["mean_reward"] for r in policy.summary()}[ARMS[0].name] == pytest.approx(0.45)
