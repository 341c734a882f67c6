"""`tongyi-cli prompts list|show|diff|add|activate|rollback`: see, author and switch prompt versions."""

from __future__ import annotations

import dataclasses
import difflib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tongyi_agent.cli.console import fail, out

if TYPE_CHECKING:
    from tongyi_agent.store import PromptStore, PromptVersion

# The store, the configuration and the learners are imported by the commands that use them, so that
# `tongyi-cli --help` does not pay for them.

prompts_app = typer.Typer(help="List, compare, author and switch the agent's prompt versions.",
                          no_args_is_help=True, add_completion=False, rich_markup_mode=None)

RootOption = Annotated[Path, typer.Option("--root", "-r", help="Project folder whose training data is used.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; kept in the prompt event log.")]
@contextmanager
def _prompt_store(root: Path) -> Iterator[PromptStore]:
    """The project's prompt versions, with the packaged default recorded on first use; store and
    configuration errors become one line and exit 2."""
    from tongyi_agent.agent.prompts import default_components
    from tongyi_agent.config import ConfigError
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store import PromptStore, StoreError

    try:
        with TrainingWorkspace.load(root).open_store() as store:
            prompts = PromptStore(store)
            prompts.ensure_default(default_components())
            yield prompts
    except (ConfigError, StoreError, ValueError) as exc:
        raise fail(str(exc)) from None


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _scores_text(scores: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.3f}" for name, value in sorted(scores.items()))


def _summary(version: PromptVersion) -> dict[str, Any]:
    """A version without its texts (those can be long): `show` prints them."""
    data = dataclasses.asdict(version)
    data["components"] = list(version.components)
    return data


@prompts_app.command("list")
def list_versions(root: RootOption = Path("."), as_json: JsonOption = False) -> None:
    """List the prompt versions, newest first (the packaged default is recorded as the first one)."""
    with _prompt_store(root) as prompts:
        versions = prompts.list()
    if as_json:
        print(json.dumps([_summary(v) for v in versions], ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title="Prompt versions (newest first)", title_justify="left")
    for column in ("id", "status", "author", "parent", "created", "scores"):
        table.add_column(column, overflow="fold")
    for v in versions:
        status = f"[green]{v.status}[/]" if v.status == "active" else v.status
        table.add_row(v.id, status, v.author, v.parent or "", _when(v.created_at), _scores_text(v.scores))
    out.print(table)


@prompts_app.command("show")
def show(version_id: Annotated[str, typer.Argument(metavar="ID", help="Version id or unique prefix.")],
         component: Annotated[str | None, typer.Option("--component", "-c",
                                                       help="Print only this component's raw text.")] = None,
         root: RootOption = Path("."), as_json: JsonOption = False) -> None:
    """Show a version's details and every component; with --component, just that text (for piping)."""
    with _prompt_store(root) as prompts:
        version = prompts.get(version_id)
    if component is not None:
        if component not in version.components:
            raise fail(f"version {version.id} has no component '{component}'; it has: "
                       f"{', '.join(version.components)}")
        print(version.components[component])  # plain print: the text goes to a pipe unchanged
        return
    if as_json:
        print(json.dumps(dataclasses.asdict(version), ensure_ascii=False))
        return
    details = {"id": version.id, "status": version.status, "author": version.author, "parent": version.parent or "-",
               "created": _when(version.created_at), "scores": _scores_text(version.scores) or "-",
               "note": version.note or "-"}
    for key, value in details.items():
        out.print(f"[bold]{key}[/]: ", end="")
        out.print(value, markup=False)
    from rich.markup import escape

    for name, text in version.components.items():
        out.print(f"\n[bold]== {escape(name)} ==[/]")
        out.print(text, markup=False)


def unified_diff(old: PromptVersion, new: PromptVersion) -> str:
    """A unified diff per component (components only on one side diff against nothing)."""
    chunks: list[str] = []
    for name in [*old.components, *(n for n in new.components if n not in old.components)]:
        before, after = old.components.get(name), new.components.get(name)
        # Compared line by line without line ends: texts are stored stripped, so whether the last line
        # ends in a newline is not a difference worth showing.
        chunks.extend(difflib.unified_diff(
            [] if before is None else before.splitlines(),
            [] if after is None else after.splitlines(),
            fromfile="/dev/null" if before is None else f"{old.id}/{name}",
            tofile="/dev/null" if after is None else f"{new.id}/{name}",
            lineterm="",
        ))
    return "".join(line + "\n" for line in chunks)


@prompts_app.command("diff")
def diff(a: Annotated[str, typer.Argument(metavar="A", help="Version id or unique prefix.")],
         b: Annotated[str | None, typer.Argument(metavar="[B]", help="Second version (default: the active one).")]
         = None, root: RootOption = Path(".")) -> None:
    """Unified diff per component from A to B. With only A, from the active version to A: what
    activating A would change."""
    with _prompt_store(root) as prompts:
        first = prompts.get(a)
        if b is not None:
            old, new = first, prompts.get(b)
        else:
            active = prompts.active()
            if active is None:  # ensure_default found versions but none active (all retired by hand)
                raise fail("no active prompt version to compare with; give two versions")
            old, new = active, first
    text = unified_diff(old, new)
    if text:
        print(text, end="")  # plain print: diffs are piped into pagers and patch tools
    else:
        out.print(f"{old.id} and {new.id} have identical components.")


@prompts_app.command("add")
def add(from_file: Annotated[Path, typer.Option("--from-file", "-f", help="Text file with the new component text.")],
        component: Annotated[str, typer.Option("--component", "-c", help="Which component the file replaces.")]
        = "system",
        note: Annotated[str, typer.Option("--note", help="What changed and why.")] = "",
        root: RootOption = Path(".")) -> None:
    """Add a candidate version: the active version with one component replaced by FILE (author "user").

    It is not used until you run `tongyi-cli prompts activate ID`."""
    # Stripped like the packaged texts (load_prompt), so an editor's final newline is not a difference.
    try:
        text = from_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:  # checked here, not by click, for a one-line error
        raise fail(f"cannot read {from_file}: {(exc.strerror if isinstance(exc, OSError) else None) or exc}") from None
    if not text:
        raise fail(f"{from_file} is empty")
    with _prompt_store(root) as prompts:
        base = prompts.active() or prompts.list()[0]
        if component not in base.components:
            # Free-form names are fine for learners, but from a shell a typo would add a text nothing reads.
            raise fail(f"unknown component '{component}'; {base.id} has: {', '.join(base.components)}")
        if base.components[component] == text:
            raise fail(f"{from_file} is identical to component '{component}' of {base.id}; nothing to add")
        version = prompts.add({**base.components, component: text}, parent=base.id, author="user",
                              note=note or f"{component} from {from_file.name}")
    out.print(f"Added candidate {version.id} (parent {base.id}). Activate it with: "
              f"tongyi-cli prompts activate {version.id}", markup=False)


@prompts_app.command("activate")
def activate(version_id: Annotated[str, typer.Argument(metavar="ID", help="Version id or unique prefix.")],
             reason: ReasonOption = "activated with tongyi-cli prompts activate",
             root: RootOption = Path(".")) -> None:
    """Make a version the active one; the previous active version is retired."""
    with _prompt_store(root) as prompts:
        # Read before switching only to say what was retired; the switch itself is one transaction.
        before = prompts.active()
        version = prompts.activate(version_id, reason=reason)
    if before is not None and before.id == version.id:
        out.print(f"{version.id} is already the active prompt version.")
    elif before is not None:
        out.print(f"Activated {version.id}; retired {before.id}.")
    else:
        out.print(f"Activated {version.id}.")


@prompts_app.command("rollback")
def rollback(reason: ReasonOption = "rolled back with tongyi-cli prompts rollback",
             root: RootOption = Path(".")) -> None:
    """Re-activate the version that was active before the current one (repeat to go further back)."""
    with _prompt_store(root) as prompts:
        before = prompts.active()
        version = prompts.rollback(reason=reason)
    retired = f"; retired {before.id}" if before is not None else ""
    out.print(f"Rolled back to {version.id}{retired}.")


@prompts_app.command("experiment")
def experiment(version_id: Annotated[str, typer.Argument(metavar="ID", help="Candidate version id or prefix.")],
               root: RootOption = Path(".")) -> None:
    """Start an A/B experiment: recorded runs are split between the active version and this candidate.

    Needs [experiments] enable_ab_testing = true. After experiment_duration runs a significance test
    promotes the candidate or rolls it back; --training-stats shows the arms meanwhile.
    """
    from tongyi_agent.agent.prompts import default_components
    from tongyi_agent.config import ConfigError
    from tongyi_agent.learn.evaluation.experiments import ExperimentManager
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.store import PromptStore, StoreError

    try:
        workspace = TrainingWorkspace.load(root)
        with workspace.open_store() as store:
            PromptStore(store).ensure_default(default_components())
            started = ExperimentManager(store, workspace.training.experiments, workspace.target).start(version_id)
    except (ConfigError, StoreError, ValueError) as exc:
        raise fail(str(exc)) from None
    out.print(f"Started A/B experiment {started.id}: {started.treatment} (treatment) vs {started.control} "
              f"(control), {started.duration} runs, control ratio {started.control_ratio:g}.")
