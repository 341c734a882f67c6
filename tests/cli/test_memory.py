"""Confirmed runs come back as worked examples through the CLI; `tongyi-cli memory` lists, shows, forgets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
ANSWER = {"content": "The billing service listens on port 8443."}


def _ask(runner: CliRunner, server: FakeOpenAIServer, project: Path, question: str, *extra: str) -> dict:
    result = runner.invoke(app, ["--root", str(project), "--base-url", server.base_url, "--model-id", "fake",
                                 "--json", *extra, question])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _memory(runner: CliRunner, project: Path, *args: str) -> object:
    result = runner.invoke(app, ["memory", *args, "--root", str(project)])
    return result


def test_feedback_confirmed_runs_are_reused_and_rated_down_ones_never(runner: CliRunner, project: Path,
                                                                        openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER, SEARCH, ANSWER)
    good = _ask(runner, openai_server, project, "Which port does the billing service listen on?", "--train")
    bad = _ask(runner, openai_server, project, "Which port does the billing service use today?", "--train")
    assert good["experiences"] == []  # nothing confirmed yet
    assert runner.invoke(app, ["--root", str(project), "--feedback", good["run_id"][:8], "1"]).exit_code == 0
    assert runner.invoke(app, ["--root", str(project), "--feedback", bad["run_id"][:8], "-1"]).exit_code == 0

    listed = _memory(runner, project, "list", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [(i["run_id"], i["confirmed_by"], i["tool_calls"]) for i in items] == [(good["run_id"], "feedback", 1)]
    kept = items[0]["id"]

    before = len(openai_server.chat_requests)
    # Answered from the worked example, not from this run's tools: the grounding check asks once; it insists.
    openai_server.add(ANSWER, ANSWER)
    later = _ask(runner, openai_server, project, "Which port does the billing service use?", "--train", "--verbose")
    assert later["experiences"] == [kept]
    messages = openai_server.chat_requests[before]["messages"]
    assert messages[1]["role"] == "user" and messages[1]["content"].endswith(
        "Which port does the billing service listen on?")
    assert messages[2]["tool_calls"][0]["function"]["name"] == "search_files"  # native dialect: a real tool call
    assert messages[3]["role"] == "tool" and "8443" in messages[3]["content"]
    assert messages[-1]["content"] == "Which port does the billing service use?"

    # Unrecorded runs use the memory too; --verbose names the experiences shown.
    openai_server.add(ANSWER, ANSWER)
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake",
                                 "--verbose", "Which port does billing listen on?"])
    assert result.exit_code == 0, result.output
    assert f"worked examples from experiences {kept}" in result.stderr

    shown = _memory(runner, project, "show", str(kept))
    assert shown.exit_code == 0, shown.output
    for text in ("Which port does the billing service listen on?", "search_files", "services/billing.md:",
                 "Answer: The billing service listens on port 8443."):
        assert text in shown.stdout

    stats = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)["memory"]
    assert (stats["exist"], stats["active"], stats["retired"]) == (1, 1, 0)
    assert stats["with"]["runs"] == 1 and stats["without"]["runs"] == 2

    forgot = _memory(runner, project, "forget", str(kept))
    assert forgot.exit_code == 0 and "Forgot experience" in forgot.stdout
    assert json.loads(_memory(runner, project, "list", "--json").stdout) == []


def test_memory_errors_are_one_line_exit_2(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    none = _memory(runner, project, "list")
    assert none.exit_code == 2 and "no training data" in none.stderr and "Traceback" not in none.output
    openai_server.add(SEARCH, ANSWER)
    _ask(runner, openai_server, project, "Which port?", "--train")
    missing = _memory(runner, project, "show", "99")
    assert missing.exit_code == 2 and "no experience with id 99" in missing.stderr
    assert _memory(runner, project, "forget", "99").exit_code == 2
    empty = _memory(runner, project, "list")
    assert empty.exit_code == 0 and "No experiences yet" in empty.stdout
    assert _memory(runner, project, "show", "abc").exit_code == 2
