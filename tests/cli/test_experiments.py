"""A/B experiments through the CLI: runs split between the active prompt and a candidate, then a
significance test promotes the better one."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust
from tongyi_agent.cli.app import app

INSTRUCTION = "Search the files before answering."


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """With the instruction the model searches and quotes the file; without it, it answers unsupported."""
    messages = request["messages"]
    if INSTRUCTION not in messages[0]["content"]:
        return {"content": "Probably port 80."}
    if messages[-1]["role"] == "user":
        return {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
    return {"content": "The billing service listens on port 8443."}


def test_ab_experiment_promotes_the_better_candidate(runner: CliRunner, project: Path,
                                                     openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    (project / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    (project / "training_config.ini").write_text(
        "[experiments]\nenable_ab_testing = true\ncontrol_ratio = 0.5\nexperiment_duration = 16\n")
    trust(project)
    openai_server.add(*[_reply] * 200)
    candidate_text = tmp_path / "system.txt"
    candidate_text.write_text(f"You answer questions about the project's files. {INSTRUCTION}")
    added = runner.invoke(app, ["prompts", "add", "--from-file", str(candidate_text), "--root", str(project)])
    assert added.exit_code == 0, added.output
    candidate = re.search(r"p-[0-9a-f]+", added.stdout).group(0)  # type: ignore[union-attr]
    started = runner.invoke(app, ["prompts", "experiment", candidate, "--root", str(project)])
    assert started.exit_code == 0, started.output

    concluded = ""
    for n in range(16):
        question = f"Which port does billing use? ({n})"
        result = runner.invoke(app, ["--root", str(project), "--train", "--json", question])
        assert result.exit_code == 0, result.output
        concluded += result.stderr
    assert "promoted" in concluded and "A/B exp-" in concluded

    with sqlite3.connect(project / ".tongyi_training" / "trajectories.sqlite") as conn:
        arms = dict(conn.execute("SELECT ab_arm, COUNT(*) FROM runs GROUP BY ab_arm"))
        versions = dict(conn.execute("SELECT ab_arm, prompt_version FROM runs GROUP BY ab_arm"))
    assert set(arms) == {"control", "treatment"} and sum(arms.values()) == 16 and min(arms.values()) >= 3
    assert versions["treatment"] == candidate

    listed = json.loads(runner.invoke(app, ["prompts", "list", "--root", str(project), "--json"]).stdout)
    assert next(v for v in listed if v["status"] == "active")["id"] == candidate
    stats = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)
    assert stats["experiment"]["current"] is None
    last = stats["experiment"]["last_result"]
    assert last["action"] == "promote" and last["p_value"] < 0.05


def test_experiment_needs_ab_testing_enabled(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    text = tmp_path / "s.txt"
    text.write_text("Another prompt.")
    added = runner.invoke(app, ["prompts", "add", "--from-file", str(text), "--root", str(project)])
    candidate = re.search(r"p-[0-9a-f]+", added.stdout).group(0)  # type: ignore[union-attr]
    result = runner.invoke(app, ["prompts", "experiment", candidate, "--root", str(project)])
    assert result.exit_code == 2 and "enable_ab_testing" in result.stderr


def test_periodic_schedule_starts_a_background_optimization(runner: CliRunner, project: Path,
                                                            openai_server: FakeOpenAIServer) -> None:
    import time

    (project / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    (project / "training_config.ini").write_text(
        "[optimization_schedule]\nschedule = periodic\nperiodic_interval = 3\n")
    trust(project)
    # Each run answers without a tool; asked once by the grounding check, the model insists.
    openai_server.add(*[{"content": "Port 8443."}] * 6)
    outputs = [runner.invoke(app, ["--root", str(project), "--train", f"question {n}"]) for n in range(3)]
    assert all(o.exit_code == 0 for o in outputs)
    assert "started a background prompt optimization" not in outputs[1].stderr
    assert "started a background prompt optimization" in outputs[2].stderr
    log = project / ".tongyi_training" / "optimizer.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "at least 10 usable tasks" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    # Three recorded runs are too few to optimize on: the background run says so and changes nothing.
    assert "at least 10 usable tasks" in log.read_text()
    stats = json.loads(runner.invoke(app, ["--root", str(project), "--training-stats", "--json"]).stdout)
    assert "periodic" in stats["schedule"]["last_started"]["reason"]
    assert stats["schedule"]["last_count"] == 3
