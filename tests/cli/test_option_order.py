"""Options before a subcommand (`tongyi-cli --root R prompts list`), as with `git -C` and `llm -m`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tongyi_agent.cli.app import app


def _project(tmp_path: Path) -> Path:
    # A profile only this folder defines, so a listing shows which folder was read.
    root = tmp_path / "elsewhere"
    root.mkdir()
    (root / "models.ini").write_text("[only-here]\nprovider = openai\nmodel_id = m\nbase_url = http://127.0.0.1:9/v1\n")
    return root


@pytest.mark.parametrize("before", [True, False])
@pytest.mark.parametrize("flag", ["--root", "-r", "--root="])
def test_root_on_either_side_of_models_list(runner: CliRunner, tmp_path: Path, before: bool, flag: str) -> None:
    root = _project(tmp_path)
    option = [flag + str(root)] if flag.endswith("=") else [flag, str(root)]
    args = [*option, "models", "list", "--json"] if before else ["models", "list", "--json", *option]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "only-here" in [row["name"] for row in json.loads(result.stdout)]


@pytest.mark.parametrize("before", [True, False])
def test_root_on_either_side_of_prompts_list(runner: CliRunner, tmp_path: Path, before: bool) -> None:
    root = _project(tmp_path)
    args = ["--root", str(root), "prompts", "list", "--json"] if before else \
        ["prompts", "list", "--json", "--root", str(root)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [v["status"] for v in json.loads(result.stdout)] == ["active"]
    assert (root / ".tongyi_training" / "trajectories.sqlite").is_file()  # that folder's store, not the cwd's


@pytest.mark.parametrize("before", [True, False])
def test_root_on_either_side_of_memory_list(runner: CliRunner, tmp_path: Path, before: bool) -> None:
    root = _project(tmp_path)
    # `memory list` reads an existing store only: create one in that folder first.
    assert runner.invoke(app, ["prompts", "list", "--root", str(root)]).exit_code == 0
    args = ["--root", str(root), "memory", "list", "--json"] if before else \
        ["memory", "list", "--json", "--root", str(root)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    # Without training data in the folder it says so: the folder given was the one read.
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = runner.invoke(app, ["--root", str(empty), "memory", "list"])
    assert missing.exit_code == 2 and str(empty) in missing.stderr


def test_flags_and_values_move_together(runner: CliRunner, tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = runner.invoke(app, ["--json", "-r", str(root), "models", "info", "only-here"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_id"] == "m"


def test_model_before_a_subcommand_that_takes_it(runner: CliRunner, tmp_path: Path) -> None:
    # `rollout` takes --model: placed first, it reaches rollout, which then asks for its environment.
    result = runner.invoke(app, ["--model", "tongyi", "--root", str(_project(tmp_path)), "rollout"])
    assert result.exit_code == 2
    assert "AGL_OPENAI_BASE_URL" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "tongyi", "models", "list"],
     "Error: 'models list' has no option --model; write tongyi-cli models list [OPTIONS] "
     "(see tongyi-cli models list --help)"),
    (["--verbose", "prompts", "list"],
     "Error: 'prompts list' has no option --verbose; write tongyi-cli prompts list [OPTIONS] "
     "(see tongyi-cli prompts list --help)"),
    (["--root", "R", "prompts"],
     "Error: 'prompts' needs a subcommand; options go after it: tongyi-cli prompts COMMAND --root R"),
])
def test_misplaced_options_name_the_right_order(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_questions_and_help_keep_their_meaning(runner: CliRunner, tmp_path: Path) -> None:
    # A question that is not a subcommand name still goes to the default command ...
    result = runner.invoke(app, ["--root", str(tmp_path / "missing"), "models are listed where?"])
    assert result.exit_code == 2 and "missing" in result.stderr
    # ... and --help before a subcommand name is the main help, as before.
    helped = runner.invoke(app, ["--help", "models"])
    assert helped.exit_code == 0 and "Answering:" in helped.stdout
