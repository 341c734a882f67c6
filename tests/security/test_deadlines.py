"""`--timeout` is a deadline: a hanging model, slow regexes, FIFOs and many tool calls cannot hold a run,
and Ctrl-C ends it.

The limits asserted here are functional bounds (the run ends, and says why), generous enough for a
loaded machine; the measured times are printed for the closing note, not asserted tightly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.security.sandbox_attacks import namespaces_available, processes_with
from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.config import load_settings
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, DeadlineError, ToolCall
from tongyi_agent.llm.openai_compat import OpenAICompatBackend
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import Tool, ToolContext, ToolError, ToolRegistry, ToolResult
from tongyi_agent.tools.clean_csv import clean_csv
from tongyi_agent.tools.pdf import pdf_info
from tongyi_agent.tools.read_file import read_file
from tongyi_agent.tools.search_files import search_files

BOUND_S = 60  # "the run ends": far above the deadlines below, far below a hang


@pytest.fixture
def silent_model() -> Iterator[tuple[str, socket.socket]]:
    """An OpenAI-compatible base URL on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1", server
    server.close()


def _ctrl_c_default() -> None:
    # A test run started in the background of a script inherits SIGINT ignored (POSIX shells do that
    # to asynchronous commands), and so would the child: Ctrl-C must reach it as a user's would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tongyi_agent", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            preexec_fn=_ctrl_c_default)


def test_a_model_that_never_answers_cannot_hold_the_run(project: Path, silent_model: tuple[str, socket.socket]) -> None:
    base_url, _ = silent_model
    started = time.monotonic()
    cli = _cli("--root", str(project), "--base-url", base_url, "--model-id", "m", "--timeout", "5", "--json", "q")
    try:
        stdout, stderr = cli.communicate(timeout=BOUND_S)
    finally:
        cli.kill()
    elapsed = time.monotonic() - started
    assert cli.returncode == 1, stderr
    data = json.loads(stdout)
    print(f"hanging model, --timeout 5: run {data['seconds']:.2f} s, CLI process {elapsed:.1f} s")
    assert data["stop_reason"] == "deadline"
    assert data["answer"] == "I could not finish within the time limit of 5 s."


def test_retries_and_backoff_stop_at_the_deadline(openai_server: FakeOpenAIServer) -> None:
    """Without the deadline, 20 retries after Retry-After: 1 would take 20 s or more."""
    openai_server.add(*[{"status": 503, "headers": {"Retry-After": "1"}}] * 21)
    backend = OpenAICompatBackend("m", openai_server.base_url, None, timeout=30, max_retries=20)
    started = time.monotonic()
    with pytest.raises(DeadlineError, match="HTTP 503"):
        asyncio.run(_chat(backend, 2.5))
    print(f"503 with Retry-After 1, 20 retries allowed, 2.5 s given: gave up after {time.monotonic() - started:.1f} s")
    assert len(openai_server.chat_requests) <= 4


async def _chat(backend: OpenAICompatBackend, seconds: float) -> None:
    await backend.chat([ChatMessage("user", "hi")], ChatRequest(timeout=seconds))


def test_ctrl_c_ends_a_run_waiting_for_the_model(project: Path, silent_model: tuple[str, socket.socket]) -> None:
    base_url, server = silent_model
    cli = _cli("--root", str(project), "--base-url", base_url, "--model-id", "m", "--timeout", "300", "q")
    try:
        server.settimeout(BOUND_S)
        connection, _ = server.accept()  # the request is in flight and will never be answered
        sent = time.monotonic()
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=BOUND_S)
        print(f"Ctrl-C while waiting for the model: exit after {time.monotonic() - sent:.2f} s")
        connection.close()
    finally:
        cli.kill()
    assert cli.returncode == 130
    assert "Error: interrupted" in stderr and "Traceback" not in stderr


def test_ctrl_c_ends_a_run_inside_run_python_and_the_snippet_dies(project: Path,
                                                                  openai_server: FakeOpenAIServer) -> None:
    marker = f"tongyi-ctrlc-{uuid.uuid4().hex}"
    code = f"import time  # {marker}\nimport subprocess, sys\n" \
           f"subprocess.Popen([sys.executable, '-c', 'import time  # {marker}\\ntime.sleep(300)'])\ntime.sleep(300)\n"
    openai_server.add({"tool_calls": [{"name": "run_python", "arguments": {"code": code}}]}, {"content": "done"})
    cli = _cli("--root", str(project), "--base-url", openai_server.base_url, "--model-id", "fake-model",
               "--timeout", "300", "q", env={"TONGYI_SANDBOX_TIMEOUT": "200"})
    try:
        if not namespaces_available():
            assert cli.wait(timeout=BOUND_S) == 0  # run_python refused; nothing to interrupt
            return
        deadline = time.monotonic() + BOUND_S
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with(marker), "the snippet never started"
        sent = time.monotonic()
        cli.send_signal(signal.SIGINT)
        cli.communicate(timeout=BOUND_S)
        print(f"Ctrl-C during run_python: exit after {time.monotonic() - sent:.2f} s")
        assert cli.returncode == 130
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with(marker) == []
    finally:
        cli.kill()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def _bounded(call, seconds: float = 20):
    """Run `call` in a daemon thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def test_a_catastrophic_regex_is_cut_per_line(project: Path) -> None:
    (project / "evil.txt").write_text(("a" * 40 + "!\n") * 200)
    started = time.monotonic()
    # (a+)+$ is catastrophic for the standard re module; the regex package optimizes that one, and
    # (a|aa)+$ is the shape it cannot: both must end.
    quick = _bounded(lambda: search_files(ToolContext(root=project), "(a+)+$"))
    assert "no matches" in quick.output
    result = _bounded(lambda: search_files(ToolContext(root=project), "(a|aa)+$"))
    print(f"(a+)+$ and (a|aa)+$ over 200 lines of 40 a's: {time.monotonic() - started:.2f} s")
    assert "took longer than 0.05 s" in result.output and "dropped for the rest of the search" in result.output


def test_ctrl_c_is_not_blocked_by_a_regex(project: Path) -> None:
    """The match runs without the GIL, so the main thread can still take SIGINT."""
    (project / "evil.txt").write_text(("a" * 40 + "!\n") * 200)
    code = ("import threading, time, os, signal\nfrom pathlib import Path\n"
            "from tongyi_agent.tools.base import ToolContext\nfrom tongyi_agent.tools import search_files as s\n"
            "s.LINE_REGEX_SECONDS = 1000.0\n"  # as if there were no per-line bound
            f"ctx = ToolContext(root=Path({str(project)!r}))\n"
            "t = threading.Thread(target=s.search_files, args=(ctx, '(a|aa)+$'), daemon=True)\n"
            "try:\n    t.start()\n    time.sleep(0.5)\n    print('ready', flush=True)\n    time.sleep(300)\n"
            "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n    os._exit(130)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             preexec_fn=_ctrl_c_default)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=BOUND_S)
        print(f"Ctrl-C during a catastrophic regex: handled after {time.monotonic() - sent:.2f} s")
    finally:
        child.kill()
    assert child.returncode == 130 and "interrupted" in out


@pytest.fixture
def fifo(project: Path) -> Iterator[Path]:
    path = project / "pipe.txt"
    os.mkfifo(path)
    yield path
    # Release anything that did open it for reading, so no thread stays blocked.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def test_read_file_refuses_a_fifo_without_blocking(project: Path, fifo: Path) -> None:
    with pytest.raises(ToolError, match="not a regular file"):
        _bounded(lambda: read_file(ToolContext(root=project), "pipe.txt"))


def test_pdf_tools_refuse_a_fifo_without_blocking(project: Path) -> None:
    os.mkfifo(project / "paper.pdf")
    try:
        with pytest.raises(ToolError, match="not a regular file"):
            _bounded(lambda: pdf_info(ToolContext(root=project), "paper.pdf"))
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(project / "paper.pdf", os.O_WRONLY | os.O_NONBLOCK))


def test_search_skips_a_fifo_in_the_root(project: Path, fifo: Path) -> None:
    result = _bounded(lambda: search_files(ToolContext(root=project), "billing port"))
    assert "services/billing.md" in result.output and "pipe.txt" not in result.output
    single = _bounded(lambda: search_files(ToolContext(root=project), "billing", "pipe.txt"))
    assert "no matches" in single.output


def test_many_run_python_calls_in_one_turn_end_at_the_deadline(project: Path) -> None:
    markers = [f"tongyi-many-{uuid.uuid4().hex}" for _ in range(4)]
    calls = [ToolCall(f"c{n}", "run_python", {"code": f"import time  # {m}\ntime.sleep(120)\n"})
             for n, m in enumerate(markers)]
    model = ScriptedModel([ChatResponse(content="", tool_calls=calls), "It could not be computed in time."])
    registry = default_registry(["run_python"], timeout=200)
    agent = Agent(model, registry, NativeDialect(), project, AgentSpec(max_seconds=8),
                  tool_context=ToolContext(root=project, env={"TONGYI_SANDBOX_TIMEOUT": "120"}))
    started = time.monotonic()
    result = agent.run_sync("Compute it four ways.")
    elapsed = time.monotonic() - started
    print(f"4 run_python calls sleeping 120 s with max_seconds 8: the run took {elapsed:.1f} s")
    assert elapsed < BOUND_S
    outputs = [step.result.output for step in result.tool_calls]
    if namespaces_available():
        assert "abandoned" in outputs[0] or "wall-clock limit" in outputs[0]
        assert all("not run" in out for out in outputs[1:]), outputs
    assert result.stop_reason == "forced" and result.answer == "It could not be computed in time."
    assert 0 < model.calls[1].request.timeout <= 8
    deadline = time.monotonic() + 10
    while any(processes_with(m) for m in markers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(processes_with(m) for m in markers)


def test_an_abandoned_writing_tool_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    finished = threading.Event()

    def slow_writer(ctx: ToolContext) -> ToolResult:
        """Write a file, slowly."""
        time.sleep(1.0)
        try:
            ctx.check_cancelled()
            target.write_text("late")
        finally:
            finished.set()
        return ToolResult("written")

    registry = ToolRegistry([Tool.from_function(slow_writer, writes=True)], timeout=0.2)
    result = asyncio.run(registry.run("slow_writer", {}, ToolContext(root=tmp_path)))
    assert not result.ok and "abandoned after 0.2 s" in result.output
    assert finished.wait(10)
    assert not target.exists()


def test_clean_csv_checks_for_abandonment_before_writing(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b\n1,2\n1,2\n")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ToolError, match="abandoned"):
        clean_csv(ToolContext(root=tmp_path, cancel=cancel), "in.csv", output="out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_the_tool_limit_follows_the_sandbox_setting(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYI_SANDBOX_TIMEOUT", "90")
    agent = build_agent(load_settings(project), model=ScriptedModel([]))
    assert agent.tools.timeout == 100  # the program's 90 s plus time to start the sandbox
    monkeypatch.delenv("TONGYI_SANDBOX_TIMEOUT")
    assert build_agent(load_settings(project), model=ScriptedModel([])).tools.timeout == 30


class _UninterruptibleModel:
    """Like the embedded backend: each call blocks a worker thread that nothing can interrupt."""

    name = "uninterruptible"
    supports_grammar = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.released = threading.Event()

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        await asyncio.to_thread(self.released.wait, self.seconds)
        return ChatResponse(content="too late")


def test_a_model_call_that_cannot_be_interrupted_still_ends_the_run_at_the_deadline(project: Path) -> None:
    from tongyi_agent.agent.runtime import LoopRunner

    model = _UninterruptibleModel(seconds=60)
    agent = Agent(model, default_registry(["read_file"]), NativeDialect(), project, AgentSpec(max_seconds=2))
    runner = LoopRunner()
    started = time.monotonic()
    try:
        result = runner.run(agent.run("q"))
    finally:
        model.released.set()  # let the worker thread go, as the CLI's exit would
        runner.close()
    print(f"uninterruptible model call, max_seconds 2: the run ended after {time.monotonic() - started:.2f} s")
    assert result.stop_reason == "deadline" and result.answer == "I could not finish within the time limit of 2 s."


def test_the_cli_exits_without_waiting_for_an_abandoned_thread() -> None:
    code = ("import threading, time\nfrom tongyi_agent.cli.app import _exit\n"
            "threading.Thread(target=time.sleep, args=(300,)).start()\nprint('busy', flush=True)\n_exit(3)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND_S)
    print(f"exit with an abandoned thread: {time.monotonic() - started:.2f} s")
    assert done.returncode == 3 and done.stdout == "busy\n"
