"""`tongyi-cli models list|info|set|test`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.fakes.openai_server import FakeOpenAIServer
from tests.trusting import trust
from tongyi_agent.cli.app import app


def _two_profiles(project: Path, server: FakeOpenAIServer) -> None:
    (project / "models.ini").write_text(
        f"[alpha]\nprovider = openai\nbase_url = {server.base_url}\nmodel_id = alpha-model\nmax_retries = 0\n\n"
        f"[beta]\nprovider = openai\nbase_url = {server.base_url}\nmodel_id = beta-model\nmax_retries = 0\n")
    trust(project)


def test_list_needs_no_keys_and_no_network(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--root", str(project), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"local", "local-small", "tongyi", "claude"} <= set(rows)
    assert rows["local"]["usable"] is True and rows["local"]["default"] is True
    assert rows["tongyi"]["usable"] is False and "OPENROUTER_API_KEY" in rows["tongyi"]["usable_detail"]
    assert rows["tongyi"]["dialect"] == "tongyi" and rows["tongyi"]["context_length"] == 131072
    table = runner.invoke(app, ["models", "list", "--root", str(project)])
    assert table.exit_code == 0 and "local-small" in table.stdout


def test_key_makes_profile_usable(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--root", str(project), "--json"],
                           env={"ANTHROPIC_API_KEY": "sk-ant-test-key-123456"})
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["claude"]["usable"] is True
    assert rows["openrouter"]["usable"] is False  # an Anthropic key is not an OpenRouter key


def test_claude_model_name_env_overrides_model_id(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["models", "info", "claude", "--root", str(project), "--json"],
                           env={"CLAUDE_MODEL_NAME": "claude-haiku-4-5"})
    assert result.exit_code == 0
    assert json.loads(result.stdout)["model_id"] == "claude-haiku-4-5"


def test_info_unknown_profile(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["models", "info", "nope", "--root", str(project)])
    assert result.exit_code == 2 and "unknown model profile 'nope'" in result.stderr


def test_set_changes_the_model_of_the_next_call(runner: CliRunner, project: Path,
                                                openai_server: FakeOpenAIServer) -> None:
    _two_profiles(project, openai_server)
    openai_server.add({"content": "one"}, {"content": "two"}, {"content": "three"}, {"content": "four"})
    ask = ["--root", str(project), "--model", "alpha", "--json", "hi"]
    assert json.loads(runner.invoke(app, ask).stdout)["model"] == "alpha-model"

    result = runner.invoke(app, ["models", "set", "beta", "--root", str(project)])
    assert result.exit_code == 0, result.output
    assert json.loads(runner.invoke(app, ["--root", str(project), "--json", "hi"]).stdout)["model"] == "beta-model"
    # Precedence: --model and TONGYI_MODEL still win over the preference.
    assert json.loads(runner.invoke(app, ask).stdout)["model"] == "alpha-model"
    env_wins = runner.invoke(app, ["--root", str(project), "--json", "hi"], env={"TONGYI_MODEL": "alpha"})
    assert json.loads(env_wins.stdout)["model"] == "alpha-model"
    listed = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "list", "--root", str(project),
                                                                   "--json"]).stdout)}
    assert listed["beta"]["default"] is True


def test_set_unknown_profile_changes_nothing(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["models", "set", "nope", "--root", str(project)])
    assert result.exit_code == 2
    listed = json.loads(runner.invoke(app, ["models", "list", "--root", str(project), "--json"]).stdout)
    assert [r["name"] for r in listed if r["default"]] == ["local"]


def test_models_test_reports_latency_and_tool_calls(runner: CliRunner, project: Path,
                                                    openai_server: FakeOpenAIServer) -> None:
    _two_profiles(project, openai_server)
    openai_server.add({"content": "OK"},
                      {"tool_calls": [{"name": "read_file", "arguments": {"path": "code.txt"}}]},
                      {"content": "PELICAN-42"})
    result = runner.invoke(app, ["models", "test", "alpha", "--root", str(project), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["round_trip_ok"] is True and report["reply"] == "OK"
    assert report["latency_s"] >= 0 and report["tool_calls_work"] is True and report["tool_calls"] == 1


def test_models_test_fails_when_model_never_calls_tools(runner: CliRunner, project: Path,
                                                        openai_server: FakeOpenAIServer) -> None:
    _two_profiles(project, openai_server)
    openai_server.add({"content": "OK"}, {"content": "I guess BANANA."})
    result = runner.invoke(app, ["models", "test", "beta", "--root", str(project), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["tool_calls_work"] is False


def test_question_reaches_ask_and_help_lists_models(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--root" in result.stdout and "tongyi-cli models" in result.stdout
    sub = runner.invoke(app, ["models", "--help"])
    assert sub.exit_code == 0 and "list" in sub.stdout and "test" in sub.stdout


def test_text_with_brackets_is_shown_as_written(runner: CliRunner, project: Path) -> None:
    # Rich would take "[small]" or "[beta]" for markup and drop it; details are printed as text.
    (project / "models.ini").write_text(
        "[bracketed]\nprovider = openai\nbase_url = http://127.0.0.1:9/v1\nmodel_id = m[beta]\n"
        "description = install tongyi-agent[small] first\n")
    (project / ".env").write_text("OPENAI_API_KEY=sk-test-000000000000\n")
    trust(project)  # its models.ini names an endpoint and its .env a key
    info = runner.invoke(app, ["models", "info", "bracketed", "--root", str(project)], env={"COLUMNS": "200"})
    assert info.exit_code == 0, info.output
    assert "description: install tongyi-agent[small] first" in info.stdout and "model_id: m[beta]" in info.stdout
    listed = runner.invoke(app, ["models", "list", "--root", str(project)], env={"COLUMNS": "200"})
    assert "m[beta]" in listed.stdout
    checked = runner.invoke(app, ["--validate-config", "--root", str(project)], env={"COLUMNS": "200"})
    assert "m[beta] at http://127.0.0.1:9/v1" in checked.stdout
