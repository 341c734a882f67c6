"""Malformed input ends in one line on stderr and a non-zero exit (or a clear observation), never a
traceback. Each case runs the real CLI in a subprocess, so stderr is exactly what a user sees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.security.conftest import one_line_error, run_cli

ANSWER = {"content": "Done."}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "notes.txt").write_text("Port 8443.\n")
    return folder


def test_file_name_that_is_not_utf8(root: Path) -> None:
    os.close(os.open(os.path.join(os.fsencode(root), b"report-\xff\xfe.txt"), os.O_CREAT | os.O_WRONLY))
    (root / "sub").mkdir()
    os.close(os.open(os.path.join(os.fsencode(root / "sub"), b"\xc3(.md"), os.O_CREAT | os.O_WRONLY))
    with FakeOpenAIServer([{"tool_calls": [{"name": "list_files", "arguments": {}}]},
                           {"tool_calls": [{"name": "search_files", "arguments": {"query": "port"}}]},
                           ANSWER]) as model:
        done = run_cli(["--root", str(root), "--base-url", model.base_url, "--model-id", "m", "--json", "--train",
                        "What is here?"])
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    steps = json.loads(done.stdout)["steps"]
    listing = next(s["output"] for s in steps if s["type"] == "tool" and s["name"] == "list_files")
    assert "notes.txt" in listing and "not valid UTF-8" in listing and "report-\\xff\\xfe.txt" in listing


def test_question_bytes_that_are_not_utf8(root: Path) -> None:
    done = run_cli([b"--root", os.fsencode(root), b"which port \xff\xfe?"])  # type: ignore[list-item]
    assert done.returncode == 2
    assert "not valid UTF-8" in one_line_error(done)


def test_question_on_stdin_that_is_not_utf8(root: Path) -> None:
    done = run_cli(["--root", str(root)], stdin=b"which port \xff?\n")
    assert done.returncode == 2
    assert "not valid UTF-8" in one_line_error(done)


@pytest.mark.parametrize("reply,expected", [
    ({"status": 200, "body": {"choices": [{"message": 5}]}}, "'message' is int"),
    ({"raw": '{"choices": [{"message": {"content": "trunc'}, "not valid JSON"),
    ({"status": 200, "body": {"choices": "none"}}, "'choices' is str"),
    ({"status": 200, "body": {"choices": [{"message": {"content": "x", "tool_calls": [{"function": 7}]}}]}},
     "tool call 1 has no 'function'"),
    ({"status": 200, "body": {"choices": [{"message": {"content": {"a": 1}}}]}}, "'content' is dict"),
])
def test_malformed_model_response(root: Path, reply: dict[str, object], expected: str) -> None:
    with FakeOpenAIServer([reply]) as model:
        done = run_cli(["--root", str(root), "--base-url", model.base_url, "--model-id", "m", "q"])
    assert done.returncode == 1
    assert expected in one_line_error(done)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0"])
def test_timeout_that_is_not_a_positive_finite_number(root: Path, value: str) -> None:
    done = run_cli(["--root", str(root), "--base-url", "http://127.0.0.1:9/v1", "--model-id", "m",
                    f"--timeout={value}", "q"])
    assert done.returncode == 2
    assert "--timeout" in one_line_error(done)


def test_timeout_nan_from_the_environment(root: Path) -> None:
    done = run_cli(["--root", str(root), "--base-url", "http://127.0.0.1:9/v1", "--model-id", "m", "q"],
                   env={"TONGYI_TIMEOUT": "nan"})
    assert done.returncode == 2
    assert "TONGYI_TIMEOUT" in one_line_error(done)


@pytest.mark.parametrize("where", ["root", "config"])
def test_ini_boolean_is_strict_even_when_train_overrides_it(root: Path, where: str) -> None:
    folder = root if where == "root" else Path(os.environ["TONGYI_CONFIG_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training_config.ini").write_text("[training]\nenabled = maybe\n")
    done = run_cli(["--root", str(root), "--base-url", "http://127.0.0.1:9/v1", "--model-id", "m", "--train", "q"])
    assert done.returncode == 2
    line = one_line_error(done)
    assert "training_config.ini [training] enabled" in line and "'maybe'" in line
