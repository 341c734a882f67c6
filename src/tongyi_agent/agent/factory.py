"""Assemble an Agent from Settings: the model of the chosen profile, the tools, the dialect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.agent.steps import Step
from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.settings import Settings, user_cache_dir
from tongyi_agent.llm.base import ChatModel
from tongyi_agent.llm.registry import build_model
from tongyi_agent.tools import default_registry, tool_time_limit
from tongyi_agent.tools.base import ToolContext


def build_agent(settings: Settings, *, on_step: Callable[[Step], None] | None = None,
                on_weights_progress: Callable[[int, int], None] | None = None, cache_dir: Path | None = None,
                offline: bool = False, model: ChatModel | None = None,
                on_note: Callable[[str], None] | None = None,
                on_tool_progress: Callable[[str, int, int], None] | None = None) -> Agent:
    """`cache_dir` holds downloads (papers, web pages); `offline` turns network tools off; `model`, when
    given, is used instead of the backend the profile describes (the profile still sets the limits).
    `on_note` gets the backend's notes (prompt cache), `on_tool_progress` slow tool work (indexing)."""
    profile = settings.profile
    if model is None:
        model = build_model(profile, settings.env, user_cache_dir(), on_weights_progress, on_note)
    spec = AgentSpec(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                     max_seconds=settings.timeout, context_tokens=profile.context_length,
                     max_output_tokens=min(profile.max_output_tokens, profile.context_length // 4),
                     grounding=settings.grounding)
    offline = offline or _env_flag(settings, "TONGYI_OFFLINE")
    index_dir = None if _env_off(settings, "TONGYI_SEARCH_INDEX") else user_cache_dir() / "search-index"
    context = ToolContext(root=settings.root, cache_dir=cache_dir, offline=offline, env=settings.env,
                          index_dir=index_dir, on_progress=on_tool_progress)
    try:
        tools = default_registry(profile.tool_names(), timeout=tool_time_limit(settings.env))
    except ValueError as exc:
        raise ConfigError(f"models.ini [{profile.name}] tools: {exc}") from None
    return Agent(model, tools, get_dialect(profile.dialect), settings.root, spec, on_step=on_step,
                 tool_context=context)


def _env_flag(settings: Settings, name: str) -> bool:
    return settings.env.get(name, "").strip().lower() in ("1", "true", "yes")


def _env_off(settings: Settings, name: str) -> bool:
    return settings.env.get(name, "").strip().lower() in ("0", "false", "no", "off")
