"""`tongyi-cli`: ask a question about a folder, or open an interactive session.

Exit codes: 0 answered; 1 the model or run failed; 2 bad input or configuration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tongyi_agent import __version__
from tongyi_agent.config import ConfigError, Settings, load_settings

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err.print(f"Error: {' '.join(message.split())}", style="red", markup=False)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"tongyi-cli {__version__}")
        raise typer.Exit()


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def main_command(
    question: Annotated[str | None, typer.Argument(
        help="The question to answer. Omit it to open an interactive session, or pipe it on stdin.")] = None,
    root: Annotated[Path, typer.Option("--root", "-r", help="Project folder the agent may read (default: .).")]
    = Path("."),
    model: Annotated[str | None, typer.Option("--model", "-m", help=(
        "Model profile from models.ini: local (default, embedded, offline), local-small, tongyi, ..."))] = None,
    base_url: Annotated[str | None, typer.Option(help=(
        "Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenRouter); use with --model-id."))]
    = None,
    model_id: Annotated[str | None, typer.Option(help="Model name to request from the server.")] = None,
    max_steps: Annotated[int | None, typer.Option(
        help="Model calls per question before the answer is forced (default 8).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per question before a forced answer (default 300).")]
    = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each step as it happens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=(
        "Print one JSON object: answer, sources, steps, model, seconds, usage."))] = False,
    show_tools: Annotated[bool, typer.Option("--tools", help="List the agent's tools with their schemas and exit.")]
    = False,
    validate: Annotated[bool, typer.Option("--validate-config", help=(
        "Check models.ini, .env and profiles; print pass/warn/fail per item and exit."))] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help=(
        "Open the interactive session even when stdin is not a terminal."))] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Answer research questions about the files in a folder, with cited sources.

    Runs offline on the embedded model by default. Examples:

      tongyi-cli --root ~/notes "Which port does the billing service use?"

      tongyi-cli                      (interactive session; /help lists commands)

      echo "What is in the README?" | tongyi-cli --json
    """
    if show_tools:
        from tongyi_agent.cli.render import tools_table
        from tongyi_agent.tools import default_registry

        out.print(tools_table(default_registry()))
        return
    if validate:
        from tongyi_agent.cli.checks import run_validation

        raise typer.Exit(run_validation(out, root))
    try:
        settings = load_settings(root, model=model, base_url=base_url, model_id=model_id,
                                 max_steps=max_steps, timeout=timeout)
    except ConfigError as exc:
        raise fail(str(exc)) from None

    if question is None and (interactive or sys.stdin.isatty()):
        from tongyi_agent.cli.repl import run_repl

        raise typer.Exit(run_repl(settings, out, err, verbose=verbose))
    if question is None:
        question = sys.stdin.read()
    if not question.strip():
        raise fail("no question given: pass it as an argument or on stdin")
    raise typer.Exit(ask_once(settings, question.strip(), verbose=verbose, as_json=as_json))


def ask_once(settings: Settings, question: str, *, verbose: bool, as_json: bool) -> int:
    from tongyi_agent.cli.render import print_result, result_dict
    from tongyi_agent.cli.session import AgentSession
    from tongyi_agent.llm.base import ModelError

    session = AgentSession(settings, err, verbose=verbose)
    try:
        result = session.ask(question)
    except ModelError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    if as_json:
        print(json.dumps(result_dict(result), ensure_ascii=False))
    else:
        print_result(out, result)
    return 0


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)

