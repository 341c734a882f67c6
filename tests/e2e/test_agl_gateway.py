"""`tongyi-cli rollout` under the real Agent Lightning 1.0 gateway (`agl-server`) and local controller
(`agl-controller runner_type=local`), with the OpenAI fake standing in for vLLM behind the gateway.

agentlightning needs Python >= 3.12, so it lives in its own environment: $TONGYI_AGL_PYTHON, else
<repo>/.venv-agl/bin/python (`.ci/run` builds it when a 3.12 interpreter exists). Without it these tests
are skipped. Everything binds 127.0.0.1; every start and wait is bounded by time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
AGL_PYTHON = Path(os.environ.get("TONGYI_AGL_PYTHON") or REPO / ".venv-agl" / "bin" / "python")
KEY = "agl-e2e-key-0123456789"
MODEL = "Qwen/Qwen2.5-7B-Instruct"  # the gateway's default_proxy.model_name: the name vLLM would serve
START_SECONDS = 60
ROLLOUT_SECONDS = 120

TOOL_CALL = '<tool_call>\n{"name": "search_files", "arguments": {"query": "port"}}\n</tool_call>'
ANSWER = "<answer>The billing service listens on port 8443 (services/billing.md:3).</answer>"
TASK = {"question": "Which port does the billing service listen on?", "answer": "8443"}


def _agl_ready() -> bool:
    if not AGL_PYTHON.is_file():
        return False
    probe = subprocess.run([str(AGL_PYTHON), "-c", "import agentlightning.server.app"], capture_output=True,
                           timeout=60)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _agl_ready(), reason=f"agentlightning is not installed in {AGL_PYTHON} (Python >= 3.12): create it with "
                             "python3.12 -m venv .venv-agl && .venv-agl/bin/pip install agentlightning==1.0.2, "
                             "or set TONGYI_AGL_PYTHON")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(name: str) -> list[str]:
    """The console script next to the 3.12 interpreter, else the same entry point through -m."""
    script = AGL_PYTHON.parent / name
    module = {"agl-server": "agentlightning.server", "agl-controller": "agentlightning.controller"}[name]
    return [str(script)] if script.is_file() else [str(AGL_PYTHON), "-m", module]


def _hydra_quiet() -> list[str]:
    # Hydra would otherwise write outputs/<date>/<time>/ into the working directory.
    return ["hydra.run.dir=.", "hydra.output_subdir=null"]


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _start(args: list[str], workdir: Path, name: str, env: dict[str, str] | None = None) -> Process:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    return Process(proc, log)


@dataclass
class Gateway:
    url: str
    api: httpx.Client

    def proxy_url(self, rollout_id: str, mode: str) -> str:
        return f"{self.url}/proxy/rollout/{rollout_id}/attempt/0/mode/{mode}/openai/v1"

    def event_url(self, rollout_id: str) -> str:
        return f"{self.url}/api/rollouts/{rollout_id}/attempt/0/events"

    def serve_model(self, endpoint: str) -> None:
        """What the trainer does per step: forget old endpoints, register vLLM's (here the fake's)."""
        self.api.delete("/api/models").raise_for_status()
        self.api.post("/api/models", json=[{"model": MODEL, "endpoint": endpoint}]).raise_for_status()

    def create_rollout(self, rollout_id: str, task: dict[str, Any], *, is_train: bool,
                       config: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"input": task, "is_train": is_train, "rollout_id": rollout_id}
        if config:
            body["config"] = config
        self.api.post("/api/rollouts", json=[body]).raise_for_status()

    def events(self, rollout_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/api/rollouts/{rollout_id}/events")
        response.raise_for_status()
        return list(response.json())

    def wait_terminal(self, rollout_id: str, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rollout = self.api.get(f"/api/rollouts/{rollout_id}").json()["rollout"]
            if rollout["status"]["state"] in ("succeeded", "failed"):
                return dict(rollout)
            time.sleep(0.3)
        raise AssertionError(f"rollout {rollout_id} did not finish within {seconds} s")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    port = _free_port()
    server = _start([*_script("agl-server"), "host=127.0.0.1", f"port={port}", f"key={KEY}",
                     f"default_proxy.model_name={MODEL}", *_hydra_quiet()],
                    tmp_path_factory.mktemp("agl-server"), "agl-server")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if server.proc.poll() is not None:
                pytest.fail(f"agl-server exited with {server.proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"agl-server did not answer /healthz within {START_SECONDS} s:\n{server.output()}")
            time.sleep(0.2)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as api:
            yield Gateway(url, api)
    finally:
        server.stop()


def _rollout_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tongyi_agent", "rollout", *args], capture_output=True, text=True,
                          timeout=ROLLOUT_SECONDS, cwd=cwd, env={**os.environ, **env})


def _model_requests(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["event_type"] == "model_request"]


def test_gateway_records_model_requests_and_reward(gateway: Gateway, project: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer([{"content": TOOL_CALL}, {"content": ANSWER}], model_ids=[MODEL]) as vllm:
        gateway.serve_model(vllm.base_url)
        gateway.create_rollout("r-direct", TASK, is_train=True)
        env = {"AGL_OPENAI_BASE_URL": gateway.proxy_url("r-direct", "train"),
               "AGL_EVENT_URL": gateway.event_url("r-direct"), "AGL_KEY": KEY, "TONGYI_TASK": json.dumps(TASK)}
        done = _rollout_cli(env, "--root", str(project), "--offline", cwd=tmp_path)
        upstream = vllm.chat_requests
    assert done.returncode == 0, done.stderr
    assert "Rollout r-direct (train): reward 1.000 (task) posted." in done.stdout
    assert KEY not in done.stdout + done.stderr

    events = gateway.events("r-direct")
    requests = _model_requests(events)
    assert len(requests) == 2 == len(upstream)
    for recorded in requests:
        sent = recorded["request"]
        # The gateway forced the served model and the train temperature and added vLLM's token fields.
        assert (sent["model"], sent["temperature"], sent["return_token_ids"], sent["logprobs"]) == (
            MODEL, 1.0, True, True)
        assert not sent.get("stream")
        assert (recorded["http_status"], recorded["status"]) == (200, "ok")
    assert requests[0]["response"]["choices"][0]["message"]["content"] == TOOL_CALL
    assert "port 8443" in requests[1]["request"]["messages"][-1]["content"]
    assert upstream[0]["return_token_ids"] is True  # what reached "vLLM" is what the gateway recorded
    assert events[-1]["event_type"] == "reward"
    assert events[-1]["data"] == {"value": 1.0, "source": "agent", "reason": "task"}


def test_wrong_key_is_refused_and_no_reward_is_recorded(gateway: Gateway, project: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer([{"content": ANSWER}], model_ids=[MODEL]) as vllm:
        gateway.serve_model(vllm.base_url)
        gateway.create_rollout("r-badkey", TASK, is_train=False)
        env = {"AGL_OPENAI_BASE_URL": gateway.proxy_url("r-badkey", "val"),
               "AGL_EVENT_URL": gateway.event_url("r-badkey"), "AGL_KEY": "not-the-key-at-all",
               "TONGYI_TASK": json.dumps(TASK)}
        done = _rollout_cli(env, "--root", str(project), "--offline", cwd=tmp_path)
        assert vllm.chat_requests == []
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and "no reward posted" in done.stderr
    assert "not-the-key-at-all" not in done.stderr
    assert gateway.events("r-badkey") == []


def test_local_controller_runs_rollouts_through_the_cli(gateway: Gateway, project: Path, tmp_path: Path) -> None:
    agent = {"agent_class": "tongyi_rollout:TongyiRollout", "env_map": {"TONGYI_TASK": "input"}}
    controller = _start(
        [*_script("agl-controller"), "runner_type=local", f"agl_server.url={gateway.url}", f"agl_server.key={KEY}",
         "local_runner.poll_interval=0.2", *_hydra_quiet()],
        tmp_path / "controller", "agl-controller",
        env={"PYTHONPATH": str(REPO / "examples" / "agent_lightning"),
             "TONGYI_CLI": str(Path(sys.executable).parent / "tongyi-cli"),
             "TONGYI_ROLLOUT_ARGS": f"--root {project} --offline"})
    try:
        # The agent looks the port up before answering, so the grounding check accepts the answer.
        with FakeOpenAIServer([{"content": TOOL_CALL}, {"content": ANSWER}], model_ids=[MODEL]) as vllm:
            gateway.serve_model(vllm.base_url)
            gateway.create_rollout("r-ctl-ok", TASK, is_train=False,
                                   config={"timeout_seconds": ROLLOUT_SECONDS, "local": agent})
            gateway.create_rollout("r-ctl-bad", {"answer": "no question"}, is_train=False,
                                   config={"timeout_seconds": ROLLOUT_SECONDS, "local": agent})
            good = gateway.wait_terminal("r-ctl-ok", ROLLOUT_SECONDS)
            bad = gateway.wait_terminal("r-ctl-bad", ROLLOUT_SECONDS)
    finally:
        controller.stop()
    log = controller.output()
    assert good["status"]["state"] == "succeeded", log
    events = gateway.events("r-ctl-ok")
    requests = _model_requests(events)
    assert len(requests) == 2
    for request in requests:
        assert (request["request"]["temperature"], "logprobs" in request["request"]) == (0.7, False)  # val mode
    assert events[-1]["event_type"] == "reward" and events[-1]["data"]["value"] == 1.0
    # A task without a question: tongyi-cli exits 2, the worker passes the code on, the rollout fails.
    assert bad["status"]["state"] == "failed", log
    assert bad["status"]["error_message"] == "subprocess exited with code 2"
    assert gateway.events("r-ctl-bad") == []


def test_training_rows_reach_the_rollout_as_the_same_tasks(tmp_path: Path, project: Path) -> None:
    """examples/agent_lightning/train_grpo.py turns a task file into verl rows (one shape for all); each row,
    as the controller hands it over in TONGYI_TASK, decodes to the task the file describes."""
    from tongyi_agent.learn.agl_rollout import load_task

    (project / "sub").mkdir()
    tasks = tmp_path / "train.jsonl"
    tasks.write_text(json.dumps({"question": "Port?", "answer": 8443}) + "\n\n"
                     + json.dumps({"question": "Owner?", "answer_regex": "payments?", "root": "sub",
                                   "sources": ["services/billing.md:4"], "id": "t2"}) + "\n")
    dumped = subprocess.run(
        [str(AGL_PYTHON), "-c", "import json, sys, train_grpo; print(json.dumps(train_grpo.load_rows(sys.argv[1])))",
         str(tasks)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "examples" / "agent_lightning")})
    assert dumped.returncode == 0, dumped.stderr
    rows = json.loads(dumped.stdout)
    columns = sorted(["id", "question", "answer", "answer_regex", "root", "sources"])
    assert [sorted(row) for row in rows] == [columns, columns]
    first, second = (load_task(None, {"TONGYI_TASK": json.dumps(row)}, project) for row in rows)
    assert (first.question, first.answer, first.answer_regex, first.root) == ("Port?", "8443", None, project)
    assert (second.answer, second.answer_regex, second.root, second.sources, second.id) == (
        None, "payments?", (project / "sub").resolve(), ("services/billing.md:4",), "t2")
