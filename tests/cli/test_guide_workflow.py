"""The integration guide, typed as written, over a fake OpenAI-compatible server.

Its training_config.ini (verbatim, tests/data/guide/) sits in the project folder, and the commands
run there without --root, as the guide writes them. Every command must accept the file, and the
guide's "Initial Training" workflow must end each step with a clear outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.reflection import never_better
from tests.trusting import trust
from tongyi_agent.cli.app import app

GUIDE = Path(__file__).parents[1] / "data" / "guide"
ANSWER = "The billing service listens on port 8443."
# The guide's "Export Analysis" snippet, as written (it reads the file the export wrote).
ANALYSIS = """
import json
with open('analysis.json') as f:
    data = json.load(f)
print(f'Total interactions: {len(data["interactions"])}')
print(f'Average response time: {data["metrics"]["average_response_time"]:.2f}s')
"""


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """An agent run searches once, then answers from what it found; a reflection request (no system
    message) gets the prompt back with one more rule, which changes nothing here."""
    messages = request["messages"]
    if messages[0]["role"] != "system":
        return {"content": "```\nYou are a research assistant.\nAlways cite the line you used.\n```"}
    if messages[-1]["role"] == "tool":
        return {"content": ANSWER}
    return {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}


@pytest.fixture
def guided(project: Path, openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder as the current directory, with the guide's training_config.ini and a
    models.ini whose default profile is the fake server, so the guide's commands run unchanged."""
    shutil.copy(GUIDE / "training_config.ini", project / "training_config.ini")
    (project / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    trust(project)  # as a user does for their own project, whose models.ini names an endpoint
    openai_server.add(*[_reply] * 1000)
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize("args,code,expected", [
    (["--validate-config"], 0, "training settings"),
    (["--tools"], 0, "search_files"),
    (["models", "list"], 0, "fake"),
    (["prompts", "list"], 0, "active"),
    (["--training-stats"], 0, "No training data yet"),
    (["--train", "Which port does billing use?"], 0, "recorded as run"),
    (["--train", "--training-mode", "prompt", "test query", "--verbose"], 0, "recorded as run"),
    (["Which port does billing use?"], 0, "8443"),
    (["--export-training-data", "out.json"], 2, "No training data yet"),
    (["--optimize", "--optimize-iterations", "50"], 2, "record more runs with --train"),
    (["--optimize", "--training-mode", "rl"], 2, "no recorded runs to learn a tool policy from"),
    (["rollout"], 2, "AGL_OPENAI_BASE_URL"),
])
def test_every_command_accepts_the_guide_config(guided: Path, runner: CliRunner, args: list[str], code: int,
                                                expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert expected in result.output
    assert "training_config.ini" not in result.stderr  # nothing about the file is refused


def test_initial_training_workflow(guided: Path, runner: CliRunner, openai_server: FakeOpenAIServer) -> None:
    # 1. About 20 recorded questions; each ends with its answer and the run it was recorded as.
    questions = [f"Which port does the billing service use? (asked {i} times)" for i in range(1, 21)]
    for question in questions:
        asked = runner.invoke(app, ["--train", question])
        assert asked.exit_code == 0, asked.output
        assert "8443" in asked.stdout and "recorded as run" in asked.stdout

    # 2. The guide's optimization command; it ends by saying whether a prompt was promoted, and why.
    optimized = runner.invoke(app, ["--optimize", "--optimize-iterations", "50"])
    assert optimized.exit_code == 0, optimized.output
    assert "Not promoted: no candidate beat the seed prompt on validation" in optimized.stdout
    assert "tasks: train" in optimized.stdout  # the report says what it ran on

    # 3. Stats show the data and the last optimization's outcome.
    stats = runner.invoke(app, ["--training-stats"])
    assert stats.exit_code == 0, stats.output
    assert "Last prompt optimization" in stats.stdout
    assert "not promoted (no candidate beat the seed prompt on validation)" in stats.stdout
    numbers = json.loads(runner.invoke(app, ["--training-stats", "--json"]).stdout)
    assert numbers["total_interactions"] == 20 and numbers["prompt_optimization"]["status"] == "done"

    # 4. The backup export holds what the guide's analysis snippet reads.
    exported = runner.invoke(app, ["--export-training-data", "analysis.json"])
    assert exported.exit_code == 0, exported.output
    assert "Exported 20 runs (json) to analysis.json" in exported.stderr
    # Written into the folder under research, where search would find the old answers: it says so.
    assert "Note: analysis.json is inside the project folder" in exported.stderr
    elsewhere = runner.invoke(app, ["--export-training-data", str(guided.parent / "backup.json")])
    assert elsewhere.exit_code == 0 and "Note:" not in elsewhere.stderr
    data = json.loads((guided / "analysis.json").read_text())
    assert [i["query"] for i in data["interactions"]] == questions
    assert data["metrics"]["average_response_time"] > 0
    assert data["config"]["prompt_optimization"]["max_iterations"] == 100  # the guide's `iterations`
    snippet = subprocess.run([sys.executable, "-c", ANALYSIS], cwd=guided, capture_output=True, text=True,
                             timeout=60)
    assert snippet.returncode == 0, snippet.stderr
    assert "Total interactions: 20" in snippet.stdout and "Average response time: " in snippet.stdout


def test_too_little_data_says_what_to_do(guided: Path, runner: CliRunner) -> None:
    for i in range(3):
        assert runner.invoke(app, ["--train", f"Which port, take {i}?"]).exit_code == 0
    result = runner.invoke(app, ["--optimize", "--optimize-iterations", "50"])
    assert result.exit_code == 2
    assert "need at least 10 usable tasks" in result.stderr and "record more runs with --train" in result.stderr


def test_guide_debug_command_runs_as_a_module(guided: Path) -> None:
    # The guide's debug mode: `python -m tongyi_agent.cli --train --training-mode prompt "test query" --verbose`.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parents[2] / "src"),
                                                                     os.environ.get("PYTHONPATH")) if p)}
    helped = subprocess.run([sys.executable, "-m", "tongyi_agent.cli", "--help"], capture_output=True, text=True,
                            timeout=60, cwd=guided, env=env)
    assert helped.returncode == 0, helped.stderr
    assert "Answering:" in helped.stdout and "--optimize-iterations" in helped.stdout
    done = subprocess.run([sys.executable, "-m", "tongyi_agent.cli", "--train", "--training-mode", "prompt",
                           "test query", "--verbose"], capture_output=True, text=True, timeout=120, cwd=guided, env=env)
    assert done.returncode == 0, done.stderr
    assert "8443" in done.stdout and "recorded as run" in done.stdout
    assert "search_files" in done.stderr  # --verbose: each step on stderr


def test_optimize_iterations_default_to_the_files_iterations(project: Path, runner: CliRunner,
                                                             openai_server: FakeOpenAIServer) -> None:
    proposals: list[str] = []

    (project / "models.ini").write_text(
        f"[models]\ndefault = fake\n\n[fake]\nprovider = openai\nbase_url = {openai_server.base_url}\n"
        "model_id = fake-model\nmax_retries = 0\n")
    (project / "training_config.ini").write_text('[prompt_optimization]\niterations = 3  # "the guide\'s name"\n')
    trust(project)
    tasks = project.parent / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"item-{i}", "question": f"What is the code of item {i}?",
                                         "answer": f"CODE-{i}"}) + "\n" for i in range(16)))
    openai_server.add(*[never_better(proposals)] * 400)
    result = runner.invoke(app, ["--root", str(project), "--optimize", "--tasks", str(tasks),
                                 "--budget-rollouts", "80"])
    assert result.exit_code == 0, result.output
    assert "Not promoted" in result.stdout
    assert len(proposals) == 3


def test_guide_file_in_an_untrusted_folder_adds_no_note(project: Path, runner: CliRunner,
                                                        openai_server: FakeOpenAIServer) -> None:
    # The guide's `enabled` and `training_data_path` restate the defaults, so leaving them out of an
    # untrusted folder's settings changes nothing, and no note about them is printed on each command.
    shutil.copy(GUIDE / "training_config.ini", project / "training_config.ini")
    openai_server.add(_reply, _reply)
    result = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id",
                                 "fake-model", "--train", "Which port does billing use?"])
    assert result.exit_code == 0, result.output
    assert "recorded as run" in result.stdout
    assert "ignored" not in result.stderr


def test_optimize_with_an_embedded_reflection_model_says_what_to_do(guided: Path, runner: CliRunner) -> None:
    # The guide's `--optimize --optimize-iterations 50` where the reflection model is embedded: no
    # instructions are proposed (the iterations do nothing, and it says so), and with no confirmed runs
    # there are no demonstrations either; the report ends by saying what would give it material.
    # 24 runs: splits come from a hash of the folder (a temporary path) and the question; with 12 all missed
    # the test split about once in 30 (CI saw {'train': 8, 'validation': 4, 'test': 0}); with 24, once in 1,000.
    for i in range(24):
        assert runner.invoke(app, ["--train", f"Which port does billing use? (take {i})"]).exit_code == 0
    result = runner.invoke(app, ["--optimize", "--optimize-iterations", "50", "--reflection-model", "local"])
    assert result.exit_code == 0, result.output
    assert "--optimize-iterations has no effect; only demonstration sets are searched" in result.stderr
    assert "Not promoted: no candidate beat the seed prompt on validation." in result.stdout
    assert "Nothing was tried" in result.stdout and "--feedback RUN_ID 1" in result.stdout
