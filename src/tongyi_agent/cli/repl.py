"""The interactive session: questions, plus slash commands that are never mistaken for questions.

A line is a command only when its first word is exactly one of the known commands; anything else,
including text that merely starts with a slash (a path, say), is a question.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tongyi_agent.agent.steps import RunResult
from tongyi_agent.cli.render import print_result, tools_table
from tongyi_agent.cli.session import AgentSession
from tongyi_agent.config import ConfigError, Settings, load_settings
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.base import ModelError
from tongyi_agent.store.prompts import PromptVersion

COMMANDS = {
    "/help": "show this help",
    "/tools": "list the agent's tools",
    "/history": "list this session's questions",
    "/clear": "forget this session's earlier questions and answers",
    "/model": "show the model, or switch: /model PROFILE",
    "/good": "rate the last answer good (needs --train)",
    "/bad": "rate the last answer bad (needs --train)",
    "/rate": "rate the last answer: /rate N with N from 0 to 1 (needs --train)",
    "/exit": "leave (also /quit, Ctrl-D)",
}
ALIASES = {"/quit": "/exit"}
TAKES_ARGUMENT = {"/model", "/rate"}


def split_command(line: str) -> tuple[str, str] | None:
    """(command, argument) when the line is a command, else None.

    `/history of the project?` is a question: only commands that take an argument may have one.
    """
    word, _, rest = line.strip().partition(" ")
    word = ALIASES.get(word.lower(), word.lower())
    if word not in COMMANDS or (rest.strip() and word not in TAKES_ARGUMENT):
        return None
    return word, rest.strip()


def run_repl(settings: Settings, out: Console, err: Console, *, verbose: bool = False,
             workspace: TrainingWorkspace | None = None, offline: bool = False,
             cache_dir: Path | None = None, prompt: PromptVersion | None = None,
             memory: TrainingWorkspace | None = None) -> int:
    session = AgentSession(settings, err, verbose=verbose, workspace=workspace, offline=offline,
                           cache_dir=cache_dir, prompt=prompt, memory=memory)
    try:
        return _loop(session, settings, out, err)
    finally:
        session.close()


def _loop(session: AgentSession, settings: Settings, out: Console, err: Console) -> int:
    out.print(f"Tongyi Agent — model {settings.profile.name}, root {settings.root}. "
              "Ask a question, or /help.", style="bold")
    while True:
        try:
            line = out.input("[bold green]? [/]")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return 0
        if not line.strip():
            continue
        command = split_command(line)
        if command is None:
            _ask(session, line.strip(), out, err)
        elif _command(session, *command, out=out, err=err) == "exit":
            return 0


def _ask(session: AgentSession, question: str, out: Console, err: Console) -> RunResult | None:
    try:
        result = session.ask(question)
    except (ModelError, ConfigError) as exc:
        err.print(f"Error: {exc}", style="red", markup=False)
        return None
    except KeyboardInterrupt:
        err.print("Interrupted.", style="yellow")
        return None
    print_result(out, result, run_id=session.last_run_id if session.workspace else None)
    return result


def _command(session: AgentSession, name: str, arg: str, *, out: Console, err: Console) -> str | None:
    if name == "/exit":
        return "exit"
    if name == "/help":
        for command, text in COMMANDS.items():
            out.print(f"  {command:<9} {text}")
    elif name == "/tools":
        out.print(tools_table(session.agent.tools))
    elif name == "/history":
        if not session.turns:
            out.print("No questions yet.")
        for n, (question, result) in enumerate(session.turns, 1):
            out.print(f"{n}. {question}  [dim]→ {' '.join(result.answer.split())[:80]}[/]")
    elif name == "/clear":
        session.clear()
        out.print("History cleared.")
    elif name in ("/good", "/bad", "/rate"):
        _rate(session, name, arg, out=out, err=err)
    elif name == "/model":
        if not arg:
            profile = session.settings.profile
            out.print(f"{profile.name}: {profile.model_id} ({profile.provider}, {profile.dialect} dialect)")
            return None
        try:
            settings = load_settings(session.settings.root, model=arg, max_steps=session.settings.max_steps,
                                     timeout=session.settings.timeout,
                                     trust_root=session.settings.trust.trusted)
            session.switch(settings)
        except (ConfigError, ModelError) as exc:
            err.print(f"Error: {exc}", style="red", markup=False)
            return None
        out.print(f"Switched to {settings.profile.name}.")
    return None


def _rate(session: AgentSession, name: str, arg: str, *, out: Console, err: Console) -> None:
    try:
        score = {"/good": 1.0, "/bad": 0.0}.get(name)
        if score is None:
            try:
                score = float(arg)
            except ValueError:
                raise ValueError(f"/rate needs a number from 0 to 1, got {arg!r}") from None
        run_id, notes = session.rate_last(score)
    except ValueError as exc:
        err.print(f"Error: {exc}", style="red", markup=False)
        return
    out.print(f"Recorded feedback {score:g} for run {run_id[:12]}.")
    for note in notes:
        out.print(note, style="cyan", markup=False)
