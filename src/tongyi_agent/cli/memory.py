"""`tongyi-cli memory list|show|forget|correct`: see, prune and correct the worked examples the assistant keeps."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tongyi_agent.cli.console import fail, out

if TYPE_CHECKING:
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store import Experience, ExperienceStore, TrajectoryStore

# The store and the configuration are imported by the commands that use them, so that
# `tongyi-cli --help` does not pay for them.

memory_app = typer.Typer(help="See, prune and correct the experience memory: confirmed runs (and corrections of "
                              "wrong ones) shown as worked examples.",
                         no_args_is_help=True, add_completion=False, rich_markup_mode=None)

RootOption = Annotated[Path, typer.Option("--root", "-r", help="Project folder whose training data is used.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
USED_BY_SHOWN = 10  # runs listed by `memory show` (all of them in --json)
IdArgument = Annotated[int, typer.Argument(metavar="ID", help="Experience id (from memory list).")]


@contextmanager
def _project(root: Path) -> Iterator[tuple[TrainingWorkspace, TrajectoryStore]]:
    """The project's training workspace and store; a project without training data is an error (nothing
    is created), as is any store or config error raised inside, reported in one line."""
    from tongyi_agent.config import ConfigError
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store import StoreError

    try:
        workspace = TrainingWorkspace.load(root)
        if not workspace.has_data():
            raise StoreError(f"no training data under {workspace.store_path.parent}: record runs with --train")
        with workspace.open_store() as store:
            yield workspace, store
    except (ConfigError, StoreError, ValueError) as exc:
        raise fail(str(exc.args[0]) if isinstance(exc, StoreError) and exc.args else str(exc)) from None


@contextmanager
def _experiences(root: Path) -> Iterator[ExperienceStore]:
    """The project's experiences (see :func:`_project`)."""
    from tongyi_agent.store import ExperienceStore

    with _project(root) as (_, store):
        yield ExperienceStore(store)


def _when(timestamp: float | None) -> str:
    return "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


@memory_app.command("list")
def list_experiences(root: RootOption = Path("."), as_json: JsonOption = False,
                     retired: Annotated[bool, typer.Option("--retired", help="Only retired experiences.")] = False,
                     ) -> None:
    """List the experiences, newest first: id, status, how confirmed, uses and failures, question."""
    with _experiences(root) as store:
        items = store.list(status="retired" if retired else None)
    if as_json:
        print(json.dumps([_summary(e) for e in items], ensure_ascii=False))
        return
    if not items:
        out.print("No experiences yet: confirm runs with --feedback RUN 1, or record task runs that answer correctly.")
        return
    from rich.table import Table

    table = Table(title="Experiences (newest first)", title_justify="left")
    for column in ("id", "status", "confirmed by", "uses", "failures", "created", "question"):
        table.add_column(column, overflow="fold")
    for e in items:
        table.add_row(str(e.id), e.status, e.confirmed_by, str(e.uses), f"{e.failures} ({e.failure_streak} in a row)",
                      _when(e.created_at), e.question)
    out.print(table)


@memory_app.command("show")
def show(experience_id: IdArgument, root: RootOption = Path("."), as_json: JsonOption = False) -> None:
    """Show one experience: the question, each tool call with its result, the cited lines, the answer, and
    the latest runs that were shown it, with how each went."""
    with _experiences(root) as store:
        experience = _get(store, experience_id)
        used_by = store.uses(experience_id)
    if as_json:
        print(json.dumps({**dataclasses.asdict(experience), "used_by": [dataclasses.asdict(u) for u in used_by]},
                         ensure_ascii=False))
        return
    e = experience
    out.print(f"Experience {e.id} ({e.status}; confirmed by {e.confirmed_by}; run {e.run_id})", markup=False)
    out.print(f"Root: {e.root}   Model: {e.model}   Dialect: {e.dialect}   Prompt version: "
              f"{e.prompt_version or 'packaged default'}", markup=False)
    out.print(f"Uses: {e.uses}, failures: {e.failures} ({e.failure_streak} in a row), "
              f"last used {_when(e.last_used_at)}", markup=False)
    if used_by:  # the runs to rate with --feedback RUN SCORE if a use was judged wrongly
        recent = used_by[-USED_BY_SHOWN:]
        label = "Used by runs" if len(recent) == len(used_by) else f"Used by runs (latest {len(recent)})"
        runs = ", ".join(f"{u.run_id[:12]} {'ok' if u.success else 'failed'}" for u in recent)
        out.print(f"{label}: {runs}", markup=False)
    out.print(f"\nQuestion: {e.question}", markup=False)
    for n, step in enumerate(e.trajectory.get("steps", []), 1):
        if step.get("thought"):
            out.print(f"  {n}. thought: {step['thought']}", markup=False)
        out.print(f"  {n}. {step.get('tool')}({json.dumps(step.get('arguments'), ensure_ascii=False)})", markup=False)
        observation = str(step.get("observation", ""))
        shown = observation[:400] + " …" if len(observation) > 400 else observation
        out.print("     " + shown.replace("\n", "\n     "), markup=False, highlight=False)
    cited = e.trajectory.get("cited", [])
    if cited:
        out.print("Cited:", markup=False)
        for c in cited:
            out.print(f"  {c.get('path')}:{c.get('line')}  {c.get('text', '')}", markup=False, highlight=False)
    out.print(f"Answer: {e.answer}", markup=False)


@memory_app.command("forget")
def forget(experience_id: IdArgument, root: RootOption = Path(".")) -> None:
    """Delete one experience, so it is never shown as an example again (its recorded run stays)."""
    with _experiences(root) as store:
        _get(store, experience_id)
        experience = store.forget(experience_id)
    out.print(f"Forgot experience {experience.id}: {experience.question}", markup=False)


@memory_app.command("correct")
def correct(run: Annotated[str, typer.Argument(metavar="RUN", help="Run id or its first 6+ characters.")],
            answer: Annotated[str, typer.Argument(metavar="ANSWER", help="The right answer to that run's question.")],
            root: RootOption = Path(".")) -> None:
    """Tell the assistant the right answer to a recorded run. The run is scored on it; a run that had
    it right becomes an example, and for a wrong one the memory looks for the one search (or the small
    file, or for a computed answer the short run_python program over the table the question names) in
    the run's folder that shows the answer and keeps that as the example instead. Exits 1 when it finds
    none that does."""
    from tongyi_agent.learn.memory import CORRECTION, ExperienceMemory

    if not answer.strip():
        raise fail("ANSWER is empty: give the right answer to the run's question")
    with _project(root) as (workspace, store):
        run_id = store.resolve_run_id(run)
        kept = ExperienceMemory(store, workspace.training).correct_run(run_id, answer)
        question = store.get_run(run_id).question
    if kept is None:
        out.print(f"Recorded {answer!r} as the answer to run {run_id[:12]}, but no search, small file or program in "
                  f"its folder shows it, so no example was kept: {question}", markup=False)
        raise typer.Exit(1)
    how = "the run had it right" if kept.confirmed_by != CORRECTION else "a correction of the run"
    step = kept.trajectory["steps"][0]
    out.print(f"Kept experience {kept.id} ({how}): {question}", markup=False)
    out.print(f"  {step['tool']}({json.dumps(step['arguments'], ensure_ascii=False)}) -> {kept.answer}", markup=False)


def _get(store: ExperienceStore, experience_id: int) -> Experience:
    from tongyi_agent.store import StoreError

    try:
        return store.get(experience_id)
    except StoreError as exc:
        raise fail(str(exc)) from None


def _summary(e: Experience) -> dict[str, object]:
    data = dataclasses.asdict(e)
    data.pop("trajectory")
    data["tool_calls"] = len(e.trajectory.get("steps", []))
    return data
