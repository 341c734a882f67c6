"""The training-data commands of `tongyi-cli`: stats, export, feedback, reset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from tongyi_agent.cli.render_stats import print_learning, print_stats
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import StoreError

NO_DATA_HINT = "No training data yet. Run questions with --train first, e.g. tongyi-cli --train \"question\"."


def show_stats(workspace: TrainingWorkspace, out: Console, *, as_json: bool, plot: Path | None) -> int:
    if not workspace.has_data():
        out.print(json.dumps({"total_interactions": 0, "hint": NO_DATA_HINT}) if as_json else NO_DATA_HINT)
        return 0
    with workspace.open_store() as store:
        stats = workspace.stats(store)
    if plot is not None:
        from tongyi_agent.cli.plot import plot_trend

        plot_trend(stats, plot)
    if as_json:
        print(json.dumps(stats, ensure_ascii=False, default=str))
    elif stats["total_interactions"] == 0:
        out.print(NO_DATA_HINT)
    else:
        print_stats(out, stats, target=workspace.target)
        print_learning(out, stats)
    if plot is not None and not as_json:
        out.print(f"Trend chart written to {plot}")
    return 0


def feedback(workspace: TrainingWorkspace, run_prefix: str, score: float) -> tuple[str, list[str]]:
    """Store user feedback for a run and judge its uses of worked examples again; returns the full run
    id and notes for the user (experiences retired or active again). Raises StoreError / ValueError."""
    # Imported here: the memory renders examples in each dialect, which brings the agent layer; the
    # other training commands (--training-stats, exports) must start without it.
    from tongyi_agent.learn.memory import ExperienceMemory

    if not workspace.has_data():
        raise StoreError(f"no recorded runs under {workspace.store_path.parent}; run with --train first")
    with workspace.open_store() as store:
        run_id = store.resolve_run_id(run_prefix)
        store.add_feedback(run_id, score)
        notes = ExperienceMemory(store, workspace.training).after_feedback(run_id)
    return run_id, notes


def reset(workspace: TrainingWorkspace, out: Console, *, yes: bool) -> int:
    if not workspace.has_data():
        out.print(f"Nothing to reset: no training data under {workspace.store_path.parent}.")
        return 0
    with workspace.open_store() as store:
        count = store.count_runs()
        if not yes:
            if not sys.stdin.isatty():
                raise StoreError(f"refusing to delete {count} recorded runs without confirmation; add --yes")
            answer = input(f"Delete all {count} recorded runs in {workspace.store_path}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                out.print("Nothing deleted.")
                return 0
        store.reset()
    out.print(f"Deleted {count} recorded runs.")
    return 0
