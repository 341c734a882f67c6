"""The interactive session: slash commands, questions with context, never a question taken as a command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app
from tongyi_agent.cli.repl import split_command


@pytest.mark.parametrize(("line", "expected"), [
    ("/help", ("/help", "")),
    ("  /MODEL local-small ", ("/model", "local-small")),
    ("/quit", ("/exit", "")),
    ("/etc/hosts: what does it contain?", None),
    ("/history of the project?", None),
    ("what does /help do?", None),
    ("/unknown", None),
])
def test_only_known_commands_are_commands(line: str, expected: tuple[str, str] | None) -> None:
    assert split_command(line) == expected


def test_session_commands_and_follow_up(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    # "Port 8443." rests on no tool result: the grounding check asks once, the model insists.
    openai_server.add({"content": "Port 8443."}, {"content": "Port 8443."}, {"content": "The payments team."})
    lines = ["/help", "/tools", "Which port?", "And who owns it?", "/history", "/model", "/clear", "/history",
             "/exit", "never asked"]
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url,
                                 "--model-id", "fake", "-i"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "/tools" in result.stdout and "search_files" in result.stdout
    assert "Port 8443." in result.stdout and "The payments team." in result.stdout
    assert "1. Which port?" in result.stdout and "2. And who owns it?" in result.stdout
    assert "custom: fake (openai, native dialect)" in result.stdout
    assert "History cleared." in result.stdout and "No questions yet." in result.stdout
    # The follow-up carried the earlier turn; the line after /exit was never sent.
    second = openai_server.chat_requests[2]["messages"]
    assert [m["content"] for m in second[1:]] == ["Which port?", "Port 8443.", "And who owns it?"]
    assert len(openai_server.chat_requests) == 3


def test_unknown_model_switch_keeps_session(runner: CliRunner, project: Path,
                                            openai_server: FakeOpenAIServer) -> None:
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url,
                                 "--model-id", "fake", "-i"], input="/model nope\n/model\n")
    assert result.exit_code == 0
    assert "unknown model profile 'nope'" in result.stderr
    assert "custom: fake" in result.stdout


def test_end_of_input_leaves_cleanly(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "-i"], input="")
    assert result.exit_code == 0
    assert "Ask a question" in result.stdout


def test_feedback_commands_rate_the_last_recorded_run(runner: CliRunner, project: Path,
                                                      openai_server: FakeOpenAIServer) -> None:
    import sqlite3

    # "Port 8443." rests on no tool result: the grounding check asks once, the model insists.
    openai_server.add({"content": "Port 8443."}, {"content": "Port 8443."}, {"content": "Payments."})
    lines = ["/good", "Which port?", "/good", "/rate 0.4", "/rate lots", "Who owns it?", "/bad"]
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake",
                                 "--train", "-i"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "no recorded run to rate" in result.stderr  # /good before any question
    assert "/rate needs a number" in result.stderr
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        rows = conn.execute("SELECT q.question, r.value FROM rewards r JOIN runs q ON q.id = r.run_id "
                            "WHERE r.source = 'user' ORDER BY r.id").fetchall()
    assert rows == [("Which port?", 1.0), ("Which port?", 0.4), ("Who owns it?", 0.0)]
