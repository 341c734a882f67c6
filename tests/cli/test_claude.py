"""The Claude orchestrator through the CLI: same loop, same tools, recorded and rewarded like any backend."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust
from tongyi_agent.cli.app import app

KEY = "sk-ant-api03-test-0123456789abcdef"


def _db(project: Path) -> sqlite3.Connection:
    return sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite")


def test_claude_profile_runs_records_and_rewards(runner: CliRunner, project: Path,
                                                 anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]},
                         {"tool_calls": [{"name": "read_file", "arguments": {"path": "../outside.txt"}}]},
                         {"content": "The billing service listens on port 8443 (services/billing.md:3)."})
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": anthropic_server.base_url,
           "CLAUDE_MODEL_NAME": "claude-test-1"}
    result = runner.invoke(app, ["--root", str(project), "--model", "claude", "--train", "--json", "Billing port?"],
                           env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "claude-test-1"
    assert data["sources"][0]["path"] == "services/billing.md"
    assert data["verification_rate"] == 1.0
    # The root confinement error went back to Claude as an error tool_result.
    last = anthropic_server.message_requests[-1]["messages"]
    results = [b for m in last for b in (m["content"] if isinstance(m["content"], list) else [])
               if b.get("type") == "tool_result"]
    assert any(b.get("is_error") for b in results)
    with _db(project) as conn:
        backend, model, cost = conn.execute("SELECT backend, model, cost FROM runs").fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM spans ORDER BY seq")]
        rewards = dict(conn.execute("SELECT name, value FROM rewards"))
    assert (backend, model) == ("anthropic", "claude-test-1") and cost > 0
    assert kinds == ["llm", "tool", "llm", "tool", "llm"]
    assert set(rewards) == {"research_efficiency", "response_quality", "tool_usage", "response_speed"}
    assert rewards["tool_usage"] == 0.5  # one of two tool calls failed
    assert KEY.encode() not in (project / ".tongyi_training" / "trajectories.sqlite").read_bytes()


def test_fallback_switch_is_in_the_trajectory(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer,
                                              anthropic_server: FakeAnthropicServer) -> None:
    (project / "models.ini").write_text(
        "[models]\ndefault = primary\nfallback = claude\n\n"
        f"[primary]\nprovider = openai\nbase_url = {openai_server.base_url}\nmodel_id = big\nmax_retries = 1\n")
    trust(project)
    openai_server.add(*[{"status": 500, "body": {"error": {"message": "boom"}}}] * 2)
    # The fallback answers without looking anything up; asked once by the grounding check, it insists.
    anthropic_server.add({"content": "Port 8443."}, {"content": "Port 8443."})
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": anthropic_server.base_url}
    result = runner.invoke(app, ["--root", str(project), "--train", "--json", "Billing port?"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "claude-sonnet-5-5"
    assert len(openai_server.chat_requests) == 2  # the primary was retried before the switch
    with _db(project) as conn:
        status, metadata = conn.execute("SELECT status, metadata FROM runs").fetchone()
        spans = conn.execute("SELECT name, error IS NOT NULL FROM spans ORDER BY seq").fetchall()
    fallback = json.loads(metadata)["fallback"]
    assert status == "success"
    assert fallback["from"] == "big" and fallback["to"] == "claude-sonnet-5-5" and "500" in fallback["reason"]
    # The grounding check ran its own look-up between the fallback's two answers.
    assert spans == [("big", 1), ("claude-sonnet-5-5", 0), ("search_files", 0), ("claude-sonnet-5-5", 0)]
