"""Learning curve on research worlds: does the assistant answer held-out questions better after use?

For each seed a research world is generated (benchmarks/research_world.py) with its fixed
train / validation / test split. The embedded model (profile ``local``) then answers train questions
through the product's own recorded path (``Lifecycle`` + ``RunRecorder``, experience memory on);
each train run is confirmed by its known answer exactly as a task run is. After N recorded train
runs (N = 0, 25, 100 by default; more train runs than train questions cycle through them again,
with the memory of what came before) the store is snapshotted, and the held-out test questions are
answered under four conditions:

1. ``none``: no learning (the packaged prompt, no examples);
2. ``memory``: the experience memory of the first N runs (worked examples retrieved per question);
3. ``demos``: a demonstration set searched over those experiences (random + greedy search on the
   validation split, learn/prompt/demos.py), the same for every question;
4. ``both``: the demonstration set and the memory together.

It prints one table per question kind (lookup, multi_hop, aggregation, which_file) and a summary
with held-out accuracy, model calls, tokens and seconds per question, and a one-sided paired
sign-flip p of each condition against ``none`` at the same N, pooled over the seeds. With
matplotlib (extra ``plot``) it writes a PNG learning curve.

Everything is cached under ``--cache`` (default ``.learning_curve/``): the worlds, the store of
recorded runs with one snapshot per N, the chosen demonstration sets and every answer, keyed by the
question and the exact prompt (system text and examples). So the benchmark resumes where it
stopped and never answers the same question with the same prompt twice. ``--max-answers K`` stops
cleanly after K new model answers (run it in chunks); cells not finished yet are marked.

The seeds (11, 12) differ from every seed that tests or prompts were tuned on (0-5 and the
prompt-optimization benchmark's 1 and 2).

    python benchmarks/learning_curve.py                    # seeds 11,12; N = 0,25,100 (hours on 2 cores)
    python benchmarks/learning_curve.py --quick            # seed 11; N = 0,4; 6 test, 3 validation questions
    python benchmarks/learning_curve.py --quick --max-answers 8   # ... in chunks of at most 8 new answers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from research_world import KINDS, generate_world
from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config import load_settings
from tongyi_agent.config.training import PromptOptimizationSettings, TrainingConfig, TrainingSettings
from tongyi_agent.learn.evaluation.experiments import sign_flip_p
from tongyi_agent.learn.evaluation.rewards import task_reward
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.memory import ExperienceMemory
from tongyi_agent.learn.prompt.demos import Demo, demo_from_experience, search_demos, with_demos
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import ExperienceStore, TrajectoryStore
from tongyi_agent.trace.recorder import message_dict

CONDITIONS = ("none", "memory", "demos", "both")
DEFAULT_SEEDS = (11, 12)


class OutOfAnswers(Exception):
    """This invocation's --max-answers is spent; everything so far is cached."""


@dataclass
class Answer:
    fingerprint: str
    task_id: str
    correct: bool
    model_calls: int
    tokens: int
    seconds: float
    answer: str


@dataclass
class Options:
    seeds: tuple[int, ...]
    ns: tuple[int, ...]
    test_size: int | None
    validation_size: int
    projects: int
    random_sets: int
    greedy_tries: int
    model: str
    cache: Path
    max_answers: int | None
    conditions: tuple[str, ...] = CONDITIONS


class Answers:
    """Every model answer on disk (JSONL), keyed by the fingerprint of question + prompt and the task.

    The task is part of the key because seeds share questions ("Who leads project Curlew?" in two
    worlds): the fingerprint alone would hand one world's answer to the other. (Older caches wrote
    such a second answer as "fingerprint:task_id"; both forms are read.)"""

    def __init__(self, path: Path, max_new: int | None) -> None:
        self.path = path
        self.max_new = max_new
        self.new = 0
        self.reused = 0
        self.known: dict[tuple[str, str], Answer] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    answer = Answer(**json.loads(line))
                    self.known[(answer.fingerprint.split(":")[0], answer.task_id)] = answer

    def get(self, fingerprint: str, task_id: str) -> Answer | None:
        found = self.known.get((fingerprint, task_id))
        if found is not None:
            self.reused += 1
        return found

    def reserve(self) -> None:
        if self.max_new is not None and self.new >= self.max_new:
            raise OutOfAnswers
        self.new += 1

    def put(self, answer: Answer) -> None:
        self.known[(answer.fingerprint, answer.task_id)] = answer
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(answer), ensure_ascii=False) + "\n")


def fingerprint(agent: Agent, question: str) -> str:
    """The exact prompt a question is asked with: model, system text, examples and the question."""
    payload = [agent.model.name, agent.spec.instructions, [message_dict(m) for m in agent.spec.examples], question]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


class Seed:
    """One research world: its tasks, its recorded train runs and snapshots, its evaluations."""

    def __init__(self, seed: int, options: Options, base: Agent, answers: Answers, loop: LoopRunner) -> None:
        self.seed = seed
        self.options = options
        self.dir = options.cache / f"seed{seed}"
        self.root = self.dir / "world"
        if not self._tasks_file().is_file():
            if self.root.exists():  # a generation interrupted before its task list was written
                shutil.rmtree(self.root)
            tasks = generate_world(seed, self.root, n_projects=options.projects)
            self._tasks_file().write_text("".join(json.dumps(asdict(t)) + "\n" for t in tasks), encoding="utf-8")
        self.tasks = [json.loads(line) for line in self._tasks_file().read_text(encoding="utf-8").splitlines()]
        self.train = [t for t in self.tasks if t["split"] == "train"]
        self.validation = [t for t in self.tasks if t["split"] == "validation"][:options.validation_size]
        test = [t for t in self.tasks if t["split"] == "test"]
        self.test = test[:options.test_size] if options.test_size else test
        self.agent = base.variant(root=self.root)
        self.answers = answers
        self.loop = loop
        self.open_stores: list[TrajectoryStore] = []
        training = TrainingConfig(
            training=TrainingSettings(enabled=True, training_data_path=self.dir / "training"),
            prompt_optimization=PromptOptimizationSettings(optimization_target="response_quality"))
        self.workspace = TrainingWorkspace(self.root, training, {})

    def _tasks_file(self) -> Path:
        return self.dir / "tasks.json"

    def snapshot(self, n: int) -> Path:
        return self.dir / f"store-{n}.sqlite"

    # -- train runs ----------------------------------------------------------------------------

    def record(self, up_to: int) -> None:
        """Record train runs until ``up_to`` exist, snapshotting the store at every N."""
        checkpoints = sorted(n for n in self.options.ns if n <= up_to)
        with self.workspace.open_store() as store:
            for n in checkpoints:
                while store.count_runs() < n:
                    task = self.train[store.count_runs() % len(self.train)]
                    self._record_one(store, task)
                if not self.snapshot(n).is_file():
                    store.backup(self.snapshot(n))

    def _record_one(self, store: TrajectoryStore, task: dict[str, Any]) -> None:
        self.answers.reserve()
        lifecycle = Lifecycle(self.workspace, store, rng=random.Random(self.seed))
        plan = lifecycle.plan(self.agent, None, task["question"])
        recorder = RunRecorder(store, self.workspace.training, backend="embedded", dialect=self.agent.dialect.name)
        recorded = self.loop.run(recorder.run(plan.agent, task["question"], run_id=plan.run_id,
                                              metadata={**plan.metadata, "task_id": task["id"]},
                                              task_answer=task["answer"], task_answer_regex=task["answer_regex"]))
        lifecycle.after_run(recorded)
        result = recorded.result
        score = task_reward(result, task["answer"], task["answer_regex"]) or 0.0
        self.answers.put(Answer(fingerprint(plan.agent, task["question"]), task["id"], score >= 1.0,
                                result.model_calls, result.usage.total_tokens, result.seconds, result.answer))

    # -- evaluation ----------------------------------------------------------------------------

    def ask(self, agent: Agent, task: dict[str, Any]) -> Answer:
        key = fingerprint(agent, task["question"])
        known = self.answers.get(key, task["id"])
        if known is not None:
            return known
        self.answers.reserve()
        result = self.loop.run(agent.run(task["question"]))
        score = task_reward(result, task["answer"], task["answer_regex"]) or 0.0
        answer = Answer(key, task["id"], score >= 1.0, result.model_calls, result.usage.total_tokens, result.seconds,
                        result.answer)
        self.answers.put(answer)
        return answer

    def demos(self, n: int) -> list[Demo]:
        """The demonstration set searched over the experiences of the first ``n`` runs (cached)."""
        path = self.dir / f"demos-{n}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        if n == 0:
            return []
        with TrajectoryStore(self.snapshot(n)) as store:
            pool = [demo_from_experience(e) for e in ExperienceStore(store).list(status="active")]
        share = self.workspace.training.memory.budget_share

        def evaluate(demos: list[Demo]) -> float:
            agent = with_demos(self.agent, demos, budget_share=share)
            return statistics.mean(self.ask(agent, t).correct for t in self.validation)

        found = search_demos(pool, evaluate, size=self.workspace.training.memory.examples,
                             rng=random.Random(self.seed * 1000 + n), random_sets=self.options.random_sets,
                             greedy_tries=self.options.greedy_tries)
        path.write_text(json.dumps(found.demos, ensure_ascii=False), encoding="utf-8")
        return found.demos

    def condition_agent(self, condition: str, n: int) -> Callable[[dict[str, Any]], Agent]:
        """A function from a test task to the agent that answers it under ``condition`` at ``n``."""
        share = self.workspace.training.memory.budget_share
        base = with_demos(self.agent, self.demos(n), budget_share=share) if condition in ("demos", "both") \
            else self.agent
        if condition in ("none", "demos") or n == 0:
            return lambda task: base
        store = TrajectoryStore(self.snapshot(n))
        self.open_stores.append(store)
        memory = ExperienceMemory(store, self.workspace.training)
        return lambda task: memory.prepare(base, task["question"])[0]

    def evaluate(self, condition: str, n: int) -> list[Answer]:
        make = self.condition_agent(condition, n)
        return [self.ask(make(task), task) for task in self.test]


def run(options: Options) -> dict[str, Any]:
    """Record, evaluate and collect; returns the cells done (and stops cleanly at --max-answers)."""
    options.cache = options.cache.resolve()  # runs record their root: it must not depend on the cwd
    options.cache.mkdir(parents=True, exist_ok=True)
    answers = Answers(options.cache / "answers.jsonl", options.max_answers)
    loop = LoopRunner()
    cells: dict[tuple[int, int, str], list[Answer]] = {}
    seeds: dict[int, Seed] = {}
    stopped = False
    try:
        settings = load_settings(options.cache, model=options.model)
        base = build_agent(settings)
        for seed in options.seeds:
            seeds[seed] = Seed(seed, options, base, answers, loop)
        # Breadth first over N, so a partial run still gives a curve from the left.
        for n in sorted(options.ns):
            for seed in options.seeds:
                seeds[seed].record(n)
                for condition in options.conditions:
                    cells[(seed, n, condition)] = seeds[seed].evaluate(condition, n)
    except OutOfAnswers:
        stopped = True
    finally:
        loop.close()
        for s in seeds.values():
            for store in s.open_stores:
                store.close()
    return {"cells": cells, "seeds": seeds, "stopped": stopped, "new": answers.new, "reused": answers.reused}


def _kind(seeds: dict[int, Seed], seed: int, task_id: str) -> str:
    return next(t["kind"] for t in seeds[seed].test if t["id"] == task_id)


def report(outcome: dict[str, Any], options: Options) -> list[str]:
    cells: dict[tuple[int, int, str], list[Answer]] = outcome["cells"]
    seeds: dict[int, Seed] = outcome["seeds"]
    lines = [f"Learning curve, model {options.model}, seeds {','.join(map(str, options.seeds))}, "
             f"N = {','.join(map(str, options.ns))}; {outcome['new']} new answers this run, "
             f"{outcome['reused']} reused from the cache"
             + ("; STOPPED at --max-answers (run again to continue)" if outcome["stopped"] else "")]
    for seed, s in seeds.items():
        lines.append(f"seed {seed}: {len(s.train)} train, {len(s.validation)} validation, {len(s.test)} test "
                     "questions used")
    lines.append("")
    header = f"{'N':>4} {'condition':<9} {'n':>4} {'accuracy':>8} {'Δ vs none':>9} {'p':>6} {'calls/q':>8} " \
             f"{'tok/q':>7} {'s/q':>6}"
    lines += ["All kinds (both seeds pooled)", header]
    for n in options.ns:
        base = _pooled(cells, options.seeds, n, "none")
        for condition in options.conditions:
            got = _pooled(cells, options.seeds, n, condition)
            if got is None:
                lines.append(f"{n:>4} {condition:<9}  (not finished)")
                continue
            acc = statistics.mean(a.correct for a in got)
            delta = p = "—"
            if base is not None and condition != "none":
                diffs = [float(a.correct) - float(b.correct) for a, b in zip(got, base, strict=True)]
                delta = f"{acc - statistics.mean(b.correct for b in base):+.1%}"
                p = f"{sign_flip_p(diffs, alternative='greater'):.3f}"
            calls = statistics.mean(a.model_calls for a in got)
            tokens = statistics.mean(a.tokens for a in got)
            seconds = statistics.mean(a.seconds for a in got)
            lines.append(f"{n:>4} {condition:<9} {len(got):>4} {acc:>8.1%} {delta:>9} {p:>6} {calls:>8.2f} "
                         f"{tokens:>7.0f} {seconds:>6.1f}")
    for kind in KINDS:
        lines += ["", f"Kind {kind}: held-out accuracy (questions)",
                  f"{'N':>4} " + " ".join(f"{c:>12}" for c in options.conditions)]
        for n in options.ns:
            row = [f"{n:>4}"]
            for condition in options.conditions:
                got = _pooled(cells, options.seeds, n, condition)
                if got is None:
                    row.append(f"{'—':>12}")
                    continue
                mine = [a for seed in options.seeds for a in cells[(seed, n, condition)]
                        if _kind(seeds, seed, a.task_id) == kind]
                share = statistics.mean(a.correct for a in mine) if mine else None
                row.append(f"{share:>7.1%} ({len(mine):>2})" if share is not None else f"{'—':>12}")
            lines.append(" ".join(row))
    return lines


def _pooled(cells: dict[tuple[int, int, str], list[Answer]], seeds: tuple[int, ...], n: int,
            condition: str) -> list[Answer] | None:
    if any((seed, n, condition) not in cells for seed in seeds):
        return None
    return [a for seed in seeds for a in cells[(seed, n, condition)]]


def plot(outcome: dict[str, Any], options: Options, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install -e '.[plot]')"
    figure, axis = plt.subplots(figsize=(6, 4))
    for condition in options.conditions:
        points = [(n, statistics.mean(a.correct for a in got)) for n in options.ns
                  if (got := _pooled(outcome["cells"], options.seeds, n, condition))]
        if points:
            axis.plot([x for x, _ in points], [y for _, y in points], marker="o", label=condition)
    axis.set_xlabel("recorded train runs (N)")
    axis.set_ylabel("held-out accuracy")
    axis.set_ylim(0, 1)
    axis.set_title(f"Learning curve ({options.model}, seeds {','.join(map(str, options.seeds))})")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return f"learning curve written to {path}"


def parse(argv: list[str] | None = None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="world seeds (default 11,12)")
    parser.add_argument("--n", default="0,25,100", help="numbers of recorded train runs (default 0,25,100)")
    parser.add_argument("--test-size", type=int, default=None, help="held-out questions per seed (default: all)")
    parser.add_argument("--validation-size", type=int, default=8, help="validation questions for the demo search")
    parser.add_argument("--projects", type=int, default=16, help="projects per world (2-16; more give more questions)")
    parser.add_argument("--random-sets", type=int, default=4, help="random demonstration sets tried per N")
    parser.add_argument("--greedy-tries", type=int, default=4, help="greedy swaps tried per N")
    parser.add_argument("--model", default="local", help="model profile (default: local, the embedded model)")
    parser.add_argument("--cache", type=Path, default=Path(".learning_curve"), help="cache folder (resumable)")
    parser.add_argument("--max-answers", type=int, default=None, help="stop after this many new model answers")
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default: <cache>/learning_curve.png)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="conditions to evaluate, a subset of " + ", ".join(CONDITIONS) + " (none is always run)")
    parser.add_argument("--quick", action="store_true",
                        help="a small check that it works: seed 11, N = 0,4, 6 test and 3 validation questions, "
                             "6 projects, 2 random sets and 2 greedy swaps")
    args = parser.parse_args(argv)
    options = Options(seeds=tuple(int(s) for s in args.seeds.split(",")), ns=tuple(int(n) for n in args.n.split(",")),
                      test_size=args.test_size, validation_size=args.validation_size, projects=args.projects,
                      random_sets=args.random_sets, greedy_tries=args.greedy_tries, model=args.model,
                      cache=args.cache, max_answers=args.max_answers,
                      conditions=tuple(c for c in CONDITIONS if c == "none" or c in args.conditions.split(",")))
    if unknown := set(args.conditions.split(",")) - set(CONDITIONS):
        parser.error(f"unknown conditions: {', '.join(sorted(unknown))}; choose from {', '.join(CONDITIONS)}")
    if args.quick:
        options.seeds, options.ns, options.test_size, options.validation_size = (11,), (0, 4), 6, 3
        options.projects, options.random_sets, options.greedy_tries = 6, 2, 2
        if args.cache == Path(".learning_curve"):
            options.cache = Path(".learning_curve-quick")
    if any(seed in range(0, 6) for seed in options.seeds):
        parser.error("seeds 0-5 are the ones tests and prompts were tuned on; pick others (default 11,12)")
    return options, args.plot or options.cache / "learning_curve.png"


def main(argv: list[str] | None = None) -> int:
    options, png = parse(argv)
    outcome = run(options)
    for line in report(outcome, options):
        print(line)
    print(plot(outcome, options, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
