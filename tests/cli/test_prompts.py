"""`tongyi-cli prompts list|show|diff|add|activate|rollback`.

Invoked on `prompts_app` itself so these tests do not depend on where app.py mounts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tongyi_agent.agent.prompts import load_prompt
from tongyi_agent.cli.prompts import prompts_app, unified_diff
from tongyi_agent.store import PromptVersion

NEW_LINE = "Always name the file you quote."


def _run(runner: CliRunner, project: Path, *args: str) -> Result:
    return runner.invoke(prompts_app, [*args, "--root", str(project)])


def _versions(runner: CliRunner, project: Path) -> list[dict[str, Any]]:
    result = _run(runner, project, "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _add_candidate(runner: CliRunner, project: Path, tmp_path: Path) -> str:
    """A user version whose system prompt has one extra line; returns its id."""
    text_file = tmp_path / "system.txt"
    text_file.write_text(load_prompt("system") + "\n" + NEW_LINE + "\n")
    result = _run(runner, project, "add", "--from-file", str(text_file), "--note", "cite files")
    assert result.exit_code == 0, result.output
    newest = _versions(runner, project)[0]
    assert newest["id"] in result.stdout
    return str(newest["id"])


def _error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    return lines[0]


def test_list_on_a_fresh_root_shows_the_packaged_default(runner: CliRunner, project: Path) -> None:
    [default] = _versions(runner, project)
    assert (default["status"], default["author"], default["parent"]) == ("active", "default", None)
    assert default["components"] == ["system", "forced_answer"]
    assert _versions(runner, project) == [default]  # listing again does not add another default
    table = _run(runner, project, "list")
    assert table.exit_code == 0 and default["id"] in table.stdout and "active" in table.stdout


def test_add_from_file_creates_a_candidate(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    new_id = _add_candidate(runner, project, tmp_path)
    new, default = _versions(runner, project)
    assert (new["id"], new["status"], new["author"], new["parent"], new["note"]) == (
        new_id, "candidate", "user", default["id"], "cite files")
    assert default["status"] == "active"  # adding never activates
    raw = _run(runner, project, "show", new_id, "--component", "system")
    assert raw.stdout == load_prompt("system") + "\n" + NEW_LINE + "\n"  # stored stripped, printed raw
    unchanged = _run(runner, project, "show", new_id, "--component", "forced_answer")
    assert unchanged.stdout == load_prompt("forced_answer") + "\n"


def test_show_prints_every_component(runner: CliRunner, project: Path) -> None:
    [default] = _versions(runner, project)
    result = _run(runner, project, "show", default["id"][:5])
    assert result.exit_code == 0, result.output
    assert "== system ==" in result.stdout and "== forced_answer ==" in result.stdout
    assert "{reason}" in result.stdout  # printed as text, not eaten as markup or formatted
    as_json = json.loads(_run(runner, project, "show", default["id"], "--json").stdout)
    assert as_json["components"]["forced_answer"] == load_prompt("forced_answer")


def test_diff_shows_the_changed_line(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    new_id = _add_candidate(runner, project, tmp_path)
    default_id = _versions(runner, project)[1]["id"]
    result = _run(runner, project, "diff", new_id)  # B defaults to the active version
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"--- {default_id}/system" in lines and f"+++ {new_id}/system" in lines
    assert f"+{NEW_LINE}" in lines
    assert not any(line.startswith("-") and not line.startswith("---") for line in lines)
    assert "forced_answer" not in result.stdout  # unchanged components print nothing
    reverse = _run(runner, project, "diff", new_id, default_id)
    assert f"-{NEW_LINE}" in reverse.stdout.splitlines()
    same = _run(runner, project, "diff", default_id, default_id)
    assert same.exit_code == 0 and "identical" in same.stdout


def test_activate_then_rollback(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    new_id = _add_candidate(runner, project, tmp_path)
    default_id = _versions(runner, project)[1]["id"]

    result = _run(runner, project, "activate", new_id[:6])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Activated {new_id}; retired {default_id}."
    assert {v["id"]: v["status"] for v in _versions(runner, project)} == {new_id: "active", default_id: "retired"}

    result = _run(runner, project, "rollback")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Rolled back to {default_id}; retired {new_id}."
    assert {v["id"]: v["status"] for v in _versions(runner, project)} == {new_id: "retired", default_id: "active"}

    # The default was the first active version: nothing earlier to return to.
    assert "nothing to roll back to" in _error_line(_run(runner, project, "rollback"))


def test_unknown_id_is_one_line_and_exit_2(runner: CliRunner, project: Path) -> None:
    for command in (["show", "p-fffffff"], ["activate", "fffffff"], ["diff", "p-fff"]):
        line = _error_line(_run(runner, project, *command))
        assert "no prompt version id starts with 'p-fff" in line
    assert "too short" in _error_line(_run(runner, project, "show", "p-a"))


def test_bad_input_is_one_line_and_exit_2(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    [default] = _versions(runner, project)
    assert "cannot read" in _error_line(_run(runner, project, "add", "--from-file", str(tmp_path / "missing.txt")))
    text_file = tmp_path / "p.txt"
    text_file.write_text("Be brief.")
    line = _error_line(_run(runner, project, "add", "--from-file", str(text_file), "--component", "sytem"))
    assert "unknown component 'sytem'" in line
    same = tmp_path / "same.txt"
    same.write_text(load_prompt("system") + "\n")
    assert "nothing to add" in _error_line(_run(runner, project, "add", "--from-file", str(same)))
    assert "has no component 'nope'" in _error_line(_run(runner, project, "show", default["id"], "-c", "nope"))
    assert "is not a directory" in _error_line(runner.invoke(prompts_app, ["list", "--root", str(tmp_path / "no")]))
    assert len(_versions(runner, project)) == 1  # none of the failures stored anything


def test_diff_of_a_component_present_on_one_side_only() -> None:
    old = PromptVersion("p-00000001", {"system": "A"}, None, "default", "active", {}, "", 0.0)
    new = PromptVersion("p-00000002", {"system": "A", "planner": "Plan first."}, old.id, "user", "candidate", {},
                        "", 0.0)
    assert unified_diff(old, new).splitlines() == ["--- /dev/null", "+++ p-00000002/planner", "@@ -0,0 +1 @@",
                                                   "+Plan first."]
    assert unified_diff(new, old).splitlines()[:2] == ["--- p-00000002/planner", "+++ /dev/null"]
