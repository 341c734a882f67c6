"""`tongyi-cli --optimize`: improve the system prompt on held-out tasks, with progress and a report."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.config import Settings, load_settings, user_cache_dir
from tongyi_agent.learn.prompt.optimizer import Budget
from tongyi_agent.learn.prompt.prompt_run import OptimizeOutcome, OptimizeRequest, run_prompt_optimization
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.registry import build_model


def optimize_command(settings: Settings, workspace: TrainingWorkspace, request: OptimizeRequest, *,
                     reflection_profile: str | None, console: Console, verbose: bool) -> OptimizeOutcome:
    agent = build_agent(settings, cache_dir=workspace.training.data_dir(settings.root))
    reflection_model = None
    # Without instruction proposals ("none": an embedded reflection model) nothing would call it, so it
    # is not loaded: an embedded model would take another 1 to 2 GB of memory for nothing.
    if reflection_profile and request.proposer != "none":
        reflection_settings = load_settings(settings.root, model=reflection_profile,
                                            trust_root=settings.trust.trusted)
        reflection_model = build_model(reflection_settings.profile, reflection_settings.env,
                                       user_cache_dir(reflection_settings.env))
    progress = Progress(TextColumn("[bold]Optimizing prompt[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("rollouts · best validation {task.fields[best]}"), TimeElapsedColumn(),
                        # At the rate so far; the search may stop sooner, at its iteration limit.
                        TextColumn("· budget used up in"), TimeRemainingColumn(),
                        console=console, transient=True)
    task = progress.add_task("optimize", total=request.budget_rollouts, best="—")

    def on_rollout(budget: Budget) -> None:
        progress.update(task, completed=min(budget.rollouts, request.budget_rollouts))

    def on_best(score: float) -> None:
        progress.update(task, best=f"{score:.3f}")

    with progress:
        return run_prompt_optimization(workspace, agent, request, reflection_model=reflection_model,
                                       on_rollout=on_rollout, on_best=on_best,
                                       on_log=console.print if verbose else None)


def print_report(console: Console, outcome: OptimizeOutcome, *, instructions_searched: bool = True) -> None:
    """The scores, what was searched, and the decision: promoted, or not and why (with what to do
    when there was nothing to try)."""
    report = outcome.report
    table = Table(title=f"Prompt optimization {outcome.run_id} (seed prompt {outcome.seed_version.id})",
                  title_justify="left")
    for column in ("", "validation", "held-out test"):
        table.add_column(column)
    table.add_row("seed (active) prompt", f"{report.seed_validation:.3f}", f"{report.seed_test:.3f}")
    table.add_row("best candidate", f"{report.best_validation:.3f}", f"{report.best_test:.3f}")
    console.print(table)
    sizes = ", ".join(f"{k} {v}" for k, v in report.splits.items())
    console.print(f"tasks: {sizes} · candidates explored: {report.iterations} · rollouts: {report.rollouts} · "
                  f"tokens: {report.tokens}")
    search = report.demo_search
    if search:
        console.print(f"demonstrations: pool {search['pool']} ({search['bootstrapped']} bootstrapped from training "
                      f"rollouts) · sets tried {search['sets_tried']} · validation without "
                      f"{search['empty_validation']:.3f}, best set {search['validation']:.3f}", markup=False)
    for demo in report.best_demos:
        console.print(f"  demo: {demo['question']} -> {str(demo.get('answer', ''))[:80]} ({demo.get('source', '')})",
                      markup=False)
    if report.promoted and outcome.candidate:
        console.print(f"[green]Promoted[/] {outcome.candidate.id}: {report.decision}. "
                      f"Undo with: tongyi-cli prompts rollback")
    elif outcome.candidate:
        console.print(f"[yellow]Not promoted[/]: {report.decision}. Kept as candidate {outcome.candidate.id} "
                      f"(tongyi-cli prompts show {outcome.candidate.id}).")
    else:
        console.print(f"[yellow]Not promoted[/]: {report.decision}.")
    if not report.promoted and not instructions_searched and not (search or {}).get("pool"):
        # Nothing was tried at all: say what would give the search something to try.
        console.print("Nothing was tried: the embedded model proposes no new instructions, and there were no "
                      "demonstrations. Confirm good runs with --feedback RUN_ID 1 (they become demonstrations), "
                      "optimize on --tasks with known answers, or add --reflection-model with a stronger profile.",
                      markup=False)
