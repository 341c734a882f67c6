"""Slow tool work (building the search index) shows progress on a terminal, and nothing elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tongyi_agent.cli.session import AgentSession
from tongyi_agent.config import load_settings


def session(project: Path, terminal: bool) -> tuple[AgentSession, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=100)
    return AgentSession(load_settings(project), console), out


def test_a_bar_on_a_terminal_that_goes_away_when_done(project: Path) -> None:
    quiet, quiet_out = session(project, terminal=False)
    quiet._tool_progress("Indexing files", 10, 100)
    quiet._tool_progress("Indexing files", 100, 100)
    assert quiet_out.getvalue() == ""

    shown, shown_out = session(project, terminal=True)
    shown._tool_progress("Indexing files", 10, 100)
    assert shown._tool_bar is not None
    shown._tool_progress("Indexing files", 100, 100)
    assert shown._tool_bar is None
    assert "Indexing files" in shown_out.getvalue() and "100/100" in shown_out.getvalue()


def test_inside_the_working_spinner_the_spinner_line_shows_it(project: Path) -> None:
    shown, _ = session(project, terminal=True)
    with shown.console.status("Working…") as status:
        shown._status = status
        shown._tool_progress("Indexing files", 5, 20)
        assert "Indexing files" in str(status.renderable.text) and "5/20" in str(status.renderable.text)
    assert shown._tool_bar is None
