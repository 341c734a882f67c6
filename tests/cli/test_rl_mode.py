"""rl mode through the CLI: the tool policy picks tools per run, records its choice, learns from rewards."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust
from tongyi_agent.cli.app import app
from tongyi_agent.learn.policy.tool_policy import default_arms


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """Search when offered search_files, then answer from the result."""
    offered = {t["function"]["name"] for t in request.get("tools") or []}
    if request["messages"][-1]["role"] == "user" and "search_files" in offered:
        return {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
    return {"content": "The billing service listens on port 8443."}


def test_rl_runs_record_the_policy_choice_and_optimize_refits(runner: CliRunner, project: Path,
                                                               openai_server: FakeOpenAIServer) -> None:
    (project / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\ntools = list_files, read_file, search_files, run_python\n")
    trust(project)
    openai_server.add(*[_reply] * 100)
    for n in range(8):
        result = runner.invoke(app, ["--root", str(project), "--train", "--training-mode", "rl", "--json",
                                     f"Which port does billing use? ({n})"])
        assert result.exit_code == 0, result.output
    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        rows = conn.execute("SELECT id, metadata FROM runs ORDER BY started_at").fetchall()
        first_calls = conn.execute("SELECT run_id, attributes FROM spans WHERE kind = 'llm' AND seq = 0").fetchall()
    metadata = {run_id: json.loads(m) for run_id, m in rows}
    assert all("policy_arm" in m and len(m["policy_features"]) == 11 for m in metadata.values())
    # Each run offered exactly the tools of the arm the policy chose for it.
    arms = {a.name: a for a in default_arms(["list_files", "read_file", "search_files", "run_python"],
                                             profile_tools=["list_files", "read_file", "search_files", "run_python"],
                                             max_steps=8)}
    for run_id, attributes in first_calls:
        chosen = arms[metadata[run_id]["policy_arm"]]
        assert json.loads(attributes)["tools"] == list(chosen.tools)

    stats = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)
    assert sum(arm["pulls"] for arm in stats["tool_policy"]) == 8

    refit = runner.invoke(app, ["--root", str(project), "--optimize", "--training-mode", "rl"])
    assert refit.exit_code == 0, refit.output
    assert "refitted from 8 recorded rl-mode runs" in refit.stdout


def test_rl_optimize_without_data_says_so(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "--optimize", "--training-mode", "rl"])
    assert result.exit_code == 2 and "no recorded runs" in result.stderr
