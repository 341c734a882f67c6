"""The top-level command group: a question by default, subcommands by name, options on either side.

`tongyi-cli "question"` runs the hidden default command (`ask`); `tongyi-cli prompts list` runs a
subcommand. People used to `git -C DIR` and `llm -m MODEL` also write options first:
`tongyi-cli --root R prompts list`. Options placed before a subcommand are moved after it when the
subcommand takes them; otherwise the error names the right order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typer.core import TyperCommand, TyperGroup

from tongyi_agent.cli.console import fail

# Commands and parameters are read by their attributes (`commands`, `opts`, `is_flag`, `nargs`): typer
# builds them on click in some releases and on its own copy of click in others.

DEFAULT_COMMAND = "ask"
# The default command's eager options keep their meaning wherever they are: `tongyi-cli --help models`
# is the main help, as it always was.
_EAGER = ("-h", "--help", "--version")


def _option(command: Any, name: str) -> Any | None:
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), Mapping)


def _arity(option: Any | None, token: str) -> int:
    """How many values follow the option token (`--root R`: 1; `--json`, `--root=R`: 0)."""
    if option is None or option.is_flag or option.count or "=" in token:
        return 0
    return option.nargs


def _leading_options(default: Any, args: list[str]) -> tuple[list[tuple[str, list[str]]], int]:
    """The options at the start of `args`, each as (name, its tokens), and where they end.

    Values are counted by the default command's definition of each option, because that is how the
    command line would be read if no subcommand followed."""
    found: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
        name = args[i].split("=", 1)[0]
        width = 1 + _arity(_option(default, name), args[i])
        found.append((name, args[i:i + width]))
        i += width
    return found, i


def options_after_subcommand(group: Any, args: list[str]) -> list[str]:
    """`--root R prompts list` -> `prompts list --root R`; raises a one-line error for options the
    subcommand does not take. Anything else is returned unchanged."""
    default = group.commands[DEFAULT_COMMAND]
    leading, end = _leading_options(default, args)
    if not leading or end >= len(args) or args[end] not in group.commands:
        return args
    if any(name in _EAGER for name, _ in leading):
        return args
    command, path, i = group.commands[args[end]], [args[end]], end + 1
    while _is_group(command) and i < len(args) and args[i] in command.commands:
        command, path, i = command.commands[args[i]], [*path, args[i]], i + 1
    tokens = [token for _, option_tokens in leading for token in option_tokens]
    where = f"tongyi-cli {' '.join(path)}"
    if _is_group(command):
        raise fail(f"'{' '.join(path)}' needs a subcommand; options go after it: "
                   f"{where} COMMAND {' '.join(tokens)}")
    for name, option_tokens in leading:
        own = _option(command, name)
        if own is None or _arity(own, option_tokens[0]) != len(option_tokens) - 1:
            raise fail(f"'{' '.join(path)}' has no option {name}; write {where} [OPTIONS] "
                       f"(see {where} --help)")
    return [*path, *tokens, *args[i:]]


class QuestionFirstGroup(TyperGroup):
    """Anything whose first word is not a subcommand name (options, a question, nothing) goes to `ask`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = options_after_subcommand(self, args)
        if not args or args[0] not in self.commands:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


class PanelledCommand(TyperCommand):
    """A command whose `--help` lists its options under headings: each option's `rich_help_panel`.

    Typer draws such panels only with rich markup; this plain-text help does the same grouping
    without importing rich's help renderer, so `--help` stays fast."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Other options", []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        for title, records in sorted(panels.items(), key=lambda item: item[0] == "Other options"):
            with formatter.section(title):
                formatter.write_dl(records)
