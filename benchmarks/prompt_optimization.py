"""Prompt optimization on research worlds with the embedded model: seed vs optimized, held out.

For each seed, generates a research world (benchmarks/research_world.py), then runs the project's
prompt optimizer (GEPA over our agent; the embedded model both answers and reflects) on the world's
train/validation tasks within a rollout budget, and compares the seed prompt with the best prompt on
the world's held-out test tasks, side by side in one run. Per prompt it reports accuracy, citation
precision and recall (the run's Sources vs the task's supporting path:line), model calls, tokens and
seconds per question.

    python benchmarks/prompt_optimization.py                       # seeds 1,2; budget 60 rollouts each
    python benchmarks/prompt_optimization.py --seeds 1 --budget 30 --iterations 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from research_world import generate_world
from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.prompts import load_prompt
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config import load_settings
from tongyi_agent.learn.evaluation.tasks import Splits, Task
from tongyi_agent.learn.prompt.optimizer import AgentRunner, Budget, Scorer, optimize_prompt, reflection_callable


@dataclass
class Evaluation:
    accuracy: float
    citation_precision: float
    citation_recall: float
    model_calls: float
    tokens: float
    seconds: float


def evaluate(runner: AgentRunner, prompt: str, tasks: list[Task]) -> Evaluation:
    """Held-out metrics of one prompt; the runner reuses the rollouts the optimizer already made."""
    correct, precision, recall, calls, tokens, seconds = [], [], [], [], [], []
    for task in tasks:
        rollout = runner.run(task, {"system": prompt})
        result = rollout.result
        correct.append(rollout.score >= 1.0)
        cited = {s.label() for s in result.sources} if result else set()
        expected = set(task.sources)
        precision.append(len(cited & expected) / len(cited) if cited else 0.0)
        recall.append(len(cited & expected) / len(expected) if expected else 0.0)
        calls.append(result.model_calls if result else 0)
        tokens.append(result.usage.total_tokens if result else 0)
        seconds.append(result.seconds if result else 0.0)
    return Evaluation(statistics.mean(correct), statistics.mean(precision), statistics.mean(recall),
                      statistics.mean(calls), statistics.mean(tokens), statistics.mean(seconds))


def to_tasks(world_tasks: list, root: Path) -> Splits:
    splits = Splits()
    for t in world_tasks:
        task = Task(question=t.question, root=root, answer=t.answer, answer_regex=t.answer_regex,
                    sources=tuple(t.sources), id=t.id, split=t.split, kind=t.kind)
        getattr(splits, t.split).append(task)
    return splits


class _Log:
    def __init__(self, path: Path) -> None:
        self.handle = path.open("w", encoding="utf-8")

    def write_line(self, message: str) -> None:
        self.handle.write(message + "\n")
        self.handle.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2", help="world seeds (default 1,2)")
    parser.add_argument("--budget", type=int, default=60, help="rollouts for the search per seed (default 60)")
    parser.add_argument("--iterations", type=int, default=3, help="candidate prompts per seed (default 3)")
    parser.add_argument("--model", default="local", help="model profile (default: local, the embedded model)")
    parser.add_argument("--proposer", choices=["rule", "rewrite"], default="rule",
                        help="rule: ask the reflection model for one new rule (suits the embedded model); "
                             "rewrite: gepa's whole-prompt rewrite")
    parser.add_argument("--log", type=Path, help="write the optimizer's narration (proposed prompts) here")
    args = parser.parse_args()
    rows = []
    log = _Log(args.log) if args.log else None
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "world"
            splits = to_tasks(generate_world(seed, root), root)
            settings = load_settings(root, model=args.model)
            agent = build_agent(settings)
            loop = LoopRunner()
            seed_prompt = load_prompt("system")
            scorer = Scorer("response_quality", 60.0)
            runner = AgentRunner(agent, scorer, Budget(args.budget + 2 * len(splits.test)), loop=loop)
            started = time.monotonic()
            report = optimize_prompt(runner, seed_prompt, splits, reflection=reflection_callable(agent.model, loop),
                                     iterations=args.iterations, run_dir=Path(tmp) / "run", seed=seed,
                                     on_log=log.write_line if log else None, proposer=args.proposer)
            search_minutes = (time.monotonic() - started) / 60
            before = evaluate(runner, seed_prompt, splits.test)
            after = evaluate(runner, report.best_prompt, splits.test)
            loop.close()
            rows.append((seed, report, before, after, search_minutes))
            print(f"seed {seed}: done ({search_minutes:.1f} min)", flush=True)

    print(f"\nPrompt optimization on research worlds, model {args.model}, budget {args.budget} rollouts, "
          f"{args.iterations} candidates per seed\n")
    header = (f"{'seed':>4} {'prompt':<9} {'test acc':>8} {'cite P':>7} {'cite R':>7} {'calls/q':>8} "
              f"{'tok/q':>7} {'s/q':>6} {'val':>6} {'rollouts':>8} {'promoted':>8}")
    print(header)
    for seed, report, before, after, _ in rows:
        for label, ev, val in (("seed", before, report.seed_validation), ("optimized", after, report.best_validation)):
            print(f"{seed:>4} {label:<9} {ev.accuracy:>8.0%} {ev.citation_precision:>7.2f} "
                  f"{ev.citation_recall:>7.2f} {ev.model_calls:>8.2f} {ev.tokens:>7.0f} {ev.seconds:>6.1f} "
                  f"{val:>6.3f} {report.rollouts:>8} {report.promoted!s:>8}")
        print(f"     decision: {report.decision}")
    gains = [after.accuracy - before.accuracy for _, _, before, after, _ in rows]
    print(f"\nmean held-out accuracy change: {statistics.mean(gains):+.1%} over {len(rows)} seeds")


if __name__ == "__main__":
    main()
