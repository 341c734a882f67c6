"""`tongyi-cli rollout`: run one task as an Agent Lightning rollout and post its reward to the gateway."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tongyi_agent.cli.console import EXIT_FAILED, err, fail, out

if TYPE_CHECKING:
    from tongyi_agent.learn.agl_rollout import Gateway, RolloutOutcome

# The harness (agent loop, rewards, HTTP) is imported when the command runs, so that registering the
# command costs `tongyi-cli --help` nothing.

EPILOG = ("Environment (set by agl-controller): AGL_OPENAI_BASE_URL the rollout's model proxy, AGL_EVENT_URL where "
          "the reward goes, AGL_KEY the gateway key (never printed or stored); TONGYI_TASK the task as JSON. "
          "Recipe: docs/agent_lightning.md.")


class Dialect(StrEnum):
    native = "native"
    tongyi = "tongyi"
    react = "react"


def rollout_command(
    task_file: Annotated[Path | None, typer.Option("--task", help=(
        "Task as a JSON file (one object) or a task file with one line; default: $TONGYI_TASK."))] = None,
    root: Annotated[Path, typer.Option("--root", "-r", help=(
        "Project folder the agent may read; a task's relative 'root' is resolved against it."))]
    = Path("."),
    model: Annotated[str | None, typer.Option("--model", "-m", help=(
        "Profile in models.ini to take the dialect, tools and context length from (its model and URL are "
        "replaced by the gateway's). Default: tongyi dialect, all tools, 32k context."))] = None,
    dialect: Annotated[Dialect | None, typer.Option(help=(
        "How the served model writes tool calls; native needs vLLM's tool parser (default: tongyi)."))] = None,
    model_id: Annotated[str | None, typer.Option(help=(
        "Model name in requests (default: policy; the gateway overrides it)."))] = None,
    max_steps: Annotated[int | None, typer.Option(help="Model calls before the answer is forced (default 8).")]
    = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the answer is forced (default 300).")]
    = None,
    offline: Annotated[bool, typer.Option("--offline", help="Turn off the tools that need the network.")] = False,
    train: Annotated[bool, typer.Option("--train", help=(
        "Also record the run (spans, answer, rewards) under .tongyi_training/ of --root."))] = False,
) -> None:
    """Run ONE task as an Agent Lightning rollout: answer it through the gateway's model proxy, score the
    answer, and post the reward to the gateway.

    Agent Lightning's controller starts this command once per rollout; the gateway records every model
    request, training reads the reward. The reward is the task reward (1 when the answer matches the
    task's answer or answer_regex, else token F1) or, for tasks without a reference answer, the
    [prompt_optimization] optimization_target reward of training_config.ini.

    Exit codes: 0 reward posted; 1 the model failed or the reward could not be posted (the rollout then
    fails and training fills in its reward); 2 missing environment or a bad task.

    By hand, against a running gateway (agl-server) and a rollout created there:

    \b
      export AGL_OPENAI_BASE_URL=http://127.0.0.1:8080/proxy/rollout/R1/attempt/0/mode/val/openai/v1
      export AGL_EVENT_URL=http://127.0.0.1:8080/api/rollouts/R1/attempt/0/events AGL_KEY=...
      tongyi-cli rollout --task task.json --root ~/corpus
    """
    from tongyi_agent.cli.trust import warn_ignored
    from tongyi_agent.config import ConfigError, load_settings
    from tongyi_agent.learn.agl_rollout import (
        DEFAULT_MODEL_ID,
        Gateway,
        RolloutError,
        build_rollout_agent,
        harness_profile,
        load_task,
        post_reward,
        run_rollout,
    )
    from tongyi_agent.learn.workspace import TrainingWorkspace
    from tongyi_agent.llm.base import ModelError

    try:
        gateway = Gateway.from_env(os.environ)
        settings = load_settings(root, model=model, max_steps=max_steps, timeout=timeout)
        workspace = TrainingWorkspace.load(root, enabled=True if train else None)
        task = load_task(task_file, os.environ, settings.root)
    except (RolloutError, ConfigError) as exc:
        raise fail(str(exc)) from None
    warn_ignored(err, settings.trust, settings.ignored, workspace.ignored)
    profile = harness_profile(settings.profile if model else None, model_id or DEFAULT_MODEL_ID,
                              dialect.value if dialect else None)
    settings = settings.model_copy(update={"model": profile.name, "profile": profile, "fallback_profile": None})
    try:
        agent = build_rollout_agent(settings, gateway, workspace, offline=offline)
        with err.status(f"Rollout {gateway.rollout_id or ''}: working…"):
            outcome = run_rollout(agent, task, workspace, gateway, record=train)
        post_reward(gateway, outcome.reward)
    except ModelError as exc:
        raise fail(f"the model failed, no reward posted: {exc}", EXIT_FAILED) from None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except RolloutError as exc:
        raise fail(str(exc), exc.exit_code) from None
    _summary(outcome, gateway)


def _summary(outcome: RolloutOutcome, gateway: Gateway) -> None:
    result, reward = outcome.result, outcome.reward
    where = f"Rollout {gateway.rollout_id} ({gateway.mode})" if gateway.rollout_id else "Rollout"
    out.print(f"{where}: reward {reward.value:.3f} ({reward.name}) posted.", markup=False)
    out.print(f"Answer: {' '.join(result.answer.split())[:300]}", markup=False)
    recorded = f"; recorded as run {outcome.run_id}" if outcome.run_id else ""
    out.print(f"{result.model_calls} model calls, {len(result.tool_calls)} tool calls, {result.usage.total_tokens} "
              f"tokens, {result.seconds:.1f} s, stopped by {result.stop_reason}{recorded}.", markup=False)
