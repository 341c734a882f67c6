"""`tongyi-cli --optimize --training-mode rl --grpo`: GRPO on the embedded model, with progress and a report.

rl mode refits the tool policy for every model; --grpo additionally trains the weights of an
embedded (open-weight) model. The report says what was trained, what the held-out test measured
and whether the adapter was promoted.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tongyi_agent.cli.console import EXIT_FAILED, err, fail, out
from tongyi_agent.cli.sft import duration
from tongyi_agent.config import Settings
from tongyi_agent.learn.grpo_run import GrpoError, GrpoEvents, GrpoReport, GrpoRequest, check_profile, run_grpo
from tongyi_agent.learn.grpo_train import GrpoTrainSettings
from tongyi_agent.learn.workspace import TrainingWorkspace


def check_grpo(settings: Settings) -> None:
    """Refuse an API profile before anything else runs (exit 2, one line)."""
    try:
        check_profile(settings)
    except GrpoError as exc:
        raise fail(str(exc)) from None


def optimize_grpo(settings: Settings, workspace: TrainingWorkspace, *, steps: int | None, tasks: Path | None,
                  resume: bool, seed: int) -> int:
    """Run GRPO and print the report; expected failures are one line on stderr (exit 2, or 1 for the model)."""
    from tongyi_agent.learn.gguf_lora import AdapterConversionError
    from tongyi_agent.learn.optimizer import NotEnoughTasksError
    from tongyi_agent.learn.sft_train import TrainingUnavailableError
    from tongyi_agent.learn.tasks import TaskFileError
    from tongyi_agent.llm.base import ModelError
    from tongyi_agent.store import StoreError

    request = grpo_request(workspace, steps=steps, tasks=tasks, seed=seed, resume=resume)
    try:
        report = grpo_command(settings, workspace, request, err)
    except (GrpoError, NotEnoughTasksError, TaskFileError, StoreError, TrainingUnavailableError,
            AdapterConversionError, FileNotFoundError) as exc:
        raise fail(str(exc.args[0]) if exc.args else str(exc)) from None
    except ModelError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    print_grpo_report(out, report)
    return 0


def grpo_request(workspace: TrainingWorkspace, *, steps: int | None, tasks: Path | None, seed: int,
                 resume: bool) -> GrpoRequest:
    config = workspace.training.grpo
    train = GrpoTrainSettings(steps=config.steps if steps is None else steps, num_generations=config.num_generations,
                              max_completion_length=config.max_completion_length,
                              max_prompt_length=config.max_prompt_length, learning_rate=config.learning_rate,
                              rank=config.rank, alpha=config.alpha, beta=config.beta, seed=seed)
    return GrpoRequest(tasks_file=tasks, seed=seed, resume=resume, train=train)


def grpo_command(settings: Settings, workspace: TrainingWorkspace, request: GrpoRequest,
                 console: Console) -> GrpoReport:
    progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=True)
    bars: dict[str, int] = {}

    def bar(name: str, total: int) -> int:
        if name not in bars:
            bars[name] = progress.add_task(name, total=total, note="")
        return bars[name]

    def on_step(step: int, total: int, reward: float | None) -> None:
        progress.update(bar("GRPO", total), completed=step, note="" if reward is None else f"reward {reward:.3f}")

    def on_eval(arm: str, done: int, total: int) -> None:
        progress.update(bar(f"Held-out test ({arm})", total), completed=done)

    events = GrpoEvents(on_stage=lambda message: console.print(f"[dim]{message}…[/]"), on_step=on_step,
                        on_eval=on_eval)
    with progress:
        return run_grpo(workspace, settings, request, events)


def print_grpo_report(console: Console, report: GrpoReport) -> None:
    train = report.train
    console.print(f"GRPO run {report.run_id} on {report.profile}: {report.rows} prompts from recorded runs of "
                  f"{report.tasks_used} of {report.tasks_with_reference} training tasks with a known answer.")
    if report.skipped:
        console.print("Runs not used: " + ", ".join(f"{n} {why}" for why, n in report.skipped.items()))
    if train is not None:
        console.print(f"Trained {train.steps} steps on {train.device} in {duration(train.seconds)}, peak memory "
                      f"{train.peak_memory_bytes / 2**30:.1f} GiB; {_rewards(train.history)}.")
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


def _rewards(history: list[dict[str, float]]) -> str:
    """Mean task reward of the sampled answers, first step vs last: did sampling get better while training?"""
    task = [h["task"] for h in history if "task" in h]
    if not task:
        return "no rewards logged"
    if len(task) == 1:
        return f"mean task reward of the sampled answers {task[0]:.3f}"
    return f"mean task reward of the sampled answers {task[0]:.3f} at the first step, {task[-1]:.3f} at the last"
