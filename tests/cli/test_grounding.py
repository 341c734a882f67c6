"""The grounding check seen from the CLI: the mark above an unsupported answer, --json, the config key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app
from tongyi_agent.config import user_config_dir

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
FROM_MEMORY = {"content": "The billing service listens on port 9443."}
FROM_FILES = {"content": "The billing service listens on port 8443."}


def _ask(runner: CliRunner, server: FakeOpenAIServer, project: Path, *extra: str):
    return runner.invoke(app, ["--root", str(project), "--base-url", server.base_url, "--model-id", "fake",
                               *extra, "Which port does billing use?"])


def test_answer_corrected_after_the_check_is_printed_plain(runner: CliRunner, project: Path,
                                                            openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, FROM_MEMORY, FROM_FILES)
    result = _ask(runner, openai_server, project, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["answer"], data["grounded"], data["unsupported"]) == (FROM_FILES["content"], True, [])
    # The check ran its own look-up, then told the model which kind of fact was not in the files
    # (not the value: a small model shown its rejected value answers it again).
    assert [s["type"] for s in data["steps"]] == ["model", "tool", "model", "tool", "note", "model"]
    assert "the numbers in it appear in no tool result" in data["steps"][4]["text"]
    sent = openai_server.chat_requests[2]["messages"][-1]["content"]
    assert "the numbers in it appear in no tool result" in sent and "9443" not in sent


def test_still_unsupported_answer_is_marked_at_the_top(runner: CliRunner, project: Path,
                                                       openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, FROM_MEMORY, FROM_MEMORY)
    result = _ask(runner, openai_server, project, "--train")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()[:2]
    assert first == "UNVERIFIED: not found in the files: 9443"
    assert second == FROM_MEMORY["content"]
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        assert conn.execute("SELECT grounded FROM runs").fetchall() == [(0,)]

    openai_server.add(SEARCH, FROM_MEMORY, FROM_MEMORY)
    data = json.loads(_ask(runner, openai_server, project, "--json").stdout)
    assert (data["grounded"], data["unsupported"]) == (False, ["9443"])
    assert data["verification_rate"] == 0.0


def test_grounding_off_in_models_ini_accepts_the_first_answer(runner: CliRunner, project: Path,
                                                              openai_server: FakeOpenAIServer) -> None:
    # The user's own models.ini (a folder under research may not turn the check off).
    config = user_config_dir()
    config.mkdir(parents=True, exist_ok=True)
    (config / "models.ini").write_text("[agent]\ngrounding = off\n")
    openai_server.add(SEARCH, FROM_MEMORY)
    data = json.loads(_ask(runner, openai_server, project, "--json").stdout)
    assert (data["answer"], data["grounded"], data["usage"]["model_calls"]) == (FROM_MEMORY["content"], None, 2)
