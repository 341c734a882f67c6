"""The guide's Python API: agents that record their runs, and the training data they produce.

    from tongyi_agent.training_manager import get_training_manager

    manager = get_training_manager(root="notes")
    agent = manager.create_optimized_agent("tongyi", optimization_mode="prompt", enable_training=True)
    answer = await agent.process_query("Which port does billing use?")   # or agent.run(...)
    manager.export_training_data(agent, "out/training.json")
    print(manager.get_agent_stats(agent)["total_interactions"])

    manager.run_optimization(agent, iterations=5, tasks_file="tasks.jsonl")  # True if promoted
    manager.run_training_session(agent_type="tongyi", queries=queries, optimization_iterations=5)

The same API is importable as the guide writes it, `from training_manager import get_training_manager`
(a top-level module installed with the package).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.config import Settings, load_settings
from tongyi_agent.learn.lifecycle import Lifecycle
from tongyi_agent.learn.memory import ExperienceMemory
from tongyi_agent.learn.prompt.demos import apply_prompt
from tongyi_agent.learn.prompt.optimizer import NotEnoughTasksError
from tongyi_agent.learn.prompt.prompt_run import OptimizeOutcome, OptimizeRequest, run_prompt_optimization
from tongyi_agent.learn.recording import RunRecorder
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.llm.base import ModelError
from tongyi_agent.store.prompts import PromptStore
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
        self.notes: list[str] = []  # what the last run set off: an experiment decision, a scheduled optimization
        self._agent: Agent | None = None

    @property
    def agent(self) -> Agent:
        """The agent with the project's active prompt version (re-read after an optimization)."""
        if self._agent is None:
            self._agent = build_agent(self.settings, cache_dir=self.workspace.training.data_dir(self.settings.root))
        prompt = self.workspace.active_prompt()
        if prompt is None:
            return self._agent
        return apply_prompt(self._agent, prompt.components, budget_share=self.workspace.training.memory.budget_share)

    async def process_query(self, query: str) -> str:
        """Answer `query` (with a Sources list appended); the run is recorded when training is on."""
        if self.enable_training:
            with self.workspace.open_store() as store:
                recorder = RunRecorder.for_profile(store, self.workspace.training, self.settings.profile)
                lifecycle = Lifecycle(self.workspace, store)
                plan = lifecycle.plan(self.agent, PromptStore(store).active(), query)
                recorded = await recorder.run(plan.agent, query, run_id=plan.run_id, ab_arm=plan.ab_arm,
                                              prompt_version=plan.prompt_version, metadata=plan.metadata)
                self.notes = lifecycle.after_run(recorded)
            self.last_result, self.last_run_id = recorded.result, recorded.run_id
        else:
            agent, shown = self.agent, []
            if self.workspace.has_data():  # not recorded, but still shown what earlier confirmed runs did
                with self.workspace.open_store() as store:
                    agent, shown = ExperienceMemory(store, self.workspace.training).prepare(agent, query)
            self.last_result, self.last_run_id = await agent.run(query), None
            self.last_result.experiences = shown
        sources = self.last_result.render_sources()
        return self.last_result.answer + (f"\n\nSources:\n{sources}" if sources else "")

    def run(self, query: str) -> str:
        """Synchronous `process_query`."""
        return asyncio.run(self.process_query(query))


class TrainingManager:
    """Creates agents for one project root and reads the training data they record."""

    def __init__(self, root: Path | str = ".", *, env: dict[str, str] | None = None, trust_root: bool = False) -> None:
        """``trust_root`` honours the root's own endpoints, keys, storage and reward settings, as
        `tongyi-cli trust` or --trust-root would; otherwise only a folder the user trusted gets them."""
        self.root = Path(root)
        self.env = env
        self.trust_root = trust_root
        self.last_optimization: OptimizeOutcome | None = None

    def create_optimized_agent(self, agent_type: str = "tongyi", optimization_mode: str = "prompt",
                               enable_training: bool = True) -> OptimizedAgent:
        """Raises ValueError for an unknown agent type or mode, ConfigError for bad configuration."""
        if agent_type not in AGENT_TYPES:
            raise ValueError(f"unknown agent_type {agent_type!r}; expected one of {', '.join(AGENT_TYPES)}")
        if optimization_mode not in MODES:
            raise ValueError(f"unknown optimization_mode {optimization_mode!r}; expected one of {', '.join(MODES)}")
        settings = load_settings(self.root, model=AGENT_TYPES[agent_type], env=self.env, trust_root=self.trust_root)
        workspace = TrainingWorkspace.load(self.root, enabled=enable_training, mode=optimization_mode, env=self.env,
                                           trust_root=self.trust_root)
        return OptimizedAgent(agent_type, optimization_mode, enable_training, settings, workspace)

    def _workspace(self) -> TrainingWorkspace:
        return TrainingWorkspace.load(self.root, env=self.env, trust_root=self.trust_root)

    def export_training_data(self, agent: OptimizedAgent | None, path: Path | str, format: str = "json") -> int:
        """Write the recorded runs to `path` (json, jsonl, sft or dpo); returns how many were written."""
        workspace = agent.workspace if agent is not None else self._workspace()
        return workspace.export(Path(path), format, tools_schema=default_registry().openai_schemas())

    def run_optimization(self, agent: OptimizedAgent, iterations: int | None = None, *,
                         tasks_file: Path | str | None = None, budget_rollouts: int = 200, seed: int = 0) -> bool:
        """Optimize the agent's prompt on `tasks_file` (or its recorded runs), as the guide writes it:
        `run_optimization(agent, iterations=100)`.

        `iterations` defaults to `[prompt_optimization] iterations` (or `max_iterations`) of
        training_config.ini. True only when a better prompt was found and promoted (activated) after
        winning on the held-out tasks. Raises NotEnoughTasksError below 10 usable tasks. The full
        outcome is kept in `self.last_optimization`."""
        if iterations is None:
            iterations = agent.workspace.training.prompt_optimization.max_iterations
        request = OptimizeRequest(iterations=iterations, budget_rollouts=budget_rollouts, seed=seed,
                                  tasks_file=Path(tasks_file) if tasks_file else None)
        self.last_optimization = run_prompt_optimization(agent.workspace, agent.agent, request)
        candidate = self.last_optimization.candidate
        return bool(candidate and candidate.status == "active")

    def run_training_session(self, agent_type: str = "tongyi", queries: list[str] | tuple[str, ...] = (),
                             optimization_iterations: int | None = None, *, tasks_file: Path | str | None = None,
                             budget_rollouts: int = 200) -> dict[str, Any]:
        """Answer `queries` with recording on, then optimize the prompt, as the guide writes it:
        `run_training_session(agent_type="claude", queries=[...], optimization_iterations=200)`.

        `optimization_iterations` defaults to the `[prompt_optimization]` setting.

        Returns `success` (every query answered), `queries_processed`, `before_score` and
        `after_score` (held-out score of the seed and of the best prompt; None when the optimization
        could not run), `promoted`, and `optimization` (the report, or why it was skipped)."""
        agent = self.create_optimized_agent(agent_type, optimization_mode="prompt", enable_training=True)
        processed, errors = 0, []
        for query in queries:
            try:
                agent.run(query)
                processed += 1
            except ModelError as exc:
                errors.append(f"{query[:60]}: {exc}")
        summary: dict[str, Any] = {"success": not errors, "queries_processed": processed, "errors": errors,
                                   "before_score": None, "after_score": None, "promoted": False}
        try:
            promoted = self.run_optimization(agent, optimization_iterations, tasks_file=tasks_file,
                                             budget_rollouts=budget_rollouts)
        except NotEnoughTasksError as exc:
            summary["optimization"] = f"skipped: {exc}"
            return summary
        report = self.last_optimization.report
        summary.update(before_score=report.seed_test, after_score=report.best_test, promoted=promoted,
                       optimization=asdict(report))
        return summary

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
