"""The guide's Python API: agents that record their runs, and the training data they produce.

    from tongyi_agent.training_manager import get_training_manager

    manager = get_training_manager(root="notes")
    agent = manager.create_optimized_agent("tongyi", optimization_mode="prompt", enable_training=True)
    answer = await agent.process_query("Which port does billing use?")   # or agent.run(...)
    manager.export_training_data(agent, "out/training.json")
    print(manager.get_agent_stats(agent)["total_interactions"])

Optimization (`run_optimization`, `run_training_session`) arrives with the optimizer; until then
those names do not exist here rather than pretend to work.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.config import Settings, load_settings
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.tools import default_registry

# Agent types of the guide, mapped to model profiles; None = the configured default profile.
AGENT_TYPES: dict[str, str | None] = {"tongyi": None, "claude": "claude"}
MODES = ("prompt", "rl", "sft")


class OptimizedAgent:
    """An agent whose runs are recorded (when training is enabled) with their rewards."""

    def __init__(self, agent_type: str, optimization_mode: str, enable_training: bool, settings: Settings,
                 workspace: TrainingWorkspace) -> None:
        self.agent_type = agent_type
        self.optimization_mode = optimization_mode
        self.enable_training = enable_training
        self.settings = settings
        self.workspace = workspace
        self.last_result: RunResult | None = None
        self.last_run_id: str | None = None
        self._agent: Agent | None = None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = build_agent(self.settings)
        return self._agent

    async def process_query(self, query: str) -> str:
        """Answer `query` (with a Sources list appended); the run is recorded when training is on."""
        if self.enable_training:
            with self.workspace.open_store() as store:
                recorder = RunRecorder.for_profile(store, self.workspace.training, self.settings.profile)
                recorded = await recorder.run(self.agent, query)
            self.last_result, self.last_run_id = recorded.result, recorded.run_id
        else:
            self.last_result, self.last_run_id = await self.agent.run(query), None
        sources = self.last_result.render_sources()
        return self.last_result.answer + (f"\n\nSources:\n{sources}" if sources else "")

    def run(self, query: str) -> str:
        """Synchronous `process_query`."""
        return asyncio.run(self.process_query(query))


class TrainingManager:
    """Creates agents for one project root and reads the training data they record."""

    def __init__(self, root: Path | str = ".", *, env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.env = env

    def create_optimized_agent(self, agent_type: str = "tongyi", optimization_mode: str = "prompt",
                               enable_training: bool = True) -> OptimizedAgent:
        """Raises ValueError for an unknown agent type or mode, ConfigError for bad configuration."""
        if agent_type not in AGENT_TYPES:
            raise ValueError(f"unknown agent_type {agent_type!r}; expected one of {', '.join(AGENT_TYPES)}")
        if optimization_mode not in MODES:
            raise ValueError(f"unknown optimization_mode {optimization_mode!r}; expected one of {', '.join(MODES)}")
        settings = load_settings(self.root, model=AGENT_TYPES[agent_type], env=self.env)
        workspace = TrainingWorkspace.load(self.root, enabled=enable_training, mode=optimization_mode, env=self.env)
        return OptimizedAgent(agent_type, optimization_mode, enable_training, settings, workspace)

    def _workspace(self) -> TrainingWorkspace:
        return TrainingWorkspace.load(self.root, env=self.env)

    def export_training_data(self, agent: OptimizedAgent | None, path: Path | str, format: str = "json") -> int:
        """Write the recorded runs to `path` (json, jsonl, sft or dpo); returns how many were written."""
        workspace = agent.workspace if agent is not None else self._workspace()
        return workspace.export(Path(path), format, tools_schema=default_registry().openai_schemas())

    def get_agent_stats(self, agent: OptimizedAgent | None = None) -> dict[str, Any]:
        """The same metrics as `tongyi-cli --training-stats --json`."""
        workspace = agent.workspace if agent is not None else self._workspace()
        if not workspace.has_data():
            return {"total_interactions": 0}
        with workspace.open_store() as store:
            return workspace.stats(store)


_MANAGERS: dict[Path, TrainingManager] = {}


def get_training_manager(root: Path | str = ".") -> TrainingManager:
    """One manager per project root, shared within the process."""
    key = Path(root).resolve()
    return _MANAGERS.setdefault(key, TrainingManager(key))
