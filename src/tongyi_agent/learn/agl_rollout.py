"""Agent Lightning harness: one rollout of the agent through the gateway, and its reward posted back.

Agent Lightning 1.0's controller starts the agent once per rollout with three variables (the names its
local and Kubernetes runners set): ``AGL_OPENAI_BASE_URL``, an OpenAI-compatible proxy for this rollout
(``{gateway}/proxy/rollout/{rid}/attempt/{aid}/mode/{train|val}/openai/v1``) that records every model
request; ``AGL_EVENT_URL`` (``{gateway}/api/rollouts/{rid}/attempt/{aid}/events``), where the reward is
posted as ``{"event_type": "reward", "data": {"value": x}}``; and ``AGL_KEY``, the gateway's bearer key
(empty when the gateway has none). The task itself is whatever the controller's ``env_map`` puts in the
environment; we read it as JSON from ``TONGYI_TASK`` (map it to ``input``), or from a file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.runtime import LoopRunner
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.config import ModelProfile, Settings
from tongyi_agent.learn.evaluation.rewards import Reward
from tongyi_agent.learn.evaluation.tasks import Task, TaskFileError, load_tasks, task_from_dict
from tongyi_agent.learn.memory import ExperienceMemory
from tongyi_agent.learn.prompt.demos import apply_prompt
from tongyi_agent.learn.recording import RunRecorder, rewards_for
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.openai_compat import OpenAICompatBackend

ENV_BASE_URL = "AGL_OPENAI_BASE_URL"
ENV_EVENT_URL = "AGL_EVENT_URL"
ENV_KEY = "AGL_KEY"
ENV_TASK = "TONGYI_TASK"

PROFILE_NAME = "agent-lightning"
DEFAULT_MODEL_ID = "policy"  # the gateway replaces the model name with the one it serves
# Tongyi DeepResearch and Qwen chat templates speak <tool_call> tags; vLLM needs no tool parser for them.
DEFAULT_DIALECT = "tongyi"
# The gateway answers 429 while training pauses it to sync weights (Retry-After: 5 s); wait it out.
MODEL_RETRIES = 10
MODEL_TIMEOUT = 600.0
POST_ATTEMPTS = 3
POST_TIMEOUT = 30.0

_PROXY_PATH = re.compile(
    r"/proxy/rollout/(?P<rollout>[^/]+)/attempt/(?P<attempt>[^/]+)/mode/(?P<mode>[^/]+)/openai/v1/?$")


class RolloutError(Exception):
    """A rollout that cannot run or report; the message is one line, `exit_code` says which kind."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Gateway:
    """Where this rollout talks to the model and reports its reward. `key` never appears in a repr."""

    openai_base_url: str
    event_url: str
    key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Gateway:
        missing = [name for name in (ENV_BASE_URL, ENV_EVENT_URL) if not env.get(name, "").strip()]
        if missing:
            raise RolloutError(f"{' and '.join(missing)} not set: `tongyi-cli rollout` runs under the Agent "
                               "Lightning controller, which sets them (see docs/agent_lightning.md)")
        urls = {name: env[name].strip() for name in (ENV_BASE_URL, ENV_EVENT_URL)}
        for name, url in urls.items():
            if not re.match(r"https?://[^/\s]+", url):
                raise RolloutError(f"{name} must be an http(s) URL, got {url!r}")
        return cls(urls[ENV_BASE_URL].rstrip("/"), urls[ENV_EVENT_URL], env.get(ENV_KEY, "").strip())

    def _part(self, name: str) -> str | None:
        match = _PROXY_PATH.search(httpx.URL(self.openai_base_url).path)
        return match.group(name) if match else None

    @property
    def rollout_id(self) -> str | None:
        return self._part("rollout")

    @property
    def attempt_id(self) -> str | None:
        return self._part("attempt")

    @property
    def mode(self) -> str | None:
        """"train" or "val" (the gateway's proxy mode), None for a URL of another shape."""
        return self._part("mode")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


# ----------------------------------------------------------------------------------------------------
# The task


def load_task(task_file: Path | None, env: Mapping[str, str], default_root: Path) -> Task:
    """The task from `task_file` (one JSON object, or a task file with one line) or else from
    $TONGYI_TASK (a JSON object). Fields as in task files: question, answer or answer_regex, root,
    sources, id; a verl-style `reward_model.ground_truth` stands in for a missing answer."""
    if task_file is not None:
        return _task_from_file(task_file, default_root)
    raw = env.get(ENV_TASK, "").strip()
    if not raw:
        raise RolloutError(f"no task: pass --task FILE, or set {ENV_TASK} to the task as JSON (with the "
                           f"controller: local.env_map {{{ENV_TASK}: input}})")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RolloutError(f"{ENV_TASK} is not valid JSON ({exc.msg}); map it to the whole rollout input, "
                           "e.g. local.env_map {TONGYI_TASK: input}") from None
    return _decode(data, ENV_TASK, default_root, default_root)


def _task_from_file(path: Path, default_root: Path) -> Task:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RolloutError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None  # not one JSON document: a task file (JSONL)
    if data is not None:
        return _decode(data, str(path), path.parent, default_root)
    try:
        tasks = load_tasks(path, default_root)
    except TaskFileError as exc:
        raise RolloutError(str(exc)) from None
    if len(tasks) != 1:
        raise RolloutError(f"{path}: has {len(tasks)} tasks; a rollout runs exactly one")
    return tasks[0]


def _decode(data: Any, where: str, base_dir: Path, default_root: Path) -> Task:
    if not isinstance(data, dict):
        raise RolloutError(f"{where}: expected a JSON object with a 'question', got {type(data).__name__}")
    reward_model = data.get("reward_model")
    truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    if data.get("answer") is None and data.get("answer_regex") is None and isinstance(truth, str | int | float):
        data = {**data, "answer": truth}
    try:
        return task_from_dict(data, where, base_dir, default_root)
    except TaskFileError as exc:
        raise RolloutError(str(exc)) from None


# ----------------------------------------------------------------------------------------------------
# The run


def harness_profile(base: ModelProfile | None, model_id: str = DEFAULT_MODEL_ID,
                    dialect: str | None = None) -> ModelProfile:
    """The profile of the gateway's model: dialect, tools and context from `base` (a models.ini profile)
    when given, else built-in defaults; provider, URL and key always come from the gateway, and sampling
    is left to it (it sets the temperature itself)."""
    if base is None:
        return ModelProfile(name=PROFILE_NAME, provider="openai", model_id=model_id,
                            dialect=dialect or DEFAULT_DIALECT,
                            context_length=32768, max_output_tokens=2048, timeout=MODEL_TIMEOUT,
                            max_retries=MODEL_RETRIES, description="the model served by the Agent Lightning gateway")
    return ModelProfile(name=PROFILE_NAME, provider="openai", model_id=model_id,
                        dialect=dialect or base.dialect,
                        context_length=base.context_length, max_output_tokens=base.max_output_tokens,
                        timeout=max(base.timeout, MODEL_TIMEOUT), max_retries=MODEL_RETRIES, tools=base.tools,
                        description=f"the model served by the Agent Lightning gateway, as profile {base.name}")


@dataclass
class RolloutOutcome:
    task: Task
    result: RunResult
    reward: Reward  # the one posted: the task's reward when it has a reference answer, else the target
    run_id: str | None = None  # set when the run was recorded (--train)


def build_rollout_agent(settings: Settings, gateway: Gateway, workspace: TrainingWorkspace, *,
                        offline: bool = False) -> Agent:
    """The agent on the gateway's proxy, with the project's active prompt version when it has one."""
    profile = settings.profile
    # Built here, not from the profile, so no other key variable (OPENAI_API_KEY ...) is ever sent.
    model = OpenAICompatBackend(profile.model_id, gateway.openai_base_url, gateway.key or None,
                                timeout=profile.timeout, max_retries=profile.max_retries)
    agent = build_agent(settings, model=model, cache_dir=workspace.training.data_dir(settings.root), offline=offline)
    prompt = workspace.active_prompt()
    if prompt is None:
        return agent
    return apply_prompt(agent, prompt.components, budget_share=workspace.training.memory.budget_share)


def run_rollout(agent: Agent, task: Task, workspace: TrainingWorkspace, gateway: Gateway, *,
                record: bool) -> RolloutOutcome:
    """Run `task` once; raises ModelError when the model fails. With `record`, the run, its spans and
    rewards go to the project's store, tagged with the rollout's ids."""
    agent = agent.variant(root=task.root)
    training = workspace.training
    target = training.prompt_optimization.optimization_target
    loop = LoopRunner()
    try:
        if record:
            with workspace.open_store() as store:
                recorder = RunRecorder(store, training, backend="openai", dialect=agent.dialect.name)
                recorded = loop.run(recorder.run(
                    agent, task.question, task_answer=task.answer, task_answer_regex=task.answer_regex,
                    metadata={"agent_lightning": {"rollout_id": gateway.rollout_id,
                                                  "attempt_id": gateway.attempt_id, "mode": gateway.mode}}))
                # A rollout correct on its known answer is confirmed: later runs may learn from it; a
                # wrong one may leave a correction that shows where the answer is.
                ExperienceMemory(store, training).after_run(recorded.run_id, recorded.reference)
            return RolloutOutcome(task, recorded.result, choose_reward(recorded.rewards, target), recorded.run_id)
        result = loop.run(agent.run(task.question))
    finally:
        aclose = getattr(agent.model, "aclose", None)  # the HTTP client belongs to this loop
        if aclose is not None:
            loop.run(aclose())
        loop.close()
    rewards, _ = rewards_for(result, training, task_answer=task.answer, task_answer_regex=task.answer_regex)
    return RolloutOutcome(task, result, choose_reward(rewards, target))


def choose_reward(rewards: list[Reward], target: str) -> Reward:
    """The task reward when the task has a reference answer, else the configured target reward.

    Raises RolloutError when that reward has no value (e.g. a custom reward function failed)."""
    by_name = {reward.name: reward for reward in rewards}
    chosen = by_name.get("task") or by_name.get(target)
    if chosen is None:
        raise RolloutError(f"reward {target!r} was not computed", exit_code=1)
    if chosen.value is None:
        raise RolloutError(f"reward {chosen.name!r} has no value: {chosen.detail or 'unknown reason'}", exit_code=1)
    return chosen


# ----------------------------------------------------------------------------------------------------
# The report


def reward_event(reward: Reward) -> dict[str, Any]:
    """The gateway's reward event: `value` is what training reads; `source` and `reason` are its
    documented optional fields (who computed it, which of our rewards it is)."""
    return {"event_type": "reward", "data": {"value": reward.value, "source": "agent", "reason": reward.name}}


def post_reward(gateway: Gateway, reward: Reward, *, attempts: int = POST_ATTEMPTS, timeout: float = POST_TIMEOUT,
                backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
    """POST the reward event to AGL_EVENT_URL; retries connection errors and 5xx, then raises RolloutError."""
    last = "no attempt made"
    with httpx.Client(timeout=timeout, headers=gateway.headers(), transport=transport) as client:
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                response = client.post(gateway.event_url, json=reward_event(reward))
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            last = f"HTTP {response.status_code}: {_detail(response)}"
            if response.status_code < 500 and response.status_code != 429:
                break  # 401 (wrong AGL_KEY), 404 (unknown rollout), 422 ...: retrying cannot help
    raise RolloutError(f"could not post the reward to {gateway.event_url}: {last}", exit_code=1)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:200]
