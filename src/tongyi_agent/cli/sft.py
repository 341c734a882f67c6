"""`tongyi-cli --optimize --training-mode sft`: LoRA fine-tuning with an estimate, progress and a report."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tongyi_agent.cli.adapter_report import TrainingBars, duration, print_verdict, run_reporting_errors
from tongyi_agent.cli.console import err, out
from tongyi_agent.config import Settings
from tongyi_agent.learn.weights.sft_run import SftEvents, SftReport, SftRequest, run_sft
from tongyi_agent.learn.weights.sft_train import LoraSettings
from tongyi_agent.learn.workspace import TrainingWorkspace


def optimize_sft(settings: Settings, workspace: TrainingWorkspace, *, min_reward: float | None, tasks: Path | None,
                 resume: bool, seed: int) -> int:
    request = sft_request(workspace, min_reward=min_reward, tasks=tasks, seed=seed, resume=resume)
    print_sft_report(out, run_reporting_errors(lambda: sft_command(settings, workspace, request, err)))
    return 0


def sft_request(workspace: TrainingWorkspace, *, min_reward: float | None, tasks: Path | None, seed: int,
                resume: bool) -> SftRequest:
    config = workspace.training.sft
    lora = LoraSettings(rank=config.rank, alpha=config.alpha, epochs=config.epochs,
                        learning_rate=config.learning_rate, max_length=config.max_length,
                        target_modules=tuple(m.strip() for m in config.target_modules.split(",") if m.strip()),
                        seed=seed)
    return SftRequest(min_reward=config.min_reward if min_reward is None else min_reward, tasks_file=tasks,
                      seed=seed, resume=resume, lora=lora)


def sft_command(settings: Settings, workspace: TrainingWorkspace, request: SftRequest, console: Console) -> SftReport:
    bars = TrainingBars(console)

    def on_estimate(seconds: float, steps: int) -> None:
        console.print(f"Training {steps} steps; estimated {duration(seconds)} on this machine "
                      "(interrupt with Ctrl-C and continue later with --resume).")

    def on_step(step: int, total: int, loss: float | None) -> None:
        bars.update("Fine-tuning", step, total, "" if loss is None else f"loss {loss:.3f}")

    events = SftEvents(on_stage=lambda message: console.print(f"[dim]{message}…[/]"), on_estimate=on_estimate,
                       on_step=on_step, on_eval=bars.on_eval)
    with bars:
        return run_sft(workspace, settings, request, events)


def print_sft_report(console: Console, report: SftReport) -> None:
    train = report.train
    console.print(f"SFT run {report.run_id} on {report.profile}: {report.examples} examples from "
                  f"{report.runs_used} recorded runs ({report.tokens} tokens).")
    if report.skipped:
        console.print("Not imitated: " + ", ".join(f"{n} {why}" for why, n in report.skipped.items()))
    if train is not None:
        console.print(f"Trained {train.steps} steps on {train.device} in {duration(train.seconds)} "
                      f"(estimated {duration(report.estimated_seconds)}), peak memory "
                      f"{train.peak_memory_bytes / 2**30:.1f} GiB, final loss "
                      f"{'—' if train.final_loss is None else f'{train.final_loss:.3f}'}.")
    print_verdict(console, report)
