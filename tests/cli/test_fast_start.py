"""A fast start: the commands that only show things import neither the agent loop, nor the learners,
nor the model SDKs, nor the PDF, web and data stacks. Each check runs in a fresh interpreter, where
sys.modules shows exactly what a command loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app

# The list: the embedded runtime, the optimizer, PDF, web, the model SDKs, the data stack.
HEAVY = ("llama_cpp", "gepa", "pypdf", "trafilatura", "ddgs", "anthropic", "openai", "pandas", "numpy", "torch")
# Our own layers that these commands must not reach: the agent loop, the learners, the backends.
OURS = ("tongyi_agent.agent.loop", "tongyi_agent.learn.evaluation.rewards", "tongyi_agent.learn.prompt.optimizer",
        "tongyi_agent.learn.recording", "tongyi_agent.learn.policy.tool_policy", "tongyi_agent.llm.openai_compat",
        "tongyi_agent.llm.embedded")
SRC = Path(__file__).parents[2] / "src"

RUN = """
import json, sys
from tongyi_agent.cli.app import app
code = 0
if sys.argv[1:]:
    try:
        app(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code or 0
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(args: list[str], cwd: Path) -> set[str]:
    """Run `tongyi-cli ARGS` in a fresh interpreter; the modules it had loaded when it finished."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p),
           "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)
    report = json.loads(done.stdout.rsplit("@@", 1)[1])
    assert report["code"] == 0, done.stderr
    return set(report["modules"])


def _assert_light(modules: set[str]) -> None:
    assert sorted(m for m in (*HEAVY, *OURS) if m in modules) == []


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    _assert_light(_loaded([], tmp_path))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--tools"], ["models", "list"], ["prompts", "--help"],
                                  ["memory", "--help"], ["rollout", "--help"], ["trust", "--help"]])
def test_commands_that_show_things_load_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    _assert_light(_loaded(args, tmp_path))


def test_stats_and_prompt_list_of_a_real_project_load_nothing_heavy(project: Path, runner: CliRunner,
                                                                    openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"tool_calls": [{"name": "search_files", "arguments": {"query": "port"}}]},
                      {"content": "Port 8443."})
    recorded = runner.invoke(app, ["--root", str(project), "--base-url", openai_server.base_url, "--model-id",
                                   "fake-model", "--train", "Which port?"])
    assert recorded.exit_code == 0, recorded.output
    for args in (["--training-stats"], ["--training-stats", "--json"], ["prompts", "list"], ["memory", "list"]):
        _assert_light(_loaded([*args, "--root", str(project)], project))


def test_workspace_policy_key_matches_the_tool_policy() -> None:
    # The workspace reads the tool policy's meta key without importing tool_policy (and numpy).
    from tongyi_agent.learn import workspace
    from tongyi_agent.learn.policy import tool_policy

    assert workspace.POLICY_KEY == tool_policy.POLICY_KEY
