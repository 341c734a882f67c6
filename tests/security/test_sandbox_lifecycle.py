"""The sandbox dies with the CLI and at its own deadline, and leaves no scratch folder behind.

A real `tongyi-cli` process (against the fake OpenAI server) runs a snippet that starts a marked
grandchild and sleeps; the test kills the CLI and watches the grandchild go. Waits are bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.security.sandbox_attacks import REFUSAL, namespaces_available, processes_with, weak_env
from tongyi_agent.tools.scratch import SCRATCH_PREFIX, remove_stale_scratch

APPEAR_S = 60  # the CLI must import, call the model and start the sandbox
VANISH_S = 10


def _sleeper(marker: str) -> str:
    """A snippet that starts a detached grandchild carrying `marker`, then sleeps."""
    return ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time  # {marker}\\n"
            "while True: time.sleep(0.2)'], start_new_session=True)\n"
            "print('started', flush=True)\ntime.sleep(300)\n")


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _start_cli(server: FakeOpenAIServer, project: Path, marker: str, env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:
    server.add({"tool_calls": [{"name": "run_python", "arguments": {"code": _sleeper(marker)}}]},
               {"content": "done"})
    child_env = {**os.environ, **(env or {}), "TONGYI_SANDBOX_TIMEOUT": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "tongyi_agent", "--root", str(project), "--base-url", server.base_url,
         "--model-id", "fake-model", "--timeout", "200", "What is in the files?"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env)


def _scratch_of(pid: int) -> list[str]:
    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"{SCRATCH_PREFIX}{pid}-")]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_snippet_dies_with_the_cli(how: signal.Signals, project: Path, openai_server: FakeOpenAIServer) -> None:
    marker = f"tongyi-orphan-{uuid.uuid4().hex}"
    cli = _start_cli(openai_server, project, marker)
    try:
        if not namespaces_available():
            # run_python refuses here; the CLI finishes its run with the refusal as the tool result.
            assert cli.wait(timeout=APPEAR_S) == 0
            return
        assert _wait_for(lambda: processes_with(marker), APPEAR_S), "the snippet never started"
        cli.send_signal(how)
        cli.wait(timeout=VANISH_S)
        assert _wait_for(lambda: not processes_with(marker), VANISH_S), "the snippet outlived the CLI"
        assert _scratch_of(cli.pid) == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_the_sandbox_keeps_its_own_deadline_while_the_caller_is_frozen(
        project: Path, openai_server: FakeOpenAIServer) -> None:
    """SIGSTOP the CLI: nobody is left to kill the snippet, yet it ends at its limit (the init's timer)."""
    marker = f"tongyi-frozen-{uuid.uuid4().hex}"
    openai_server.add({"tool_calls": [{"name": "run_python", "arguments": {"code": _sleeper(marker)}}]},
                      {"content": "done"})
    env = {**os.environ, "TONGYI_SANDBOX_TIMEOUT": "3"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "tongyi_agent", "--root", str(project), "--base-url", openai_server.base_url,
         "--model-id", "fake-model", "--timeout", "200", "q"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=env)
    try:
        if not namespaces_available():
            assert cli.wait(timeout=APPEAR_S) == 0
            return
        assert _wait_for(lambda: processes_with(marker), APPEAR_S), "the snippet never started"
        cli.send_signal(signal.SIGSTOP)
        assert _wait_for(lambda: not processes_with(marker), 3 + VANISH_S), "the snippet outlived its own limit"
        cli.send_signal(signal.SIGCONT)
        assert cli.wait(timeout=APPEAR_S) == 0
    finally:
        if cli.poll() is None:
            cli.send_signal(signal.SIGCONT)
            cli.kill()
            cli.wait()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_weak_mode_scratch_of_a_killed_cli_is_removed_on_the_next_start(
        project: Path, openai_server: FakeOpenAIServer) -> None:
    marker = f"tongyi-weak-{uuid.uuid4().hex}"
    project.chmod(0o755)
    env = weak_env()
    cli = _start_cli(openai_server, project, marker, env)
    try:
        if "TONGYI_SANDBOX_PYTHON" not in env and os.geteuid() == 0 and not _runs_as_others(sys.executable):
            assert cli.wait(timeout=APPEAR_S) == 0  # the weak mode refused; nothing started, nothing left
            assert _scratch_of(cli.pid) == []
            return
        assert _wait_for(lambda: processes_with(marker), APPEAR_S), "the snippet never started"
        assert _scratch_of(cli.pid), "the weak mode works in a scratch folder on the host"
        cli.kill()
        cli.wait(timeout=VANISH_S)
        left = _scratch_of(cli.pid)
        removed = remove_stale_scratch()
        assert {os.path.basename(p) for p in removed} >= set(left)
        assert _scratch_of(cli.pid) == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        for pid in processes_with(marker):  # weak mode: a detached grandchild may survive (documented)
            os.kill(pid, signal.SIGKILL)


def _runs_as_others(python: str) -> bool:
    from tongyi_agent.tools.sandbox import _others_can_run

    return _others_can_run(python)


def test_stale_scratch_is_removed_only_when_its_owner_is_gone(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{SCRATCH_PREFIX}{dead.pid}-abc"
    (stale / "home").mkdir(parents=True)
    os.symlink("/etc/passwd", stale / "home" / "link")
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    live.mkdir()
    unrelated = tmp_path / "tongyi-sandbox-notapid"
    unrelated.mkdir()
    removed = remove_stale_scratch(str(tmp_path))
    assert removed == [str(stale)]
    assert not stale.exists() and live.exists() and unrelated.exists()
    assert Path("/etc/passwd").exists()


def test_without_namespaces_the_cli_run_reports_the_refusal(project: Path, openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"tool_calls": [{"name": "run_python", "arguments": {"code": "print(1)"}}]},
                      {"content": "done"})
    env = {**os.environ, "TONGYI_SANDBOX_NAMESPACES": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tongyi_agent", "--root", str(project), "--base-url", openai_server.base_url,
         "--model-id", "fake-model", "--json", "q"], capture_output=True, text=True, env=env, timeout=APPEAR_S)
    assert done.returncode == 0, done.stderr
    assert REFUSAL in done.stdout
