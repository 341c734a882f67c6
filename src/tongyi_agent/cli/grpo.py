"""`tongyi-cli --optimize --training-mode rl --grpo`: GRPO on the embedded model, with progress and a report.

rl mode refits the tool policy for every model; --grpo additionally trains the weights of an
embedded (open-weight) model. The report says what was trained, what the held-out test measured
and whether the adapter was promoted.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tongyi_agent.cli.adapter_report import TrainingBars, duration, print_verdict, run_reporting_errors
from tongyi_agent.cli.console import err, fail, out
from tongyi_agent.config import Settings
from tongyi_agent.learn.weights.grpo_run import GrpoError, GrpoEvents, GrpoReport, GrpoRequest, check_profile, run_grpo
from tongyi_agent.learn.weights.grpo_train import GrpoTrainSettings
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
    request = grpo_request(workspace, steps=steps, tasks=tasks, seed=seed, resume=resume)
    print_grpo_report(out, run_reporting_errors(lambda: grpo_command(settings, workspace, request, err)))
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
    bars = TrainingBars(console)

    def on_step(step: int, total: int, reward: float | None) -> None:
        bars.update("GRPO", step, total, "" if reward is None else f"reward {reward:.3f}")

    events = GrpoEvents(on_stage=lambda message: console.print(f"[dim]{message}…[/]"), on_step=on_step,
                        on_eval=bars.on_eval)
    with bars:
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
    print_verdict(console, report)


def _rewards(history: list[dict[str, float]]) -> str:
    """Mean task reward of the sampled answers, first step vs last: did sampling get better while training?"""
    task = [h["task"] for h in history if "task" in h]
    if not task:
        return "no rewards logged"
    if len(task) == 1:
        return f"mean task reward of the sampled answers {task[0]:.3f}"
    return f"mean task reward of the sampled answers {task[0]:.3f} at the first step, {task[-1]:.3f} at the last"
