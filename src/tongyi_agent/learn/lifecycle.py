"""What happens around each recorded run, wherever it runs (CLI, REPL, Python API):

before: an A/B experiment may assign the run to an arm, and the run uses that arm's prompt; in rl
mode the tool policy picks the tools, step budget and strategy hint; the experience memory adds
worked examples of similar confirmed runs;
after: the memory counts the run as a use of its examples and keeps it if it is confirmed (or a
correction when it was wrong on a known answer), the tool
policy learns from the run's reward (rl mode), a finished experiment is concluded (promotion or
rollback), and the optimization schedule may start a background optimization.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tongyi_agent.agent.loop import Agent
from tongyi_agent.learn.evaluation.experiments import ExperimentManager
from tongyi_agent.learn.memory import ExperienceMemory
from tongyi_agent.learn.policy.tool_policy import (
    PolicyArm,
    PolicyStore,
    default_arms,
    features,
    policy_reward,
    root_stats,
    run_policy_metadata,
    run_quality,
)
from tongyi_agent.learn.prompt.demos import apply_prompt
from tongyi_agent.learn.recording import RecordedRun
from tongyi_agent.learn.schedule import check_triggers, start_background
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import TrajectoryStore, new_run_id
from tongyi_agent.store.prompts import PromptStore, PromptVersion
from tongyi_agent.tools import default_registry


@dataclass
class RunPlan:
    """How one run is set up: its id, its agent (with the arm's prompt and tools) and what to record."""

    run_id: str
    agent: Agent
    prompt_version: str | None
    ab_arm: str | None
    metadata: dict[str, Any] = field(default_factory=dict)  # the tool-policy choice (rl mode), examples shown


class Lifecycle:
    def __init__(self, workspace: TrainingWorkspace, store: TrajectoryStore, *,
                 rng: random.Random | None = None) -> None:
        """``rng`` drives the tool policy's random choices; None (the product) is unseeded, since
        every CLI call is a new process; tests and benchmarks pass a seeded one to be repeatable."""
        self.workspace = workspace
        self.store = store
        self.rng = rng
        training = workspace.training
        self.experiments = ExperimentManager(store, training.experiments, workspace.target)
        self.memory = ExperienceMemory(store, training)
        self._arms: list[PolicyArm] = []

    def plan(self, agent: Agent, active: PromptVersion | None, question: str) -> RunPlan:
        run_id = new_run_id()
        assignment = self.experiments.assign(run_id)
        if assignment is None:
            plan = RunPlan(run_id, agent, active.id if active else None, None)
        else:
            arm, version_id = assignment
            version = PromptStore(self.store).get(version_id)
            arm_agent = apply_prompt(agent, version.components,
                                     budget_share=self.workspace.training.memory.budget_share)
            plan = RunPlan(run_id, arm_agent, version.id, arm)
        if self.workspace.training.mode == "rl":
            self._choose_tools(plan, question)
        plan.agent, shown = self.memory.prepare(plan.agent, question)
        plan.metadata["experiences"] = shown
        return plan

    def _choose_tools(self, plan: RunPlan, question: str) -> None:
        """rl mode: the learned policy picks the tools, the step budget and a strategy hint."""
        agent = plan.agent
        arms = default_arms(agent.tools.names(), profile_tools=agent.tools.names(), max_steps=agent.spec.max_steps)
        x = features(question, root_stats(agent.root))
        arm = self._policies().load(arms).choose(x)
        instructions = f"{agent.spec.instructions}\n{arm.hint}" if arm.hint else None
        tools = default_registry(arm.tools, timeout=agent.tools.timeout)
        plan.agent = agent.variant(instructions=instructions, tools=tools, max_steps=arm.max_steps)
        plan.metadata = run_policy_metadata(arm, x)
        self._arms = arms

    def _policies(self) -> PolicyStore:
        settings = self.workspace.training.tool_policy
        return PolicyStore(self.store, kind=settings.policy, exploration=settings.exploration,
                           epsilon=settings.epsilon, rng=self.rng)

    def after_run(self, recorded: RecordedRun | None = None) -> list[str]:
        """Learn from the run (rl mode), conclude a finished experiment and honour the schedule;
        returns what happened, for the user."""
        notes: list[str] = []
        if recorded is not None:
            notes += self.memory.after_run(recorded.run_id, recorded.reference)
        run = self.store.get_run(recorded.run_id) if recorded is not None else None
        if run is not None and "policy_arm" in run.metadata and self._arms:
            weight = self.workspace.training.tool_policy.cost_weight
            reward = policy_reward(run_quality(run, self.workspace.target), run.model_calls,
                                   run.input_tokens + run.output_tokens, run.seconds, weight)
            self._policies().update(self._arms, run.metadata["policy_arm"],
                                    np.asarray(run.metadata["policy_features"]), reward)
        decision = self.experiments.maybe_conclude()
        if decision is not None:
            notes.append(decision.reason)
        training = self.workspace.training
        reason = check_triggers(self.store, training.optimization_schedule, self.workspace.target)
        if reason:
            data_dir = training.data_dir(self.workspace.root)
            child = start_background(self.workspace.root, data_dir, [], store=self.store, reason=reason)
            notes.append(f"started a background prompt optimization ({reason}); log: {data_dir / 'optimizer.log'}"
                         if child else f"optimization due ({reason}) but one is already running")
        return notes
