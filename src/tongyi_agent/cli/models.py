"""`tongyi-cli models list|info|set|test`: see, choose and try the model profiles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tongyi_agent.cli.console import EXIT_FAILED, err, fail, out

if TYPE_CHECKING:
    from tongyi_agent.config import ModelProfile, Settings

# Configuration (pydantic) and the backends are imported by the commands that use them, so that
# `tongyi-cli --help` does not pay for them.

models_app = typer.Typer(help="List, inspect, choose and test model profiles (from models.ini).",
                         no_args_is_help=True, add_completion=False, rich_markup_mode=None)

RootOption = Annotated[Path, typer.Option("--root", "-r", help="Project folder whose models.ini and .env apply.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CODE_WORD = "PELICAN-42"


def _settings(root: Path, model: str | None = None) -> Settings:
    from tongyi_agent.cli.trust import warn_ignored
    from tongyi_agent.config import ConfigError, load_settings

    try:
        settings = load_settings(root, model=model)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    warn_ignored(err, settings.trust, settings.ignored)
    return settings


def _known(settings: Settings, name: str) -> ModelProfile:
    if name not in settings.profiles:
        raise fail(f"unknown model profile '{name}'; known: {', '.join(settings.profiles)}")
    return settings.profiles[name]


def usable(profile: ModelProfile, env: dict[str, str]) -> tuple[bool, str]:
    """Whether the profile can run now, and why (no network or model call)."""
    from tongyi_agent.config.profiles import is_local_url
    from tongyi_agent.llm.weights import WEIGHT_SETS, weights_installed

    if profile.provider == "embedded":
        weight_set = WEIGHT_SETS.get(profile.weights or "")
        if weight_set is None:
            return False, f"unknown weights {profile.weights!r}"
        return (True, "weights installed") if weights_installed(weight_set) else (False, weight_set.install_hint)
    if profile.api_key(env):
        return True, "API key present"
    if is_local_url(profile.resolved_base_url(env)):
        return True, "local server, no key needed"
    return False, f"set {' or '.join(profile.api_key_envs())}"


def _row(profile: ModelProfile, settings: Settings) -> dict[str, Any]:
    ok, why = usable(profile, settings.env)
    return {"name": profile.name, "provider": profile.provider, "model_id": profile.resolved_model_id(settings.env),
            "context_length": profile.context_length, "dialect": profile.dialect, "usable": ok, "usable_detail": why,
            "default": profile.name == settings.model, "input_price": profile.input_price,
            "output_price": profile.output_price, "description": profile.description}


@models_app.command("list")
def list_models(root: RootOption = Path("."), as_json: JsonOption = False) -> None:
    """List the profiles with provider, model id, context length, dialect and whether each is usable now."""
    settings = _settings(root)
    rows = [_row(p, settings) for p in settings.profiles.values()]
    if as_json:
        print(json.dumps(rows))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Model profiles (* = default: {settings.model})", title_justify="left")
    for column in ("", "name", "provider", "model id", "context", "dialect", "usable now"):
        table.add_column(column, overflow="fold")
    for r in rows:
        # Details are text, not markup: "pip install -e '.[small]'" keeps its brackets.
        usable_text = "[green]yes[/]" if r["usable"] else f"[yellow]no[/]: {escape(r['usable_detail'])}"
        table.add_row("*" if r["default"] else "", escape(r["name"]), r["provider"], escape(r["model_id"]),
                      str(r["context_length"]), r["dialect"], usable_text)
    out.print(table)


@models_app.command("info")
def info(name: Annotated[str, typer.Argument(help="Profile name.")], root: RootOption = Path("."),
         as_json: JsonOption = False) -> None:
    """Show every setting of one profile and whether it is usable now."""
    settings = _settings(root)
    profile = _known(settings, name)
    data = {**profile.model_dump(), **_row(profile, settings),
            "base_url": profile.resolved_base_url(settings.env), "api_key_envs": list(profile.api_key_envs())}
    if as_json:
        print(json.dumps(data, default=str))
        return
    _print_fields(data)


@models_app.command("set")
def set_model(name: Annotated[str, typer.Argument(help="Profile to use by default from now on.")],
              root: RootOption = Path(".")) -> None:
    """Make NAME the default profile (stored in the user config directory).

    Precedence: --model > TONGYI_MODEL > this preference > [models] default in models.ini.
    """
    from tongyi_agent.config.preferences import write_preference

    settings = _settings(root)
    _known(settings, name)
    path = write_preference(settings.config_dir, "model", name)
    out.print(f"Default model profile is now {name} (saved in {path}).")
    if settings.env.get("TONGYI_MODEL"):
        out.print(f"Note: TONGYI_MODEL={settings.env['TONGYI_MODEL']} is set and still takes precedence.")


@models_app.command("test")
def test_model(name: Annotated[str, typer.Argument(help="Profile to test.")], root: RootOption = Path("."),
               as_json: JsonOption = False) -> None:
    """One tiny round trip, then one tool-using question: reports latency and whether tool calls work."""
    import asyncio

    settings = _settings(root, model=name)
    report = asyncio.run(_probe(settings))
    if as_json:
        print(json.dumps(report))
    else:
        _print_fields(report)
    if not (report["round_trip_ok"] and report["tool_calls_work"]):
        raise typer.Exit(EXIT_FAILED)


def _print_fields(data: dict[str, Any]) -> None:
    for key, value in data.items():
        # The value is text, not markup: a description such as "tongyi-agent[small]" keeps its brackets.
        out.print(f"[bold]{key}[/]: ", end="")
        out.print(str(value), markup=False)


async def _probe(settings: Settings) -> dict[str, Any]:
    import tempfile

    from tongyi_agent.agent.factory import build_agent
    from tongyi_agent.llm.base import ChatMessage, ChatRequest, ModelError

    report: dict[str, Any] = {"profile": settings.profile.name, "model_id": settings.profile.model_id}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "code.txt").write_text(f"Notes.\nThe code word is {CODE_WORD}.\n")
        try:
            agent = build_agent(settings.model_copy(update={"root": Path(tmp), "max_steps": 4}))
            started = time.monotonic()
            reply = await agent.model.chat([ChatMessage("user", "Reply with the single word OK.")],
                                           ChatRequest(max_tokens=8))
            report.update(round_trip_ok=True, latency_s=round(time.monotonic() - started, 3),
                          reply=reply.content.strip()[:80])
            result = await agent.run("What is the code word written in code.txt? Answer with the word only.")
        except ModelError as exc:
            report.update(round_trip_ok=report.get("round_trip_ok", False), tool_calls_work=False, error=str(exc))
            return report
    tools_ok = any(step.result.ok and not step.skipped for step in result.tool_calls)
    report.update(tool_calls_work=tools_ok and CODE_WORD in result.answer, tool_calls=len(result.tool_calls),
                  tool_question_seconds=round(result.seconds, 3), tool_answer=result.answer[:80])
    return report
