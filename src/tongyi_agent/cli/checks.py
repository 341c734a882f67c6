"""`--validate-config`: the config layer's report plus the checks that need the llm layer."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tongyi_agent.config import CheckItem, ConfigError, load_settings, validate_config
from tongyi_agent.llm.weights import WEIGHT_SETS, weights_installed

_STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}


def weight_checks(root: Path) -> list[CheckItem]:
    try:
        profiles = load_settings(root).profiles.values()
    except ConfigError:
        return []  # already reported as a failed item by validate_config
    items = []
    for profile in profiles:
        if profile.provider != "embedded":
            continue
        weight_set = WEIGHT_SETS.get(profile.weights or "")
        if weight_set is None:
            items.append(CheckItem(f"weights for {profile.name}", "fail", f"unknown weights {profile.weights!r}"))
        elif weights_installed(weight_set):
            items.append(CheckItem(f"weights for {profile.name}", "pass", f"{weight_set.name} installed"))
        else:
            items.append(CheckItem(f"weights for {profile.name}", "warn",
                                   f"{weight_set.name} not installed; {weight_set.install_hint}"))
    return items


def run_validation(console: Console, root: Path) -> int:
    """Print the report; exit code 0 when nothing failed, else 2."""
    items = validate_config(root) + weight_checks(root)
    table = Table(title="Configuration check")
    for column in ("item", "status", "detail"):
        # Folded, never cut: paths and install hints must be readable whole.
        table.add_column(column, overflow="fold")
    for item in items:
        # Names and details are text, not markup: "pip install -e '.[small]'" keeps its brackets.
        table.add_row(escape(item.name), f"[{_STYLE[item.status]}]{item.status}[/]", escape(item.detail))
    console.print(table)
    failed = sum(item.status == "fail" for item in items)
    warned = sum(item.status == "warn" for item in items)
    console.print(f"{len(items)} checks: {failed} failed, {warned} warnings")
    return 2 if failed else 0
