"""The interactive session: questions, plus slash commands that are never mistaken for questions.

A line is a command only when its first word is exactly one of the known commands; anything else,
including text that merely starts with a slash (a path, say), is a question.
"""

from __future__ import annotations

from rich.console import Console

from tongyi_agent.agent.steps import RunResult
from tongyi_agent.cli.render import print_result, tools_table
from tongyi_agent.cli.session import AgentSession
from tongyi_agent.config import ConfigError, Settings, load_settings
from tongyi_agent.llm.base import ModelError

COMMANDS = {
    "/help": "show this help",
    "/tools": "list the agent's tools",
    "/history": "list this session's questions",
    "/clear": "forget this session's earlier questions and answers",
    "/model": "show the model, or switch: /model PROFILE",
    "/exit": "leave (also /quit, Ctrl-D)",
}
ALIASES = {"/quit": "/exit"}
TAKES_ARGUMENT = {"/model"}


def split_command(line: str) -> tuple[str, str] | None:
    """(command, argument) when the line is a command, else None.

    `/history of the project?` is a question: only commands that take an argument may have one.
    """
    word, _, rest = line.strip().partition(" ")
    word = ALIASES.get(word.lower(), word.lower())
    if word not in COMMANDS or (rest.strip() and word not in TAKES_ARGUMENT):
        return None
    return word, rest.strip()


def run_repl(settings: Settings, out: Console, err: Console, *, verbose: bool = False) -> int:
    session = AgentSession(settings, err, verbose=verbose)
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
    except ModelError as exc:
        err.print(f"Error: {exc}", style="red", markup=False)
        return None
    except KeyboardInterrupt:
        err.print("Interrupted.", style="yellow")
        return None
    print_result(out, result)
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
    elif name == "/model":
        if not arg:
            profile = session.settings.profile
            out.print(f"{profile.name}: {profile.model_id} ({profile.provider}, {profile.dialect} dialect)")
            return None
        try:
            settings = load_settings(session.settings.root, model=arg, max_steps=session.settings.max_steps,
                                     timeout=session.settings.timeout)
            session.switch(settings)
        except (ConfigError, ModelError) as exc:
            err.print(f"Error: {exc}", style="red", markup=False)
            return None
        out.print(f"Switched to {settings.profile.name}.")
    return None
