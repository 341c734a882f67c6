"""The learned tool policy: a contextual bandit over the choices the agent makes when a run starts.

At the start of a run (training mode ``rl``) the policy looks at cheap features of the question and
of the root folder (:func:`features`) and picks one :class:`PolicyArm`: which tools to offer, how many
steps to allow and a strategy hint for the system prompt. When the run's rewards are known, the
arm's statistics are updated with :func:`policy_reward`. Arms are fixed and discrete, so the policy
learns *which* of a few sensible set-ups suits *which* kind of question, not free-form behaviour.

Two policies share one model and one state: per arm, a ridge regression of reward on the features,
kept as ``A = ridge·I + Σ x xᵀ`` and ``b = Σ reward·x`` (the Bayesian linear-regression posterior
with prior ``N(0, I/ridge)``). They differ only in how they explore:

* :class:`LinUCBPolicy` — optimism: score = predicted reward + ``alpha`` × its standard error.
* :class:`ThompsonPolicy` — posterior sampling: score = one draw of the predicted reward from
  ``N(θᵀx, v² xᵀA⁻¹x)``.

While exploring, both try every arm once before trusting the regression (see ``choose``), and both
add an ``epsilon`` floor (a uniformly random arm with that probability), so an arm that looked
bad early is still revisited now and then when the questions drift. All randomness comes from one
injected :class:`random.Random` (as gepa's strategies do): tests seed it; production leaves it
unseeded, because every CLI call is a new process and a fixed seed would make them all take the same
"random" decision.

State lives in the trajectory store's ``meta`` table under :data:`POLICY_KEY` (:class:`PolicyStore`),
and can be rebuilt at any time from recorded runs that carry :data:`ARM_KEY` and
:data:`FEATURES_KEY` in their metadata (:func:`batch_update`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

import numpy as np

from tongyi_agent.store import RunRecord, TrajectoryStore
from tongyi_agent.tools.walk import SKIP_DIRS

POLICY_KEY = "tool_policy"  # meta key of the stored policy (JSON)
ARM_KEY = "policy_arm"  # run metadata: the arm's name
FEATURES_KEY = "policy_features"  # run metadata: the feature vector the arm was chosen for, as a list
STATE_VERSION = 1

DEFAULT_EPSILON = 0.05
DEFAULT_ALPHA = 0.5  # LinUCB: rewards live in [0, 1], so half a standard error of optimism is plenty
DEFAULT_V = 0.5  # Thompson: posterior scale, the same order as alpha for the same reason
DEFAULT_RIDGE = 1.0

PolicyKind = Literal["linucb", "thompson"]
Vector = np.ndarray | Sequence[float]


# -- arms ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyArm:
    """One start-of-run set-up: the tools offered (in this order), the step budget, a prompt hint."""

    name: str
    tools: tuple[str, ...]
    max_steps: int
    hint: str = ""  # appended to the system prompt; "" for none

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tools": list(self.tools)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyArm:
        return cls(str(data["name"]), tuple(data["tools"]), int(data["max_steps"]), str(data.get("hint", "")))


# name, tools that must all be available, tools added when available, max_steps, hint.
# An arm whose required tools are missing is dropped instead of shrunk: "compute" without run_python
# would carry a hint the model cannot follow, and "lean" without search_files means nothing.
_ARM_SPECS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], int, str], ...] = (
    # Cheap and precise for "where is X / what is X set to": grep, then read around the hit.
    ("search-first", ("search_files", "read_file"), (), 6,
     "Search for the key words first, then read only the matching lines."),
    # For questions about a document as a whole (summaries, structure), where grep finds fragments.
    ("read-whole", ("read_file",), ("list_files", "search_files"), 8, "Read whole files before answering."),
    # For totals, averages and counts over CSVs: small models get arithmetic wrong, Python does not.
    ("compute", ("search_files", "read_file", "run_python"), (), 8,
     "Compute numbers with run_python instead of doing arithmetic yourself."),
    # The cheapest arm: one search often shows the answer line; wins when cost counts in the reward.
    ("lean", ("search_files",), (), 3, "Answer from one search if it shows the answer."),
)


def default_arms(
    available_tools: Sequence[str], *, profile_tools: Sequence[str] | None = None, max_steps: int = 8
) -> list[PolicyArm]:
    """The default arm set, built only from ``available_tools`` (names the run may offer).

    * ``default`` — the profile's tools (``profile_tools``, else all available) and the configured
      ``max_steps``, no hint: exactly what the agent does without a policy, so it is always an option.
    * ``search-first`` — search_files, read_file; 6 steps; search, then read only the matching lines.
    * ``read-whole`` — read_file (+ list_files, search_files); 8 steps; read whole files first.
    * ``compute`` — search_files, read_file, run_python; 8 steps; do arithmetic in Python.
    * ``lean`` — search_files; 3 steps; answer from one search.
    * ``full`` — every available tool; 8 steps; no hint.

    Arms whose required tools are unavailable are left out, and an arm identical to an earlier one
    (same tools, steps and hint) is dropped, since two copies would only split the exploration.
    """
    available = list(dict.fromkeys(available_tools))
    have = set(available)
    profile = [t for t in (available if profile_tools is None else profile_tools) if t in have]
    candidates: list[PolicyArm] = []
    if profile:
        candidates.append(PolicyArm("default", tuple(profile), max_steps, ""))
    for name, required, optional, steps, hint in _ARM_SPECS:
        if all(t in have for t in required):
            tools = [*required, *(t for t in optional if t in have)]
            if name == "read-whole":  # listing first reads best: find the file, read it, search if long
                tools = [t for t in ("list_files", "read_file", "search_files") if t in tools]
            candidates.append(PolicyArm(name, tuple(tools), steps, hint))
    if available:
        candidates.append(PolicyArm("full", tuple(available), 8, ""))
    arms: list[PolicyArm] = []
    seen: set[tuple[tuple[str, ...], int, str]] = set()
    for arm in candidates:
        key = (arm.tools, arm.max_steps, arm.hint)
        if key not in seen:
            seen.add(key)
            arms.append(arm)
    return arms


# -- features ------------------------------------------------------------------------------------

ROOT_FILE_LIMIT = 2000  # root_stats looks at no more files than this, so a huge root costs milliseconds

_EXTENSIONS: dict[str, frozenset[str]] = {
    "csv": frozenset({".csv", ".tsv"}),
    "pdf": frozenset({".pdf"}),
    "markdown": frozenset({".md", ".markdown", ".mdx", ".rst"}),
    "code": frozenset({".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cc", ".cpp", ".hpp", ".go",
                       ".rs", ".rb", ".php", ".sh", ".kt", ".swift", ".scala", ".cs", ".r", ".jl", ".sql"}),
}  # fmt: skip


def _pattern(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b")


_COMPUTATION = _pattern("how many", "how much", "total", "sum", "average", "mean", "median", "count",
                        "percent", "percentage", "ratio")  # fmt: skip
_LOCATION = _pattern("which file", "which files", "where", "in which")
_LOOKUP = _pattern("who", "when", "what")
_COMPARE = _pattern("compare", "compared", "comparison", "difference", "differ", "differs", "versus", "vs")

FEATURE_NAMES: tuple[str, ...] = (
    "bias",  # always 1: the arm's baseline reward
    "length",  # question length bucket: 0 (≤ 8 words), 0.5 (≤ 20), 1 (longer)
    "has_digits",  # 1 if the question contains a digit
    "computation",  # how many / how much / total / sum / average / mean / median / count / percent / ratio
    "location",  # which file(s) / where / in which
    "lookup",  # who / when / what
    "compare",  # compare / comparison / difference / differ / versus / vs
    "csv_files",  # log1p(count) / log1p(ROOT_FILE_LIMIT), so in [0, 1]; likewise for the three below
    "pdf_files",
    "markdown_files",
    "code_files",
)
FEATURE_DIM = len(FEATURE_NAMES)


def root_stats(root: Path, limit: int = ROOT_FILE_LIMIT) -> dict[str, int]:
    """Counts of CSV, PDF, markdown and code files under ``root`` (plus ``files``, all files seen).

    Looks at the first ``limit`` files in sorted walk order, by extension only (no file is opened),
    skipping the same folders as the file tools. A missing root gives zeros rather than an error:
    features must never stop a run.
    """
    counts = dict.fromkeys(("files", *_EXTENSIONS), 0)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if counts["files"] >= limit:
                return counts
            counts["files"] += 1
            suffix = Path(dirpath, name).suffix.lower()
            for kind, suffixes in _EXTENSIONS.items():
                if suffix in suffixes:
                    counts[kind] += 1
    return counts


def features(question: str, root_stats: Mapping[str, int] | None = None) -> np.ndarray:
    """The context vector for ``question`` (length :data:`FEATURE_DIM`, see :data:`FEATURE_NAMES`).

    Deterministic and in [0, 1] per component. ``root_stats`` comes from :func:`root_stats`; None
    (no root, or not computed) leaves the file-count features at 0.
    """
    text = question.lower()
    words = len(text.split())
    stats = root_stats or {}
    scale = math.log1p(ROOT_FILE_LIMIT)
    vector = [
        1.0,
        0.0 if words <= 8 else 0.5 if words <= 20 else 1.0,
        float(any(c.isdigit() for c in text)),
        float(bool(_COMPUTATION.search(text))),
        float(bool(_LOCATION.search(text))),
        float(bool(_LOOKUP.search(text))),
        float(bool(_COMPARE.search(text))),
        *(min(1.0, math.log1p(max(0, int(stats.get(kind, 0)))) / scale) for kind in _EXTENSIONS),
    ]
    return np.asarray(vector, dtype=float)


# -- reward --------------------------------------------------------------------------------------

# Costs at which a component reaches 1: about a full default run (8 steps plus the answer), a
# generous token budget for a small local model, and the default max_response_time.
COST_CALLS = 10
COST_TOKENS = 20_000
COST_SECONDS = 60.0


def policy_reward(
    target_reward: float | None, model_calls: int, tokens: int, seconds: float, cost_weight: float = 0.0
) -> float:
    """What the policy maximises: ``target − cost_weight × cost``, clipped to [0, 1].

    ``cost`` is the mean of ``model_calls / COST_CALLS``, ``tokens / COST_TOKENS`` and
    ``seconds / COST_SECONDS``, each clipped to [0, 1], so it is 0 for a free run and 1 for one that
    used a whole default budget of everything. ``cost_weight = 0`` ignores cost; 0.2 lets a run that
    costs a full budget lose at most 0.2. A missing target reward (None) counts as 0: a run that
    could not be scored gave the user nothing.
    """
    if target_reward is None or not math.isfinite(target_reward):
        return 0.0
    parts = (model_calls / COST_CALLS, tokens / COST_TOKENS, seconds / COST_SECONDS)
    cost = sum(min(1.0, max(0.0, p)) for p in parts) / len(parts)
    return min(1.0, max(0.0, target_reward - cost_weight * cost))


# -- policies ------------------------------------------------------------------------------------


@runtime_checkable
class ToolPolicy(Protocol):
    """Chooses an arm for a context and learns from the reward; serialisable to JSON-ready dicts."""

    arms: list[PolicyArm]
    dim: int

    def choose(self, x: Vector) -> PolicyArm: ...

    def update(self, arm_name: str, x: Vector, reward: float) -> None: ...

    def reset(self) -> None: ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rng: random.Random | None = None) -> Self: ...

    def summary(self) -> list[dict[str, Any]]: ...


@dataclass
class _ArmStats:
    A: np.ndarray
    b: np.ndarray
    pulls: int = 0
    reward_sum: float = 0.0
    # A⁻¹ and θ = A⁻¹b, refreshed on update: choose() runs far more often than the inverse changes.
    A_inv: np.ndarray | None = None
    theta: np.ndarray | None = None

    def refresh(self) -> None:
        self.A_inv = np.linalg.inv(self.A)
        self.theta = self.A_inv @ self.b


class _LinearPolicy:
    """Shared state and bookkeeping; subclasses only say how an arm is scored (``_score``)."""

    kind: ClassVar[PolicyKind]

    def __init__(self, arms: Sequence[PolicyArm], dim: int, exploration: float, *, epsilon: float,
                 ridge: float, rng: random.Random | None) -> None:  # fmt: skip
        if not arms:
            raise ValueError("a tool policy needs at least one arm")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if dim < 1:
            raise ValueError(f"dim must be positive, not {dim}")
        if exploration < 0:
            raise ValueError(f"the exploration rate must be >= 0, not {exploration}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], not {epsilon}")
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, not {ridge}")
        self.arms = list(arms)
        self.dim = dim
        self.exploration = float(exploration)
        self.epsilon = float(epsilon)
        self.ridge = float(ridge)
        self.rng = rng if rng is not None else random.Random()
        self._by_name = {a.name: a for a in self.arms}
        self._stats: dict[str, _ArmStats] = {}
        self.reset()

    # -- the ToolPolicy interface ---------------------------------------------------------------

    def choose(self, x: Vector) -> PolicyArm:
        """The arm to use for context ``x``: a random one with probability ``epsilon``, else the best score.

        While exploring (exploration rate > 0), an arm never pulled is tried before any score is
        trusted: the prior predicts a reward of 0, and rewards sit near 1, so after one good run the
        first arm's prediction outscores all the optimism an untried arm gets and LinUCB kept
        choosing it (8 early runs, one arm). A greedy policy (exploration 0) skips this warm-up, so it
        only ever exploits. Ties (e.g. every arm untried) are broken at random, so a fresh policy does
        not always start with the first arm."""
        v = self._vector(x)
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            return self.rng.choice(self.arms)
        untried = [a for a in self.arms if self._stats[a.name].pulls == 0] if self.exploration > 0 else []
        if untried:
            return self.rng.choice(untried)
        scores = [self._score(self._stats[a.name], v) for a in self.arms]
        best = max(scores)
        tied = [a for a, s in zip(self.arms, scores, strict=True) if s >= best - 1e-12]
        return tied[0] if len(tied) == 1 else self.rng.choice(tied)

    def update(self, arm_name: str, x: Vector, reward: float) -> None:
        """Learn that ``arm_name`` earned ``reward`` (expected in [0, 1]) on context ``x``."""
        if arm_name not in self._stats:
            raise KeyError(f"unknown arm {arm_name!r}; arms: {', '.join(self._by_name)}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, not {reward}")
        v = self._vector(x)
        stats = self._stats[arm_name]
        stats.A += np.outer(v, v)
        stats.b += reward * v
        stats.pulls += 1
        stats.reward_sum += reward
        stats.refresh()

    def reset(self) -> None:
        """Forget everything learned (back to the prior); arms and settings stay."""
        self._stats = {a.name: _ArmStats(self.ridge * np.eye(self.dim), np.zeros(self.dim)) for a in self.arms}
        for stats in self._stats.values():
            stats.refresh()

    def summary(self) -> list[dict[str, Any]]:
        """Per arm, in arm order: ``{"arm", "pulls", "mean_reward"}`` (observed mean; None if never pulled)."""
        return [{"arm": a.name, "pulls": s.pulls, "mean_reward": s.reward_sum / s.pulls if s.pulls else None}
                for a in self.arms for s in [self._stats[a.name]]]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; floats go through ``json`` exactly, so a round trip chooses identically."""
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "exploration": self.exploration,
            "epsilon": self.epsilon,
            "ridge": self.ridge,
            "arms": [a.to_dict() for a in self.arms],
            "stats": {
                name: {"A": s.A.tolist(), "b": s.b.tolist(), "pulls": s.pulls, "reward_sum": s.reward_sum}
                for name, s in self._stats.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rng: random.Random | None = None) -> Self:
        """Rebuild a policy from :meth:`to_dict`; the RNG is not state, so pass the one to use."""
        arms = [PolicyArm.from_dict(a) for a in data["arms"]]
        policy = cls._build(arms, int(data["dim"]), float(data["exploration"]), epsilon=float(data["epsilon"]),
                            ridge=float(data.get("ridge", DEFAULT_RIDGE)), rng=rng)  # fmt: skip
        policy._load_stats(data["stats"])
        return policy

    # -- internals ------------------------------------------------------------------------------

    @classmethod
    def _build(cls, arms: Sequence[PolicyArm], dim: int, exploration: float, *, epsilon: float, ridge: float,
               rng: random.Random | None) -> Self:  # fmt: skip
        # Both subclasses take the exploration rate as their third positional argument.
        return cls(arms, dim, exploration, epsilon=epsilon, ridge=ridge, rng=rng)

    def _score(self, stats: _ArmStats, x: np.ndarray) -> float:
        raise NotImplementedError

    def _load_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        for name, s in stats.items():
            if name not in self._stats:
                raise ValueError(f"stored statistics for unknown arm {name!r}")
            A, b = np.asarray(s["A"], dtype=float), np.asarray(s["b"], dtype=float)
            if A.shape != (self.dim, self.dim) or b.shape != (self.dim,):
                raise ValueError(f"stored statistics for arm {name!r} do not have dimension {self.dim}")
            arm = _ArmStats(A, b, int(s["pulls"]), float(s["reward_sum"]))
            arm.refresh()
            self._stats[name] = arm

    def _vector(self, x: Vector) -> np.ndarray:
        v = np.asarray(x, dtype=float).reshape(-1)
        if v.shape != (self.dim,):
            raise ValueError(f"context has {v.size} features, the policy expects {self.dim}")
        return v

    @staticmethod
    def _spread(stats: _ArmStats, x: np.ndarray) -> float:
        """Standard error of the predicted reward, sqrt(xᵀA⁻¹x); max() guards rounding below zero."""
        assert stats.A_inv is not None
        return math.sqrt(max(0.0, float(x @ stats.A_inv @ x)))


class LinUCBPolicy(_LinearPolicy):
    """LinUCB (Li et al., 2010, disjoint model): score = θᵀx + ``alpha`` · sqrt(xᵀA⁻¹x).

    ``alpha`` is the exploration rate: 0 is greedy, larger values try uncertain arms for longer.
    ``epsilon`` is the floor of uniformly random choices; ``ridge`` the prior precision; ``rng`` the
    only source of randomness (epsilon draws, tie-breaks) — seed it for reproducible choices.
    """

    kind: ClassVar[PolicyKind] = "linucb"

    def __init__(self, arms: Sequence[PolicyArm], dim: int, alpha: float = DEFAULT_ALPHA, *,
                 epsilon: float = DEFAULT_EPSILON, ridge: float = DEFAULT_RIDGE,
                 rng: random.Random | None = None) -> None:  # fmt: skip
        super().__init__(arms, dim, alpha, epsilon=epsilon, ridge=ridge, rng=rng)

    @property
    def alpha(self) -> float:
        return self.exploration

    def _score(self, stats: _ArmStats, x: np.ndarray) -> float:
        assert stats.theta is not None
        return float(stats.theta @ x) + self.exploration * self._spread(stats, x)


class ThompsonPolicy(_LinearPolicy):
    """Linear Gaussian Thompson sampling: θ ~ N(A⁻¹b, v²A⁻¹), score = θᵀx.

    Only θᵀx matters for the choice, and it is N(θ̂ᵀx, v²·xᵀA⁻¹x), so one normal draw per arm
    replaces sampling the whole vector — the same distribution of choices, without a Cholesky
    factorisation per arm per run. ``v`` is the posterior scale (the exploration rate): 0 is greedy.
    ``epsilon``, ``ridge`` and ``rng`` as for :class:`LinUCBPolicy`; the draws use ``rng.gauss``.
    """

    kind: ClassVar[PolicyKind] = "thompson"

    def __init__(self, arms: Sequence[PolicyArm], dim: int, v: float = DEFAULT_V, *,
                 epsilon: float = DEFAULT_EPSILON, ridge: float = DEFAULT_RIDGE,
                 rng: random.Random | None = None) -> None:  # fmt: skip
        super().__init__(arms, dim, v, epsilon=epsilon, ridge=ridge, rng=rng)

    @property
    def v(self) -> float:
        return self.exploration

    def _score(self, stats: _ArmStats, x: np.ndarray) -> float:
        assert stats.theta is not None
        return float(stats.theta @ x) + self.exploration * self._spread(stats, x) * self.rng.gauss(0.0, 1.0)


POLICIES: dict[str, type[LinUCBPolicy] | type[ThompsonPolicy]] = {"linucb": LinUCBPolicy, "thompson": ThompsonPolicy}


def make_policy(kind: PolicyKind, arms: Sequence[PolicyArm], dim: int = FEATURE_DIM, *,
                exploration: float | None = None, epsilon: float = DEFAULT_EPSILON,
                rng: random.Random | None = None) -> ToolPolicy:  # fmt: skip
    """A fresh policy of ``kind``; ``exploration`` is alpha (LinUCB) or v (Thompson), defaulted per kind."""
    if kind not in POLICIES:
        raise ValueError(f"policy kind must be one of {sorted(POLICIES)}, not {kind!r}")
    if exploration is None:
        exploration = DEFAULT_ALPHA if kind == "linucb" else DEFAULT_V
    return POLICIES[kind](arms, dim, exploration, epsilon=epsilon, rng=rng)


def greedy(policy: ToolPolicy) -> ToolPolicy:
    """A copy of ``policy`` that only exploits: same statistics, exploration and epsilon 0.

    For evaluation: what the policy has learned, without the random and optimistic choices that
    training needs (and that would blur a comparison against a fixed set-up). The copy's RNG is
    seeded, since it is only used to break exact ties."""
    data = {**policy.to_dict(), "exploration": 0.0, "epsilon": 0.0}
    return type(policy).from_dict(data, rng=random.Random(0))


# -- persistence ---------------------------------------------------------------------------------


class PolicyStore:
    """The policy's state in the trajectory store's ``meta`` table (key :data:`POLICY_KEY`).

    The settings given here (kind, exploration, epsilon, rng) always win over the stored ones, so a
    change in config takes effect at once; only the learned statistics are kept. Both kinds keep the
    same statistics, so switching between LinUCB and Thompson keeps what was learned.
    """

    def __init__(self, store: TrajectoryStore, *, kind: PolicyKind = "linucb", exploration: float | None = None,
                 epsilon: float = DEFAULT_EPSILON, rng: random.Random | None = None) -> None:  # fmt: skip
        self.store = store
        self.kind: PolicyKind = kind
        self.exploration = exploration
        self.epsilon = epsilon
        self.rng = rng

    def fresh(self, arms: Sequence[PolicyArm], dim: int = FEATURE_DIM) -> ToolPolicy:
        return make_policy(self.kind, arms, dim, exploration=self.exploration, epsilon=self.epsilon, rng=self.rng)

    def load(self, arms: Sequence[PolicyArm], dim: int = FEATURE_DIM) -> ToolPolicy:
        """The stored policy for ``arms``, or a fresh one when none is stored, the stored one is
        unreadable, or it was learned for other arms or another feature dimension (its statistics
        would describe set-ups that no longer exist)."""
        return self._from_json(self.store.get_meta(POLICY_KEY), arms, dim)

    def save(self, policy: ToolPolicy) -> None:
        self.store.set_meta(POLICY_KEY, json.dumps(policy.to_dict()))

    def update(self, arms: Sequence[PolicyArm], arm_name: str, x: Vector, reward: float,
               dim: int = FEATURE_DIM) -> ToolPolicy:  # fmt: skip
        """Load, update and save in one write transaction, so two processes finishing runs at the
        same time cannot overwrite each other's update. Returns the updated policy."""

        with self.store.transaction() as tx:
            policy = self._from_json(tx.get_meta(POLICY_KEY), arms, dim)
            policy.update(arm_name, x, reward)
            tx.set_meta(POLICY_KEY, json.dumps(policy.to_dict()))
            return policy

    def _from_json(self, text: str | None, arms: Sequence[PolicyArm], dim: int) -> ToolPolicy:
        policy = self.fresh(arms, dim)
        if not text:
            return policy
        try:
            data = json.loads(text)
            stored_arms = [PolicyArm.from_dict(a) for a in data["arms"]]
            if stored_arms != list(arms) or int(data["dim"]) != dim:
                return policy
            if not isinstance(policy, _LinearPolicy):
                raise TypeError(f"cannot restore statistics into {type(policy).__name__}")
            policy._load_stats(data["stats"])
        except (ValueError, KeyError, TypeError):
            # A corrupt or foreign value must not stop runs; the next save replaces it.
            return self.fresh(arms, dim)
        return policy


# -- learning from recorded runs -----------------------------------------------------------------


def run_policy_metadata(arm: PolicyArm, x: Vector) -> dict[str, Any]:
    """What the recorder must put in ``RunRecord.metadata`` for :func:`batch_update` to use the run."""
    return {ARM_KEY: arm.name, FEATURES_KEY: [float(f) for f in np.asarray(x, dtype=float).reshape(-1)]}


def run_quality(run: RunRecord, target: str | None) -> float | None:
    """The quality the policy learns from: the ``task`` reward when the run's correct answer was
    known (a task file, a rollout, a benchmark), else the configured ``target`` reward.

    Correctness, when known, is the signal every target only approximates; without it a policy
    rewarded on ``response_quality`` cannot tell a cited wrong answer from a cited right one."""
    task = [r.value for r in run.rewards if r.name == "task" and r.value is not None]
    return sum(task) / len(task) if task else run.reward(target)


def batch_update(store: TrajectoryStore, policy: ToolPolicy, target: str | None = None,
                 cost_weight: float = 0.0) -> int:  # fmt: skip
    """Rebuild ``policy`` from every recorded run that carries :data:`ARM_KEY` and :data:`FEATURES_KEY`.

    The policy is reset first and the runs are replayed oldest first, so calling this twice gives
    the same state (no run counts twice, including ones already applied online). Each run's reward
    is :func:`policy_reward` of its :func:`run_quality` (the task reward when known, else the
    ``target`` reward; all rewards' mean when None) and its cost. Runs for arms the policy no
    longer has, or whose features have another length, are skipped. Returns how many runs were
    used; the caller saves the policy.
    """
    policy.reset()
    names = {a.name for a in policy.arms}
    used = 0
    for run in store.iter_runs():
        arm, x = run.metadata.get(ARM_KEY), run.metadata.get(FEATURES_KEY)
        if arm not in names or not _is_vector(x, policy.dim):
            continue
        reward = policy_reward(run_quality(run, target), run.model_calls, run.input_tokens + run.output_tokens,
                               run.seconds, cost_weight)  # fmt: skip
        policy.update(str(arm), x, reward)
        used += 1
    return used


def _is_vector(value: object, dim: int) -> bool:
    return (isinstance(value, list) and len(value) == dim
            and all(isinstance(f, int | float) and math.isfinite(f) for f in value))  # fmt: skip


__all__ = [
    "ARM_KEY",
    "FEATURES_KEY",
    "FEATURE_DIM",
    "FEATURE_NAMES",
    "POLICY_KEY",
    "LinUCBPolicy",
    "PolicyArm",
    "PolicyKind",
    "PolicyStore",
    "ThompsonPolicy",
    "ToolPolicy",
    "batch_update",
    "default_arms",
    "features",
    "greedy",
    "make_policy",
    "policy_reward",
    "root_stats",
    "run_policy_metadata",
    "run_quality",
]
