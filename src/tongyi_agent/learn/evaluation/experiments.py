"""A/B experiments: the active prompt (control) against one candidate version (treatment) on live runs.

An experiment lives in the store's ``meta`` table (key ``experiment``, JSON) while it runs, so every
process that records runs sees the same one; concluded experiments move to ``experiments.history``
(the last :data:`HISTORY_LIMIT`). Runs are assigned to an arm by hashing the experiment id with a
run key, and the run records its arm (``ab_arm``) and the version that served it
(``prompt_version``); that pair is how :meth:`ExperimentManager.arm_stats` finds the experiment's
runs again, in SQL.

When ``duration`` runs have been recorded, :meth:`ExperimentManager.maybe_conclude` tests the first
``duration`` of them: paired over questions both arms answered when there are enough of those (the
same question on both arms removes question difficulty from the comparison), else unpaired over runs.
Both tests are seeded permutation tests in pure Python, so a decision can be reproduced exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any, Literal

from tongyi_agent.config.training import ExperimentsSettings
from tongyi_agent.store import PromptStore, StoreError, TrajectoryStore
from tongyi_agent.store.run_queries import arm_rewards, arm_summaries

EXPERIMENT_KEY = "experiment"
HISTORY_KEY = "experiments.history"
HISTORY_LIMIT = 20
ALPHA = 0.05
RESAMPLES = 5000
SEED = 20240611  # fixed: the same runs always give the same p-value
MIN_PAIRED_QUESTIONS = 5
ARMS: tuple[str, str] = ("control", "treatment")

Arm = Literal["control", "treatment"]
ExperimentStatus = Literal["running", "promoted", "rolled_back"]


@dataclass
class Experiment:
    id: str
    control: str  # prompt version id
    treatment: str  # prompt version id
    control_ratio: float
    duration: int  # runs (both arms together) before the experiment is decided
    started_at: float
    status: ExperimentStatus = "running"
    result: dict[str, Any] | None = None  # the Decision, as a dict, once concluded

    def version(self, arm: str) -> str:
        return self.control if arm == "control" else self.treatment

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Decision:
    action: Literal["promote", "roll_back"]
    p_value: float
    test: Literal["paired", "permutation"]
    means: dict[str, float | None]  # per arm: the means the test compared (per-question means when paired)
    runs: dict[str, int]  # per arm: runs in the decided set (with or without the target reward)
    reason: str = ""
    applied: bool = True  # False when the prompts had changed under the experiment and were left alone
    note: str = ""
    questions: int = 0  # paired test: questions seen on both arms


class ExperimentManager:
    """Runs one experiment at a time for a project's store; ``target`` is the reward name compared."""

    def __init__(self, store: TrajectoryStore, settings: ExperimentsSettings, target: str) -> None:
        self.store = store
        self.settings = settings
        self.target = target
        self.prompts = PromptStore(store)

    # -- lifecycle -----------------------------------------------------------------------------

    def current(self) -> Experiment | None:
        """The running experiment, or None."""
        return _read_experiment(self.store.get_meta(EXPERIMENT_KEY))

    def history(self) -> list[Experiment]:
        """Concluded experiments, oldest first (at most :data:`HISTORY_LIMIT`)."""
        raw = self.store.get_meta(HISTORY_KEY)
        return [Experiment.from_dict(item) for item in (json.loads(raw) if raw else [])]

    def start(self, treatment_id: str) -> Experiment:
        """Start testing the candidate ``treatment_id`` (id or prefix) against the active version.

        StoreError (one line) when A/B testing is off, the treatment is not a candidate, nothing is
        active, or an experiment is already running."""
        if not self.settings.enable_ab_testing:
            raise StoreError("A/B testing is off: set enable_ab_testing = true in [experiments] to start one")
        treatment = self.prompts.get(treatment_id)
        if treatment.status != "candidate":
            raise StoreError(f"{treatment.id} is {treatment.status}, not a candidate: only a candidate can be"
                             " tested against the active prompt")
        control = self.prompts.active()
        if control is None:
            raise StoreError("no active prompt version to use as the control")
        experiment = Experiment(
            id="exp-" + secrets.token_hex(4), control=control.id, treatment=treatment.id,
            control_ratio=self.settings.control_ratio, duration=self.settings.experiment_duration,
            started_at=time.time(),
        )  # fmt: skip

        # Checked under the write lock so two processes cannot both start one.
        with self.store.transaction() as tx:
            running = _read_experiment(tx.get_meta(EXPERIMENT_KEY))
            if running is not None:
                raise StoreError(f"experiment {running.id} is already running ({running.control} vs"
                                 f" {running.treatment}); only one runs at a time")
            tx.set_meta(EXPERIMENT_KEY, experiment.to_json())
        return experiment

    # -- serving -------------------------------------------------------------------------------

    def assign(self, run_key: str) -> tuple[str, str] | None:
        """``(arm, prompt version id)`` for a run, or None when no experiment is running (or A/B
        testing is off): then the run uses the active version and records no arm.

        Deterministic: the same experiment and run key always give the same arm, and over many keys
        the control share approaches ``control_ratio``."""
        experiment = self.current()
        if experiment is None or not self.settings.enable_ab_testing:
            return None
        arm = assign_arm(experiment.id, run_key, experiment.control_ratio)
        return arm, experiment.version(arm)

    # -- reading -------------------------------------------------------------------------------

    def arm_stats(self, experiment: Experiment | None = None) -> dict[str, dict[str, Any]]:
        """Per arm: ``runs``, ``mean_reward`` (target reward; None if no run has it), ``success_rate``
        and ``mean_seconds`` (0.0 with no runs), over the experiment's runs so far."""
        experiment = experiment or self.current()
        if experiment is None:
            raise StoreError("no experiment is running")
        rows = arm_summaries(self.store, started=experiment.started_at, control=experiment.control,
                             treatment=experiment.treatment, target=self.target)
        stats = {arm: {"runs": 0, "mean_reward": None, "success_rate": 0.0, "mean_seconds": 0.0} for arm in ARMS}
        for row in rows:
            stats[row["arm"]] = {"runs": row["runs"], "mean_reward": row["mean_reward"],
                                 "success_rate": row["success_rate"], "mean_seconds": row["mean_seconds"]}
        return stats

    # -- deciding ------------------------------------------------------------------------------

    def maybe_conclude(self) -> Decision | None:
        """Decide the running experiment once it has ``duration`` runs; None until then (or if
        another process concluded it first).

        Promotes the treatment when its mean is higher and the two-sided p-value is below
        :data:`ALPHA`; otherwise rejects it and the control stays active."""
        experiment = self.current()
        if experiment is None:
            return None
        # Only the first `duration` runs are tested, so the decision does not depend on how many
        # runs happened to land between reaching the duration and this call.
        rows = arm_rewards(self.store, started=experiment.started_at, control=experiment.control,
                           treatment=experiment.treatment, target=self.target, limit=experiment.duration)
        if len(rows) < experiment.duration:
            return None
        decision = decide(experiment, rows)
        if not self._claim(experiment, decision):
            return None
        self._apply(experiment, decision)
        return decision

    def _claim(self, experiment: Experiment, decision: Decision) -> bool:
        """Move the experiment to the history with its decision, if it is still the running one.

        Done before touching the prompts so that two processes finishing the same experiment at once
        act on it once; a crash in between leaves the decision recorded but not applied."""
        experiment.status = "promoted" if decision.action == "promote" else "rolled_back"
        experiment.result = asdict(decision)

        with self.store.transaction() as tx:
            running = _read_experiment(tx.get_meta(EXPERIMENT_KEY))
            if running is None or running.id != experiment.id:
                return False
            tx.delete_meta(EXPERIMENT_KEY)
            raw = tx.get_meta(HISTORY_KEY)
            history = [*(json.loads(raw) if raw else []), asdict(experiment)][-HISTORY_LIMIT:]
            tx.set_meta(HISTORY_KEY, json.dumps(history))
            return True

    def _apply(self, experiment: Experiment, decision: Decision) -> None:
        treatment = self.prompts.get(experiment.treatment)
        # Someone (a user, a rollback) may have moved the treatment while the experiment ran; their
        # choice wins over a statistical decision made on older assumptions.
        if treatment.status != "candidate":
            decision.applied = False
            decision.note = f"treatment is now {treatment.status}; prompts left as they are"
        elif decision.action == "promote":
            self.prompts.activate(experiment.treatment, reason=decision.reason)
        else:
            self.prompts.set_status(experiment.treatment, "rejected", reason=decision.reason)
        if not decision.applied:
            # Keep the stored result truthful about what happened.
            self._update_history_result(experiment.id, asdict(decision))

    def _update_history_result(self, experiment_id: str, result: dict[str, Any]) -> None:
        with self.store.transaction() as tx:
            raw = tx.get_meta(HISTORY_KEY)
            history = json.loads(raw) if raw else []
            for item in history:
                if item.get("id") == experiment_id:
                    item["result"] = result
            tx.set_meta(HISTORY_KEY, json.dumps(history))


# -- pure functions ----------------------------------------------------------------------------


def assign_arm(experiment_id: str, run_key: str, control_ratio: float) -> Arm:
    """``control`` when sha256(experiment id + run key), read as a fraction in [0, 1), is below the ratio."""
    digest = hashlib.sha256((experiment_id + run_key).encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "control" if fraction < control_ratio else "treatment"


def decide(experiment: Experiment, rows: list[tuple[str, str, float | None]], *, seed: int = SEED,
           resamples: int = RESAMPLES, alpha: float = ALPHA) -> Decision:
    """The decision for ``(arm, question, target reward)`` rows; runs without the reward are counted
    in ``runs`` but not tested."""
    runs = {arm: sum(1 for a, _, _ in rows if a == arm) for arm in ARMS}
    per_question: dict[str, dict[str, list[float]]] = {arm: defaultdict(list) for arm in ARMS}
    for arm, question, reward in rows:
        if reward is not None:
            per_question[arm][question].append(float(reward))
    shared = sorted(set(per_question["control"]) & set(per_question["treatment"]))
    means: dict[str, float | None]
    if len(shared) >= MIN_PAIRED_QUESTIONS:
        test: Literal["paired", "permutation"] = "paired"
        control_q = [fmean(per_question["control"][q]) for q in shared]
        treatment_q = [fmean(per_question["treatment"][q]) for q in shared]
        means = {"control": fmean(control_q), "treatment": fmean(treatment_q)}
        p_value = sign_flip_p([t - c for t, c in zip(treatment_q, control_q, strict=True)],
                              seed=seed, resamples=resamples)
    else:
        test = "permutation"
        control = [v for values in per_question["control"].values() for v in values]
        treatment = [v for values in per_question["treatment"].values() for v in values]
        means = {"control": fmean(control) if control else None,
                 "treatment": fmean(treatment) if treatment else None}
        # An arm with no rewarded runs cannot show an improvement: p = 1, and the treatment is rejected.
        p_value = permutation_p(control, treatment, seed=seed, resamples=resamples) if control and treatment else 1.0
    better = means["treatment"] is not None and means["control"] is not None and means["treatment"] > means["control"]
    action: Literal["promote", "roll_back"] = "promote" if better and p_value < alpha else "roll_back"
    name = "paired permutation" if test == "paired" else "permutation"
    reason = (f"A/B {experiment.id}: treatment {_fmt(means['treatment'])} vs control {_fmt(means['control'])},"
              f" {name} p={p_value:.3f}, {'promoted' if action == 'promote' else 'rolled back'}")
    return Decision(action, p_value, test, means, runs, reason, questions=len(shared) if test == "paired" else 0)


def sign_flip_p(diffs: list[float], *, seed: int = SEED, resamples: int = RESAMPLES,
                alternative: Literal["two-sided", "greater"] = "two-sided") -> float:
    """p-value that the mean paired difference is 0: under the null each difference's sign is a coin
    flip. ``two-sided`` counts sign flips whose sum is at least as far from 0 as observed;
    ``greater`` (the alternative that the differences are positive) counts sums at least as large as
    observed. Uses the (hits + 1) / (resamples + 1) estimate, so it is never exactly 0."""
    if not diffs:
        return 1.0
    rng = random.Random(seed)
    one_sided = alternative == "greater"
    # tolerance: a resample equal to the observed sum counts as a hit
    observed = (sum(diffs) if one_sided else abs(sum(diffs))) - 1e-12
    hits = 0
    for _ in range(resamples):
        bits = rng.getrandbits(len(diffs))
        total = sum(-d if bits >> i & 1 else d for i, d in enumerate(diffs))
        hits += (total if one_sided else abs(total)) >= observed
    return (hits + 1) / (resamples + 1)


def permutation_p(a: list[float], b: list[float], *, seed: int = SEED, resamples: int = RESAMPLES) -> float:
    """Two-sided p-value that ``a`` and ``b`` come from one distribution: shuffle the pooled values
    into groups of the same sizes and count differences of means at least as large as observed."""
    if not a or not b:
        return 1.0
    rng = random.Random(seed)
    pooled = [*a, *b]
    total, n_a, n_b = sum(pooled), len(a), len(b)
    observed = abs(fmean(b) - fmean(a)) - 1e-12
    hits = 0
    for _ in range(resamples):
        rng.shuffle(pooled)
        sum_a = sum(pooled[:n_a])
        hits += abs((total - sum_a) / n_b - sum_a / n_a) >= observed
    return (hits + 1) / (resamples + 1)


# -- internals ---------------------------------------------------------------------------------

def _read_experiment(raw: str | None) -> Experiment | None:
    if not raw:
        return None
    experiment = Experiment.from_dict(json.loads(raw))
    return experiment if experiment.status == "running" else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
