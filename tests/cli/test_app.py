"""The CLI end to end against a fake OpenAI-compatible server: flags, output formats, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust
from tongyi_agent.cli.app import app

SEARCH = {"tool_calls": [{"name": "search_files", "arguments": {"query": "billing port"}}]}
ANSWER = {"content": "The billing service listens on port 8443."}


def _remote(server: FakeOpenAIServer, project: Path) -> list[str]:
    return ["--root", str(project), "--base-url", server.base_url, "--model-id", "fake-model"]


def test_answer_with_real_sources(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    result = runner.invoke(app, [*_remote(openai_server, project), "Which port does billing use?"])
    assert result.exit_code == 0, result.output
    assert "port 8443" in result.stdout
    assert "Sources:" in result.stdout
    assert "services/billing.md:3" in result.stdout


def test_json_output_fields(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    result = runner.invoke(app, [*_remote(openai_server, project), "--json", "Which port does billing use?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"answer", "sources", "steps", "model", "seconds", "usage"} <= set(data)
    assert data["sources"][0] == {"path": "services/billing.md", "line": 3,
                                  "text": "The billing service listens on port 8443."}
    assert [s["type"] for s in data["steps"]] == ["model", "tool", "model"]
    assert data["model"] == "fake-model"
    assert data["usage"]["model_calls"] == 2


def test_question_on_stdin(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    result = runner.invoke(app, _remote(openai_server, project), input="Which port?\n")
    assert result.exit_code == 0, result.output
    assert openai_server.chat_requests[0]["messages"][-1] == {"role": "user", "content": "Which port?"}


def test_empty_stdin_is_a_usage_error(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    result = runner.invoke(app, _remote(openai_server, project), input="  \n")
    assert result.exit_code == 2
    assert "no question given" in result.stderr
    assert openai_server.chat_requests == []


def test_verbose_prints_each_step(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, ANSWER)
    result = runner.invoke(app, [*_remote(openai_server, project), "-v", "Which port?"])
    assert result.exit_code == 0, result.output
    assert "[0] model" in result.stderr and "[1] tool search_files ok" in result.stderr


def test_model_failure_exits_1_with_one_line(runner: CliRunner, project: Path,
                                            openai_server: FakeOpenAIServer) -> None:
    openai_server.add(*[{"status": 400, "body": {"error": {"message": "bad request"}}}] * 2)
    result = runner.invoke(app, [*_remote(openai_server, project), "Which port?"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


def test_budget_forces_an_answer(runner: CliRunner, project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add(SEARCH, {"tool_calls": [{"name": "list_files", "arguments": {}}]},
                      {"content": "Not found in the files."})
    result = runner.invoke(app, [*_remote(openai_server, project), "--max-steps", "2", "--json", "Which port?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stop_reason"] == "forced"
    assert data["answer"] == "Not found in the files."
    assert "tools" not in openai_server.chat_requests[-1]


def test_unknown_profile_is_one_line_error(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "--model", "nope", "hi"])
    assert result.exit_code == 2
    assert "unknown model profile 'nope'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_models_ini_is_one_line_error(runner: CliRunner, project: Path) -> None:
    (project / "models.ini").write_text(
        "[local]\nprovider = embedded\nweights = qwen2.5-coder-1.5b\nmodel_id = m\ncontext_length = abc\n")
    result = runner.invoke(app, ["--root", str(project), "hi"])
    assert result.exit_code == 2
    assert "context_length" in result.stderr and result.stderr.count("\n") == 1


def test_missing_root_is_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--root", str(tmp_path / "missing"), "hi"])
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr


def test_remote_profile_without_key_says_which_variable(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--root", str(project), "--model", "tongyi", "hi"])
    assert result.exit_code == 1
    assert "OPENROUTER_API_KEY" in result.stderr


def test_validate_config_pass_and_fail(runner: CliRunner, project: Path) -> None:
    ok = runner.invoke(app, ["--root", str(project), "--validate-config"])
    assert ok.exit_code == 0, ok.output
    assert "pass" in ok.stdout and "weights for local" in ok.stdout
    (project / "models.ini").write_text("[local\n")
    bad = runner.invoke(app, ["--root", str(project), "--validate-config"])
    assert bad.exit_code == 2
    assert "fail" in bad.stdout


def test_tools_and_help_need_no_model(tmp_path: Path) -> None:
    """--tools and --help start without loading llama.cpp or the OpenAI SDK."""
    code = (
        "import sys\n"
        "from tongyi_agent.cli.app import app\n"
        "try:\n    app(['--tools'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'llama_cpp' not in sys.modules and 'openai' not in sys.modules, 'heavy import'\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("list_files", "read_file", "search_files"):
        assert name in done.stdout
    helped = subprocess.run([sys.executable, "-m", "tongyi_agent", "--help"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert helped.returncode == 0
    assert "--root" in helped.stdout and "--json" in helped.stdout


def test_run_falls_back_to_the_fallback_profile(runner: CliRunner, project: Path,
                                                openai_server: FakeOpenAIServer) -> None:
    (project / "models.ini").write_text(
        "[models]\ndefault = primary\nfallback = backup\n\n"
        f"[primary]\nprovider = openai\nbase_url = {openai_server.base_url}\nmodel_id = big\nmax_retries = 0\n\n"
        f"[backup]\nprovider = openai\nbase_url = {openai_server.base_url}\nmodel_id = small\nmax_retries = 0\n")
    trust(project)
    openai_server.add({"status": 500, "body": {"error": {"message": "overloaded"}}}, SEARCH, ANSWER)
    result = runner.invoke(app, ["--root", str(project), "--json", "Which port?"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "small"
    assert "primary failed; answering on fallback backup" in result.stderr
    assert [r["model"] for r in openai_server.chat_requests] == ["big", "small", "small"]


def test_help_groups_options_in_panels(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    headings = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["Arguments:", "Answering:", "Recording:", "Optimizing:", "Exporting:", "Other options:"]

    def panel(title: str) -> str:
        start = lines.index(title)
        end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" "))
        return "\n".join(lines[start:end])

    assert "--root" in panel("Answering:") and "--model" in panel("Answering:")
    assert "--train" in panel("Recording:") and "--training-stats" in panel("Recording:")
    assert "--optimize-iterations" in panel("Optimizing:") and "--budget-rollouts" in panel("Optimizing:")
    assert "--export-training-data" in panel("Exporting:") and "--format" in panel("Exporting:")
