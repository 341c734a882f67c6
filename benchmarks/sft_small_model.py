"""SFT of the small embedded model from recorded runs: base vs LoRA adapter on held-out questions.

1. Generates research worlds (benchmarks/research_world.py): training worlds and one evaluation world
   with other projects, people and numbers.
2. Records runs of the teacher profile (default `local`, the 1.5B model) on the training worlds'
   questions into a project store, exactly as `--train` records them (rewards include the task's
   known answer).
3. Runs the product's SFT pipeline (`learn/weights/sft_run.py`, the code behind
   `tongyi-cli --optimize --training-mode sft`) for the student profile (default `local-small`, the
   0.5B model): imitation data from the good runs, LoRA training with TRL, conversion to a GGUF
   LoRA, and the base vs adapter comparison on the evaluation world's questions, both served by
   llama-cpp-python.
4. Prints accuracy per question kind, the training time, the estimate given before training, and the
   peak memory.

    python benchmarks/sft_small_model.py                       # ~30-40 min on 2 cores
    python benchmarks/sft_small_model.py --teacher-runs 8 --eval-tasks 6 --epochs 1   # a smoke run

Needs the [train] and [small] extras. The promotion it may do writes a `local-small-sft` profile into
the config directory of TONGYI_CONFIG_DIR (a temporary one unless you set it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from research_world import generate_world, write_tasks
from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.config import load_settings
from tongyi_agent.learn.evaluation.tasks import load_tasks, split_tasks
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.learn.weights.sft_run import SftEvents, SftRequest, run_sft
from tongyi_agent.learn.weights.sft_train import LoraSettings
from tongyi_agent.learn.workspace import TrainingWorkspace


def record_teacher_runs(project: Path, teacher: str, worlds: list[tuple[Path, list]], limit: int) -> dict[str, int]:
    """Run the teacher on the training worlds' train and validation questions, recording each run."""
    workspace = TrainingWorkspace.load(project, enabled=True, mode="sft")
    tally: dict[str, int] = defaultdict(int)
    loop = LoopRunner()
    todo = [(root, t) for root, tasks in worlds for t in tasks if t.split in ("train", "validation")][:limit]
    started = time.monotonic()
    try:
        with workspace.open_store() as store:
            for number, (root, task) in enumerate(todo, 1):
                settings = load_settings(root, model=teacher)
                recorder = RunRecorder.for_profile(store, workspace.training, settings.profile)
                recorded = loop.run(recorder.run(build_agent(settings), task.question, task_answer=task.answer,
                                                 task_answer_regex=task.answer_regex))
                correct = any(r.name == "task" and r.value == 1.0 for r in recorded.rewards)
                tally["correct" if correct else "wrong"] += 1
                print(f"  teacher run {number}/{len(todo)}: {'correct' if correct else 'wrong'} "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        loop.close()
    return dict(tally)


def balanced(tasks: list, count: int) -> list:
    """Up to ``count`` tasks taking each kind in turn, so no kind of question dominates the verdict."""
    by_kind: dict[str, list] = defaultdict(list)
    for task in sorted(tasks, key=lambda t: (t.split != "test", t.id)):
        by_kind[task.kind].append(task)
    picked: list = []
    while len(picked) < count and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(picked) < count:
                picked.append(by_kind[kind].pop(0))
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-seeds", default="1,2", help="research worlds to record training runs in")
    parser.add_argument("--eval-seed", type=int, default=7, help="the held-out world (default 7)")
    parser.add_argument("--teacher", default="local", help="profile whose recorded runs are imitated")
    parser.add_argument("--student", default="local-small", help="embedded profile to fine-tune")
    parser.add_argument("--teacher-runs", type=int, default=30, help="recorded runs at most (default 30)")
    parser.add_argument("--eval-tasks", type=int, default=24, help="held-out questions (default 24)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--min-reward", type=float, default=0.8)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it (default: a temp dir)")
    args = parser.parse_args()

    project = args.keep or Path(tempfile.mkdtemp(prefix="sft-bench-"))
    project.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TONGYI_CONFIG_DIR", str(project / "config"))
    worlds = []
    for seed in [int(s) for s in args.train_seeds.split(",")]:
        root = project / f"world{seed}"
        worlds.append((root, generate_world(seed, root)))
    eval_root = project / f"world{args.eval_seed}"
    eval_tasks = generate_world(args.eval_seed, eval_root)
    eval_tasks = balanced(eval_tasks, args.eval_tasks)
    for task in eval_tasks:
        task.split = "test"
    tasks_file = project / "heldout.jsonl"
    write_tasks(eval_tasks, tasks_file)

    print(f"project {project}; teacher {args.teacher}, student {args.student}", flush=True)
    started = time.monotonic()
    tally = record_teacher_runs(project, args.teacher, worlds, args.teacher_runs)
    teacher_minutes = (time.monotonic() - started) / 60
    print(f"teacher runs: {tally} in {teacher_minutes:.1f} min", flush=True)

    workspace = TrainingWorkspace.load(project, enabled=True, mode="sft")
    settings = load_settings(project, model=args.student)
    lora = LoraSettings(rank=args.rank, alpha=2 * args.rank, epochs=args.epochs, learning_rate=args.learning_rate)
    events = SftEvents(
        on_stage=lambda m: print(f"  {m}", flush=True),
        on_estimate=lambda s, n: print(f"  estimate before training: {n} steps, {s / 60:.1f} min", flush=True),
        on_step=lambda s, n, loss: print(f"  step {s}/{n} loss {loss}", flush=True) if s % 5 == 0 or s == n else None,
        on_eval=lambda arm, d, n: print(f"  eval {arm} {d}/{n}", flush=True) if d == n else None)
    report = run_sft(workspace, settings, SftRequest(min_reward=args.min_reward, tasks_file=tasks_file, lora=lora),
                     events)

    held_out = split_tasks(load_tasks(tasks_file, project)).test
    by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for task, base, tuned in zip(held_out, report.base_scores, report.adapter_scores, strict=True):
        by_kind[task.kind].append((base, tuned))
    train = report.train
    assert train is not None
    print(f"\nSFT of {args.student} on {report.examples} model calls from {report.runs_used} recorded "
          f"{args.teacher} runs ({report.tokens} tokens, {args.epochs:g} epoch(s), LoRA r={args.rank}); "
          f"skipped runs: {report.skipped}")
    print(f"training: {train.steps} steps in {train.seconds / 60:.1f} min on {train.device} "
          f"(estimated {report.estimated_seconds / 60:.1f} min), "
          f"peak memory {train.peak_memory_bytes / 2**30:.1f} GiB\n")
    print(f"{'held-out kind':<14} {'tasks':>5} {'base':>6} {'adapter':>8}")
    for kind, pairs in sorted(by_kind.items()):
        print(f"{kind:<14} {len(pairs):>5} {mean(p[0] for p in pairs):>6.0%} {mean(p[1] for p in pairs):>8.0%}")
    print(f"{'all':<14} {report.test_tasks:>5} {report.base_accuracy:>6.0%} {report.adapter_accuracy:>8.0%}")
    print(f"\ndecision: {'promoted' if report.promoted else 'not promoted'} - {report.decision}")
    print(json.dumps({"teacher_runs": tally, "teacher_minutes": round(teacher_minutes, 1),
                      "examples": report.examples, "train_minutes": round(train.seconds / 60, 1),
                      "estimated_minutes": round(report.estimated_seconds / 60, 1),
                      "peak_gib": round(train.peak_memory_bytes / 2**30, 2),
                      "base": report.base_accuracy, "adapter": report.adapter_accuracy,
                      "promoted": report.promoted}))


if __name__ == "__main__":
    main()
