"""`tongyi-cli --optimize --training-mode sft`: LoRA fine-tuning with an estimate, progress and a report."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tongyi_agent.config import Settings
from tongyi_agent.learn.sft_run import SftEvents, SftReport, SftRequest, run_sft
from tongyi_agent.learn.sft_train import LoraSettings
from tongyi_agent.learn.workspace import TrainingWorkspace


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
    progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    tasks: dict[str, int] = {}

    def bar(name: str, total: int) -> int:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total, note="")
        return tasks[name]

    def on_estimate(seconds: float, steps: int) -> None:
        console.print(f"Training {steps} steps; estimated {duration(seconds)} on this machine "
                      "(interrupt with Ctrl-C and continue later with --resume).")

    def on_step(step: int, total: int, loss: float | None) -> None:
        progress.update(bar("Fine-tuning", total), completed=step,
                        note="" if loss is None else f"loss {loss:.3f}")

    def on_eval(arm: str, done: int, total: int) -> None:
        progress.update(bar(f"Held-out test ({arm})", total), completed=done)

    events = SftEvents(on_stage=lambda message: console.print(f"[dim]{message}…[/]"), on_estimate=on_estimate,
                       on_step=on_step, on_eval=on_eval)
    with progress:
        return run_sft(workspace, settings, request, events)


def print_sft_report(console: Console, report: SftReport) -> None:
    train = report.train
    console.print(f"SFT run {report.run_id} on {report.profile}: {report.examples} examples from "
                  f"{report.runs_used} recorded runs ({report.tokens} tokens).")
    if report.skipped:
        console.print("Runs not imitated: " + ", ".join(f"{n} {why}" for why, n in report.skipped.items()))
    if train is not None:
        console.print(f"Trained {train.steps} steps on {train.device} in {duration(train.seconds)} "
                      f"(estimated {duration(report.estimated_seconds)}), peak memory "
                      f"{train.peak_memory_bytes / 2**30:.1f} GiB, final loss "
                      f"{'—' if train.final_loss is None else f'{train.final_loss:.3f}'}.")
    table = Table(title=f"Held-out test ({report.test_tasks} tasks)", title_justify="left")
    table.add_column("")
    table.add_column("accuracy")
    table.add_row(f"{report.profile} (base)", f"{report.base_accuracy:.3f}")
    table.add_row(f"{report.profile} + adapter", f"{report.adapter_accuracy:.3f}")
    console.print(table)
    if report.promoted:
        console.print(f"[green]Promoted[/]: {report.decision}. Use it with --model {report.promoted_profile} "
                      f"(or make it the default: tongyi-cli models set {report.promoted_profile}).")
    else:
        console.print(f"[yellow]Not promoted[/]: {report.decision}. The adapter is kept at {report.adapter_path}.")


def duration(seconds: float) -> str:
    """"3 min 05 s" or "42 s": training times are read by people."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
