"""What the SFT and GRPO commands share on screen: progress bars, the held-out verdict, the errors.

Both train a LoRA adapter, judge it on held-out tasks and maybe promote it, so the user sees the
same bars, the same base-vs-adapter table and the same one-line failures for either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tongyi_agent.cli.console import EXIT_FAILED, fail
from tongyi_agent.learn.weights.adapter_run import Verdict

Report = TypeVar("Report")


class TrainingBars:
    """Named progress bars (training, then one per held-out arm) under one rich Progress."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
        self._bars: dict[str, Any] = {}

    def update(self, name: str, done: int, total: int, note: str = "") -> None:
        if name not in self._bars:
            self._bars[name] = self.progress.add_task(name, total=total, note="")
        self.progress.update(self._bars[name], completed=done, note=note)

    def on_eval(self, arm: str, done: int, total: int) -> None:
        self.update(f"Held-out test ({arm})", done, total)

    def __enter__(self) -> TrainingBars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]


def run_reporting_errors(train: Callable[[], Report]) -> Report:
    """Expected failures become one line on stderr: exit 2, or 1 when the model itself failed."""
    from tongyi_agent.learn.evaluation.tasks import TaskFileError
    from tongyi_agent.learn.prompt.optimizer import NotEnoughTasksError
    from tongyi_agent.learn.weights.adapter_run import AdapterRunError
    from tongyi_agent.learn.weights.gguf_lora import AdapterConversionError
    from tongyi_agent.learn.weights.sft_train import TrainingUnavailableError
    from tongyi_agent.llm.base import ModelError
    from tongyi_agent.store import StoreError

    try:
        return train()
    except (AdapterRunError, NotEnoughTasksError, TaskFileError, StoreError, TrainingUnavailableError,
            AdapterConversionError, FileNotFoundError) as exc:
        raise fail(str(exc.args[0]) if exc.args else str(exc)) from None
    except ModelError as exc:
        raise fail(str(exc), EXIT_FAILED) from None


def print_verdict(console: Console, report: Verdict) -> None:
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
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
