"""Tool-policy benchmark: the learned tool policy (training mode rl) vs the fixed default set-up.

Builds a mixed task set — file-lookup questions (benchmarks/file_lookup.py) and research-world
lookup, multi-hop, aggregation and which-file tasks (benchmarks/research_world.py) — and splits it
per kind, with a seed, into train and held-out test questions. Training: N runs over the train
questions, each through the product's own rl-mode path (``Lifecycle.plan`` picks and applies the arm,
``RunRecorder`` runs and scores it with the project's rewards, ``Lifecycle.after_run`` updates the
policy). Evaluation: every held-out question is run with the fixed default set-up (what the agent does
outside rl mode) and with the learned policy in greedy mode (no exploration, no learning), side by
side in one process, alternating which goes first. Prints accuracy, cited rate, model calls, tokens
and seconds per question, the ratios policy/default, a verdict, the arms chosen per question kind
and the arm pull counts.

    python benchmarks/tool_policy.py                          # 30 training runs, profile local
    python benchmarks/tool_policy.py --train-runs 12 --per-kind 3 --policy thompson
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from file_lookup import make_corpus
from research_world import generate_world
from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config import load_settings
from tongyi_agent.config.training import (
    OPTIMIZATION_TARGETS,
    OptimizationTarget,
    PromptOptimizationSettings,
    ToolPolicySettings,
    TrainingConfig,
    TrainingMode,
    TrainingSettings,
)
from tongyi_agent.learn.evaluation.rewards import task_reward
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.policy.tool_policy import ARM_KEY, POLICY_KEY, PolicyKind, policy_reward
from tongyi_agent.learn.recording import RecordedRun, RunRecorder
from tongyi_agent.learn.workspace import STORE_FILE, TrainingWorkspace
from tongyi_agent.llm.base import ModelError
from tongyi_agent.store import TrajectoryStore

KINDS = ("file_lookup", "lookup", "multi_hop", "aggregation", "which_file")
PRODUCT = ToolPolicySettings()  # the product's defaults for rl mode
DEFAULT_TARGET = PromptOptimizationSettings().optimization_target
# The product default cost_weight is 0: cost is free and the policy has no reason to save any. This
# benchmark asks whether the policy lowers cost, so by default it states a price (a run that uses a
# whole default budget of calls, tokens and seconds loses at most 0.2 of its reward); --cost-weight 0
# measures the product default.
DEFAULT_COST_WEIGHT = 0.2
FIXED = "fixed default"
LEARNED = "learned policy"


# -- tasks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchTask:
    """One question with its reference answer, its folder, its kind and the files that support it."""

    question: str
    answer: str
    answer_regex: str | None
    root: Path
    kind: str
    files: frozenset[str]  # citing any of these counts as cited


def make_tasks(base: Path, seed: int, per_kind: int) -> list[BenchTask]:
    """``per_kind`` tasks of each of :data:`KINDS`, drawn with ``seed`` from the two generators.

    The file-lookup corpus goes to ``base/files`` and the research world of ``seed`` to
    ``base/world``: two roots with different file mixes, so the root features vary too."""
    files_root, world_root = base / "files", base / "world"
    pool = [BenchTask(q.text, q.expected, None, files_root, "file_lookup", frozenset({q.file}))
            for q in make_corpus(files_root)]
    pool += [BenchTask(t.question, t.answer, t.answer_regex, world_root, t.kind,
                       frozenset(s.rsplit(":", 1)[0] for s in t.sources))
             for t in generate_world(seed, world_root)]
    rng = random.Random(seed)
    chosen: list[BenchTask] = []
    for kind in KINDS:
        group = [t for t in pool if t.kind == kind]
        chosen += rng.sample(group, min(per_kind, len(group)))
    return chosen


def split_tasks(tasks: Sequence[BenchTask], seed: int, test_share: float) -> tuple[list[BenchTask], list[BenchTask]]:
    """(train, test), stratified by kind so that every kind is both learned and tested.

    Each kind with at least two tasks puts ``round(n × test_share)`` of them (at least one, and never
    all) into the test split, chosen with ``seed``."""
    rng = random.Random(seed)
    train: list[BenchTask] = []
    test: list[BenchTask] = []
    for kind in dict.fromkeys(t.kind for t in tasks):
        group = [t for t in tasks if t.kind == kind]
        rng.shuffle(group)
        n_test = min(len(group) - 1, max(1, round(len(group) * test_share))) if len(group) > 1 else 0
        test += group[:n_test]
        train += group[n_test:]
    return train, test


# -- running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    train_runs: int = 30
    policy: PolicyKind = PRODUCT.policy
    exploration: float = PRODUCT.exploration
    epsilon: float = PRODUCT.epsilon
    cost_weight: float = DEFAULT_COST_WEIGHT
    target: OptimizationTarget = DEFAULT_TARGET
    seed: int = 0


@dataclass
class Outcome:
    """One run of one question with one set-up, as the report needs it."""

    kind: str
    arm: str
    correct: bool
    cited: bool
    model_calls: int
    tokens: int
    seconds: float
    reward: float | None = None  # what the policy learned from (training runs only)
    error: str | None = None


class PolicyBench:
    """Runs questions through the product's recorded-run path, in rl mode or not, on one store."""

    def __init__(self, agent: Agent, data_dir: Path, options: Options, *, backend: str, dialect: str) -> None:
        self.agent = agent
        self.data_dir = data_dir
        self.options = options
        self.backend, self.dialect = backend, dialect
        self.store = TrajectoryStore(data_dir / STORE_FILE)
        self.rng = random.Random(options.seed)  # the policy's choices: seeded, so a rerun chooses alike
        self.loop = LoopRunner()

    def close(self) -> None:
        self.loop.close()
        self.store.close()

    def workspace(self, mode: TrainingMode, *, exploration: float, epsilon: float) -> TrainingWorkspace:
        """A training workspace as training_config.ini would configure it, with the store outside the roots
        (inside, list_files and search_files would see it)."""
        o = self.options
        training = TrainingConfig(
            training=TrainingSettings(enabled=True, mode=mode, training_data_path=self.data_dir),
            # The experience memory is off: this benchmark isolates what the tool policy learns.
            prompt_optimization=PromptOptimizationSettings(optimization_target=o.target, use_history=False),
            tool_policy=ToolPolicySettings(policy=o.policy, exploration=exploration, epsilon=epsilon,
                                           cost_weight=o.cost_weight))
        return TrainingWorkspace(self.data_dir, training, {})

    def run(self, workspace: TrainingWorkspace, task: BenchTask, *, learn: bool) -> Outcome:
        """One question, as the CLI runs it: plan (the policy's arm in rl mode), record, then learn."""
        lifecycle = Lifecycle(workspace, self.store, rng=self.rng)
        plan = lifecycle.plan(self.agent.variant(root=task.root), None, task.question)
        recorder = RunRecorder(self.store, workspace.training, backend=self.backend, dialect=self.dialect)
        arm = str(plan.metadata.get(ARM_KEY, FIXED))
        started = time.monotonic()
        try:
            recorded = self.loop.run(recorder.run(
                plan.agent, task.question, task_answer=task.answer, task_answer_regex=task.answer_regex,
                run_id=plan.run_id, ab_arm=plan.ab_arm, prompt_version=plan.prompt_version,
                metadata=plan.metadata))
        except ModelError as exc:  # recorded as a failed run; one failure must not end the benchmark
            return Outcome(task.kind, arm, False, False, 0, 0, time.monotonic() - started, error=str(exc))
        if learn:
            lifecycle.after_run(recorded)
        return self._outcome(task, arm, recorded)

    def _outcome(self, task: BenchTask, arm: str, recorded: RecordedRun) -> Outcome:
        result = recorded.result
        tokens = result.usage.total_tokens
        # What the policy learns from (tool_policy.run_quality): every benchmark task has a known answer.
        correct = task_reward(result, task.answer, task.answer_regex) or 0.0
        reward = policy_reward(correct, result.model_calls, tokens, result.seconds, self.options.cost_weight)
        return Outcome(task.kind, arm, correct >= 1.0,
                       any(s.path in task.files for s in result.sources), result.model_calls, tokens,
                       result.seconds, reward)

    def train(self, tasks: Sequence[BenchTask], on_run: Callable[[str, Outcome], None] | None = None) -> list[Outcome]:
        """``train_runs`` rl-mode runs over ``tasks`` (reshuffled each pass), each updating the policy."""
        o = self.options
        workspace = self.workspace("rl", exploration=o.exploration, epsilon=o.epsilon)
        order = _cycle(tasks, o.train_runs, random.Random(o.seed + 1))
        outcomes = []
        for task in order:
            outcomes.append(self.run(workspace, task, learn=True))
            if on_run:
                on_run("train", outcomes[-1])
        return outcomes

    def evaluate(self, tasks: Sequence[BenchTask],
                 on_run: Callable[[str, Outcome], None] | None = None) -> dict[str, list[Outcome]]:
        """Each task with the fixed default and with the greedy learned policy, alternating which runs
        first so that neither always meets a warm cache or a busy machine; nothing is learned here."""
        set_ups = {FIXED: self.workspace("prompt", exploration=0.0, epsilon=0.0),
                   LEARNED: self.workspace("rl", exploration=0.0, epsilon=0.0)}
        outcomes: dict[str, list[Outcome]] = {FIXED: [], LEARNED: []}
        for i, task in enumerate(tasks):
            for label in (FIXED, LEARNED) if i % 2 == 0 else (LEARNED, FIXED):
                outcomes[label].append(self.run(set_ups[label], task, learn=False))
                if on_run:
                    on_run(label, outcomes[label][-1])
        return outcomes

    def arm_summary(self) -> list[dict[str, object]]:
        """The stored policy's arms: pulls and mean learned reward (the training runs' updates)."""
        workspace = self.workspace("rl", exploration=0.0, epsilon=0.0)
        return workspace.stats(self.store)["tool_policy"] if self.store.get_meta(POLICY_KEY) else []


def _cycle(tasks: Sequence[BenchTask], runs: int, rng: random.Random) -> list[BenchTask]:
    """``runs`` tasks: whole shuffled passes over ``tasks``, so each is trained on equally often."""
    order: list[BenchTask] = []
    while len(order) < runs and tasks:
        batch = list(tasks)
        rng.shuffle(batch)
        order += batch
    return order[:runs]


# -- report --------------------------------------------------------------------------------------


@dataclass
class Summary:
    """Means over one set-up's held-out runs."""

    accuracy: float
    cited: float
    model_calls: float
    tokens: float
    seconds: float
    errors: int

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Summary:
        return cls(_mean([o.correct for o in outcomes]), _mean([o.cited for o in outcomes]),
                   _mean([o.model_calls for o in outcomes]), _mean([o.tokens for o in outcomes]),
                   _mean([o.seconds for o in outcomes]), sum(o.error is not None for o in outcomes))


def _mean(values: Sequence[float]) -> float:
    """The mean, or nan for no values (an empty test split), which the ratios and verdict pass through."""
    return statistics.mean(values) if values else math.nan


@dataclass
class Report:
    model: str
    options: Options
    n_train: int
    training: list[Outcome]
    evaluation: dict[str, list[Outcome]]
    arms: list[dict[str, object]]
    minutes: dict[str, float] = field(default_factory=dict)

    @property
    def summaries(self) -> dict[str, Summary]:
        return {label: Summary.of(runs) for label, runs in self.evaluation.items()}


COST_FIELDS = (("model calls", "model_calls"), ("tokens", "tokens"), ("seconds", "seconds"))


def ratio(a: float, b: float) -> float:
    """a / b; nan when b is 0 (no baseline to compare with)."""
    return a / b if b else math.nan


def verdict(fixed: Summary, learned: Summary) -> str:
    """"lower cost at equal or better accuracy" only when accuracy holds and every cost is lower."""
    costs = {name: ratio(getattr(learned, attr), getattr(fixed, attr)) for name, attr in COST_FIELDS}
    shown = ", ".join(f"{name} ×{value:.2f}" for name, value in costs.items())
    problems = []
    if learned.accuracy < fixed.accuracy:
        problems.append(f"accuracy fell ({learned.accuracy:.0%} vs {fixed.accuracy:.0%})")
    problems += [f"{name} did not fall (×{value:.2f})" for name, value in costs.items() if not value < 1.0]
    if not problems:
        return f"lower cost at equal or better accuracy ({learned.accuracy:.0%} vs {fixed.accuracy:.0%}; {shown})"
    return f"did not lower cost at equal or better accuracy: {'; '.join(problems)} ({shown})"


def format_report(report: Report) -> list[str]:
    o = report.options
    n_test = len(report.evaluation[FIXED])
    lines = [f"Tool-policy benchmark: model {report.model}, {len(report.training)} training runs over "
             f"{report.n_train} train questions, {n_test} held-out questions ({len(KINDS)} kinds), seed {o.seed}",
             f"policy {o.policy} (exploration {o.exploration}, epsilon {o.epsilon} in training; greedy in the "
             f"evaluation); reward = task correctness (known answers; else {o.target}) − {o.cost_weight} × cost",
             *(f"{phase}: {minutes:.1f} min" for phase, minutes in report.minutes.items()), ""]
    lines += _table(report.summaries)
    lines += ["", f"verdict: {verdict(report.summaries[FIXED], report.summaries[LEARNED])}", ""]
    lines += _choices("arms chosen on held-out questions, by kind", report.evaluation[LEARNED])
    lines += _choices("arms chosen in training, by kind", report.training)
    lines += ["arm pulls after training (mean learned reward):"]
    lines += [f"  {a['arm']:<14} {a['pulls']:>4}  "
              + ("-" if a["mean_reward"] is None else f"{a['mean_reward']:.2f}") for a in report.arms]
    return lines


def _table(summaries: dict[str, Summary]) -> list[str]:
    lines = [f"{'set-up':<22} {'accuracy':>9} {'cited':>7} {'calls/q':>8} {'tokens/q':>9} {'s/q':>7} {'errors':>7}"]
    for label, s in summaries.items():
        lines.append(f"{label:<22} {s.accuracy:>9.0%} {s.cited:>7.0%} {s.model_calls:>8.2f} {s.tokens:>9.0f} "
                     f"{s.seconds:>7.1f} {s.errors:>7}")
    a, b = summaries[LEARNED], summaries[FIXED]
    lines.append(f"{'ratio policy/default':<22} {ratio(a.accuracy, b.accuracy):>9.2f} {ratio(a.cited, b.cited):>7.2f} "
                 f"{ratio(a.model_calls, b.model_calls):>8.2f} {ratio(a.tokens, b.tokens):>9.2f} "
                 f"{ratio(a.seconds, b.seconds):>7.2f}")
    return lines


def _choices(title: str, outcomes: Sequence[Outcome]) -> list[str]:
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        by_kind[outcome.kind][outcome.arm] += 1
    lines = [f"{title}:"]
    for kind in KINDS:
        if kind in by_kind:
            lines.append(f"  {kind:<12} " + ", ".join(f"{arm} ×{n}" for arm, n in by_kind[kind].most_common()))
    return lines


# -- the benchmark -------------------------------------------------------------------------------


def run_benchmark(agent: Agent, train: Sequence[BenchTask], test: Sequence[BenchTask], options: Options,
                  data_dir: Path, *, model: str, backend: str, dialect: str,
                  on_run: Callable[[str, Outcome], None] | None = None) -> Report:
    """Train on ``train``, then compare on ``test``; the agent is the product's agent for the profile."""
    bench = PolicyBench(agent, data_dir, options, backend=backend, dialect=dialect)
    try:
        started = time.monotonic()
        training = bench.train(train, on_run)
        trained = time.monotonic()
        evaluation = bench.evaluate(test, on_run)
        minutes = {"training": (trained - started) / 60, "evaluation": (time.monotonic() - trained) / 60}
        return Report(model, options, len(train), training, evaluation, bench.arm_summary(), minutes)
    finally:
        bench.close()


def _progress(label: str, outcome: Outcome) -> None:
    mark = "error" if outcome.error else "ok" if outcome.correct else "wrong"
    print(f"  {label:<15} {outcome.kind:<12} {outcome.arm:<14} {mark:<6} calls {outcome.model_calls} "
          f"tokens {outcome.tokens} {outcome.seconds:.1f}s", flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-runs", type=int, default=30, help="rl-mode training runs (default 30)")
    parser.add_argument("--per-kind", type=int, default=6, help=f"questions per kind, {len(KINDS)} kinds (default 6)")
    parser.add_argument("--test-share", type=float, default=1 / 3, help="held-out share per kind (default 1/3)")
    parser.add_argument("--seed", type=int, default=0, help="world, task draw, split and policy seed (default 0)")
    parser.add_argument("--model", default="local", help="model profile (default: local, the embedded model)")
    parser.add_argument("--policy", choices=["linucb", "thompson"], default=PRODUCT.policy)
    parser.add_argument("--exploration", type=float, default=PRODUCT.exploration,
                        help="LinUCB alpha or Thompson scale in training (product default)")
    parser.add_argument("--epsilon", type=float, default=PRODUCT.epsilon, help="random-arm floor in training")
    parser.add_argument("--cost-weight", type=float, default=DEFAULT_COST_WEIGHT,
                        help=f"price of cost in the policy reward (default {DEFAULT_COST_WEIGHT}; product 0)")
    parser.add_argument("--target", choices=OPTIMIZATION_TARGETS, default=DEFAULT_TARGET,
                        help=f"reward the policy maximises (default, as the product: {DEFAULT_TARGET})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    options = Options(args.train_runs, args.policy, args.exploration, args.epsilon, args.cost_weight, args.target,
                      args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        train, test = split_tasks(make_tasks(base, args.seed, args.per_kind), args.seed, args.test_share)
        settings = load_settings(base, model=args.model)
        profile = settings.profile
        print(f"{len(train)} train, {len(test)} held-out questions; {args.train_runs} training runs", flush=True)
        report = run_benchmark(build_agent(settings), train, test, options, base / "data",
                               model=f"{profile.name} ({profile.model_id})", backend=profile.provider,
                               dialect=profile.dialect, on_run=_progress)
    print("\n" + "\n".join(format_report(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
