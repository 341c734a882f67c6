"""The Agent Lightning harness: gateway environment, task decoding, reward choice and the reward POST,
and `tongyi-cli rollout` end to end against loopback fakes (the OpenAI fake as the gateway's model proxy,
a recording server as its event endpoint). The real gateway is in tests/e2e/test_agl_gateway.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fakes.http_fixture import JSONHandler, Script, ScriptedFake
from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.cli.app import app
from tongyi_agent.learn.agl_rollout import (
    DEFAULT_DIALECT,
    Gateway,
    RolloutError,
    choose_reward,
    harness_profile,
    load_task,
    post_reward,
    reward_event,
)
from tongyi_agent.learn.evaluation.rewards import Reward
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import ExperienceStore, TrajectoryStore

KEY = "agl-test-key-0123456789"
PROXY = "http://127.0.0.1:9/proxy/rollout/r-42/attempt/0/mode/train/openai/v1"
EVENTS = "http://127.0.0.1:9/api/rollouts/r-42/attempt/0/events"
TOOL_CALL = '<tool_call>\n{"name": "search_files", "arguments": {"query": "port"}}\n</tool_call>'
ANSWER = "<answer>The billing service listens on port 8443 (services/billing.md:3).</answer>"


# -- a loopback event endpoint ---------------------------------------------------------------------------


class _EventHandler(JSONHandler):
    def do_POST(self) -> None:
        body = self._read_json()
        self._record(body)
        scripted = self._next_reply(body, {"detail": "unused"}) if self.server.shared.replies else ({}, 0)
        if scripted is None:
            return
        reply, _ = scripted
        status = int(reply.get("status", 200))
        self._send_json(status, reply.get("body", {"event_type": "reward", "rollout_id": "r-42", "data": body}))


class EventSink(ScriptedFake):
    """Answers each POST with the next scripted `{"status": .., "body": ..}`, or 200 when none is left."""

    def __init__(self) -> None:
        super().__init__(Script(), _EventHandler)

    @property
    def url(self) -> str:
        return f"{self._root_url}/api/rollouts/r-42/attempt/0/events"


@pytest.fixture
def sink() -> Any:
    with EventSink() as server:
        yield server


def _reward(value: float | None = 0.75, name: str = "task") -> Reward:
    return Reward(name, value, "task" if name == "task" else "builtin", None if value is not None else "broken")


# -- the gateway's environment ---------------------------------------------------------------------------


def test_gateway_reads_the_controller_variables() -> None:
    gateway = Gateway.from_env({"AGL_OPENAI_BASE_URL": PROXY + "/", "AGL_EVENT_URL": EVENTS, "AGL_KEY": KEY})
    assert gateway.openai_base_url == PROXY
    assert gateway.event_url == EVENTS
    assert (gateway.rollout_id, gateway.attempt_id, gateway.mode) == ("r-42", "0", "train")
    assert gateway.headers() == {"Authorization": f"Bearer {KEY}"}
    assert KEY not in repr(gateway)


def test_gateway_without_key_sends_no_authorization() -> None:
    gateway = Gateway.from_env({"AGL_OPENAI_BASE_URL": PROXY, "AGL_EVENT_URL": EVENTS, "AGL_KEY": ""})
    assert gateway.headers() == {}


def test_gateway_of_another_url_shape_has_no_ids() -> None:
    gateway = Gateway.from_env({"AGL_OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "AGL_EVENT_URL": EVENTS})
    assert (gateway.rollout_id, gateway.mode) == (None, None)


@pytest.mark.parametrize(("env", "named"), [
    ({}, "AGL_OPENAI_BASE_URL and AGL_EVENT_URL not set"),
    ({"AGL_OPENAI_BASE_URL": PROXY}, "AGL_EVENT_URL not set"),
    ({"AGL_OPENAI_BASE_URL": " ", "AGL_EVENT_URL": EVENTS}, "AGL_OPENAI_BASE_URL not set"),
    ({"AGL_OPENAI_BASE_URL": "127.0.0.1:8080/proxy", "AGL_EVENT_URL": EVENTS}, "must be an http(s) URL"),
])
def test_gateway_environment_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(RolloutError, match=re.escape(named)) as info:
        Gateway.from_env(env)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


# -- the task ---------------------------------------------------------------------------------------------


def test_task_from_env_keeps_our_fields_and_ignores_others(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    raw = json.dumps({"question": " Which port? ", "answer": 8443, "root": "docs", "sources": ["a.md:1"],
                      "id": "t1", "index": 3, "extra_info": {"split": "train"}})
    task = load_task(None, {"TONGYI_TASK": raw}, tmp_path)
    assert (task.question, task.answer, task.root, task.sources, task.id) == (
        "Which port?", "8443", (tmp_path / "docs").resolve(), ("a.md:1",), "t1")


def test_task_takes_verl_ground_truth_as_answer(tmp_path: Path) -> None:
    raw = json.dumps({"question": "q", "reward_model": {"style": "rule", "ground_truth": "42"}})
    assert load_task(None, {"TONGYI_TASK": raw}, tmp_path).answer == "42"
    raw = json.dumps({"question": "q", "answer_regex": "4[0-9]", "reward_model": {"ground_truth": "42"}})
    task = load_task(None, {"TONGYI_TASK": raw}, tmp_path)
    assert (task.answer, task.answer_regex) == (None, "4[0-9]")


@pytest.mark.parametrize(("raw", "message"), [
    ("", "no task: pass --task FILE, or set TONGYI_TASK"),
    ("Which port?", "TONGYI_TASK is not valid JSON"),
    ('["q"]', "TONGYI_TASK: expected a JSON object"),
    ('{"answer": "1"}', "TONGYI_TASK: 'question' must be a non-empty string"),
    ('{"question": "q", "answer_regex": "("}', "'answer_regex' is not a valid regex"),
])
def test_bad_task_in_env_is_one_line_error(tmp_path: Path, raw: str, message: str) -> None:
    with pytest.raises(RolloutError) as info:
        load_task(None, {"TONGYI_TASK": raw}, tmp_path)
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_task_file_overrides_env_and_resolves_root_beside_it(tmp_path: Path) -> None:
    (tmp_path / "tasks" / "corpus").mkdir(parents=True)
    path = tmp_path / "tasks" / "one.json"
    path.write_text(json.dumps({"question": "From file?", "answer": "yes", "root": "corpus"}, indent=2))
    task = load_task(path, {"TONGYI_TASK": '{"question": "from env"}'}, tmp_path)
    assert task.question == "From file?"
    assert task.root == (tmp_path / "tasks" / "corpus").resolve()


def test_task_file_in_jsonl_format_must_hold_one_task(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"question": "one", "answer": "1"}\n\n')
    assert load_task(path, {}, tmp_path).answer == "1"
    path.write_text('{"question": "one"}\n{"question": "two"}\n')
    with pytest.raises(RolloutError, match="has 2 tasks; a rollout runs exactly one"):
        load_task(path, {}, tmp_path)
    with pytest.raises(RolloutError, match="cannot read"):
        load_task(tmp_path / "missing.json", {}, tmp_path)


# -- the reward -------------------------------------------------------------------------------------------


def test_reward_is_the_task_reward_when_there_is_one() -> None:
    rewards = [_reward(0.2, "response_quality"), _reward(1.0, "task")]
    assert choose_reward(rewards, "response_quality").name == "task"
    assert choose_reward(rewards[:1], "response_quality").value == 0.2


def test_reward_without_value_is_an_error() -> None:
    with pytest.raises(RolloutError, match="reward 'custom' has no value: broken") as info:
        choose_reward([_reward(None, "custom")], "custom")
    assert info.value.exit_code == 1


def test_reward_event_has_the_gateway_shape() -> None:
    assert reward_event(_reward(0.5)) == {"event_type": "reward",
                                          "data": {"value": 0.5, "source": "agent", "reason": "task"}}


def test_post_reward_sends_event_with_bearer_key(sink: EventSink) -> None:
    post_reward(Gateway(PROXY, sink.url, KEY), _reward(0.75))
    (request,) = sink.requests
    assert request.path == "/api/rollouts/r-42/attempt/0/events"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["event_type"] == "reward" and request.body["data"]["value"] == 0.75


def test_post_reward_retries_server_errors(sink: EventSink) -> None:
    sink.add({"status": 503, "body": {"detail": "busy"}})
    post_reward(Gateway(PROXY, sink.url, ""), _reward(), backoff=0.01)
    assert len(sink.requests) == 2
    assert "authorization" not in sink.requests[0].headers


def test_post_reward_gives_up_at_once_on_a_client_error(sink: EventSink) -> None:
    sink.add({"status": 401, "body": {"detail": "Invalid or missing API key"}})
    with pytest.raises(RolloutError) as info:
        post_reward(Gateway(PROXY, sink.url, KEY), _reward(), backoff=0.01)
    assert "HTTP 401: Invalid or missing API key" in str(info.value)
    assert KEY not in str(info.value)
    assert info.value.exit_code == 1
    assert len(sink.requests) == 1


def test_post_reward_to_nothing_fails_after_its_attempts() -> None:
    with EventSink() as closed:
        url = closed.url
    with pytest.raises(RolloutError, match=r"could not post the reward .*ConnectError"):
        post_reward(Gateway(PROXY, url, ""), _reward(), attempts=2, backoff=0.01, timeout=2)


# -- the model profile -----------------------------------------------------------------------------------


def test_harness_profile_defaults_and_profile_settings(project_settings: Any) -> None:
    default = harness_profile(None)
    assert (default.provider, default.dialect, default.tools, default.temperature) == (
        "openai", DEFAULT_DIALECT, "all", None)
    local = project_settings.profiles["local"]
    derived = harness_profile(local, "m", "native")
    assert (derived.provider, derived.model_id, derived.dialect, derived.tools, derived.context_length) == (
        "openai", "m", "native", local.tools, local.context_length)
    assert derived.weights is None and derived.api_key_env is None


@pytest.fixture
def project_settings(project: Path) -> Any:
    from tongyi_agent.config import load_settings

    return load_settings(project)


# -- `tongyi-cli rollout` against loopback fakes ----------------------------------------------------------


def _gateway_env(monkeypatch: pytest.MonkeyPatch, model: FakeOpenAIServer, sink: EventSink, task: Any) -> None:
    monkeypatch.setenv("AGL_OPENAI_BASE_URL", model.base_url)
    monkeypatch.setenv("AGL_EVENT_URL", sink.url)
    monkeypatch.setenv("AGL_KEY", KEY)
    monkeypatch.setenv("TONGYI_TASK", json.dumps(task))


def test_cli_rollout_runs_task_and_posts_task_reward(monkeypatch: pytest.MonkeyPatch, project: Path,
                                                     openai_server: FakeOpenAIServer, sink: EventSink) -> None:
    openai_server.add({"content": TOOL_CALL}, {"content": ANSWER})
    _gateway_env(monkeypatch, openai_server, sink, {"question": "Which port does billing use?", "answer": "8443"})
    result = CliRunner().invoke(app, ["rollout", "--root", str(project), "--offline"])
    assert result.exit_code == 0, result.stderr
    assert "reward 1.000 (task) posted" in result.stdout
    assert "2 model calls, 1 tool calls" in result.stdout
    requests = openai_server.chat_requests
    assert len(requests) == 2
    assert all(not r.get("stream") and "tools" not in r and "temperature" not in r for r in requests)
    assert "port 8443" in requests[1]["messages"][-1]["content"]  # the tool's output went back to the model
    assert {r.headers["authorization"] for r in openai_server.requests} == {f"Bearer {KEY}"}
    (event,) = [r.body for r in sink.requests]
    assert event == {"event_type": "reward", "data": {"value": 1.0, "source": "agent", "reason": "task"}}
    assert KEY not in result.stdout + result.stderr


def test_cli_rollout_train_records_the_run_without_the_key(monkeypatch: pytest.MonkeyPatch, project: Path,
                                                           openai_server: FakeOpenAIServer, sink: EventSink) -> None:
    # An answer from memory: asked once by the grounding check to look it up, the model insists.
    openai_server.add(*[{"content": "<answer>Port 9000.</answer>"}] * 2)
    _gateway_env(monkeypatch, openai_server, sink, {"question": "Which port?", "answer": "8443"})
    result = CliRunner().invoke(app, ["rollout", "--root", str(project), "--offline", "--train"])
    assert result.exit_code == 0, result.stderr
    assert sink.requests[0].body["data"]["value"] == 0.0
    workspace = TrainingWorkspace.load(project)
    with TrajectoryStore(workspace.store_path) as store:
        (run,) = list(store.iter_runs())
        assert run.question == "Which port?"
        assert run.metadata["agent_lightning"] == {"rollout_id": None, "attempt_id": None, "mode": None}
        assert f"recorded as run {run.id}" in result.stdout
    assert KEY.encode() not in workspace.store_path.read_bytes()


def test_a_recorded_rollout_correct_on_its_answer_becomes_an_experience(
        monkeypatch: pytest.MonkeyPatch, project: Path, openai_server: FakeOpenAIServer, sink: EventSink) -> None:
    openai_server.add({"content": TOOL_CALL}, {"content": ANSWER})
    _gateway_env(monkeypatch, openai_server, sink, {"question": "Which port does billing use?", "answer": "8443"})
    result = CliRunner().invoke(app, ["rollout", "--root", str(project), "--offline", "--train"])
    assert result.exit_code == 0, result.stderr
    with TrajectoryStore(TrainingWorkspace.load(project).store_path) as store:
        (run,) = list(store.iter_runs())
        kept = ExperienceStore(store).by_run(run.id)
    assert kept is not None and kept.confirmed_by == "task" and kept.dialect == "tongyi"
    assert kept.trajectory["steps"][0]["tool"] == "search_files"


def test_cli_rollout_without_gateway_env_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    for name in ("AGL_OPENAI_BASE_URL", "AGL_EVENT_URL", "AGL_KEY", "TONGYI_TASK"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["rollout", "--root", str(project)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: AGL_OPENAI_BASE_URL and AGL_EVENT_URL not set")
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_rollout_fails_when_the_reward_cannot_be_posted(monkeypatch: pytest.MonkeyPatch, project: Path,
                                                            openai_server: FakeOpenAIServer, sink: EventSink) -> None:
    openai_server.add({"content": TOOL_CALL}, {"content": ANSWER})
    sink.add({"status": 404, "body": {"detail": "Rollout not found: r-42"}})
    _gateway_env(monkeypatch, openai_server, sink, {"question": "Which port?", "answer": "8443"})
    result = CliRunner().invoke(app, ["rollout", "--root", str(project), "--offline"])
    assert result.exit_code == 1
    assert "could not post the reward" in result.stderr and "HTTP 404: Rollout not found" in result.stderr
    assert "posted" not in result.stdout


def test_cli_rollout_model_failure_posts_no_reward(monkeypatch: pytest.MonkeyPatch, project: Path,
                                                   openai_server: FakeOpenAIServer, sink: EventSink) -> None:
    openai_server.add({"status": 401, "body": {"detail": "Invalid or missing API key"}})
    _gateway_env(monkeypatch, openai_server, sink, {"question": "Which port?", "answer": "8443"})
    result = CliRunner().invoke(app, ["rollout", "--root", str(project), "--offline"])
    assert result.exit_code == 1
    assert "the model failed, no reward posted" in result.stderr and "HTTP 401" in result.stderr
    assert sink.requests == []
