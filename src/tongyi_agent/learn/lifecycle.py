"""What happens around each recorded run, wherever it runs (CLI, REPL, Python API):

before: an A/B experiment may assign the run to an arm, and the run uses that arm's prompt;
after: a finished experiment is concluded (promotion or rollback), and the optimization schedule
may start a background optimization.
"""

from __future__ import annotations

from dataclasses import dataclass

from tongyi_agent.agent.loop import Agent
from tongyi_agent.learn.experiments import ExperimentManager
from tongyi_agent.learn.schedule import check_triggers, start_background
from tongyi_agent.learn.workspace import TrainingWorkspace
from tongyi_agent.store import TrajectoryStore, new_run_id
from tongyi_agent.store.prompts import PromptStore, PromptVersion


@dataclass
class RunPlan:
    """How one run is set up: its id, its agent (with the arm's prompt) and what to record."""

    run_id: str
    agent: Agent
    prompt_version: str | None
    ab_arm: str | None


class Lifecycle:
    def __init__(self, workspace: TrainingWorkspace, store: TrajectoryStore) -> None:
        self.workspace = workspace
        self.store = store
        training = workspace.training
        self.experiments = ExperimentManager(store, training.experiments, workspace.target)

    def plan(self, agent: Agent, active: PromptVersion | None) -> RunPlan:
        run_id = new_run_id()
        assignment = self.experiments.assign(run_id)
        if assignment is None:
            return RunPlan(run_id, agent, active.id if active else None, None)
        arm, version_id = assignment
        version = PromptStore(self.store).get(version_id)
        arm_agent = agent.variant(instructions=version.components.get("system"),
                                  forced_answer=version.components.get("forced_answer"))
        return RunPlan(run_id, arm_agent, version.id, arm)

    def after_run(self) -> list[str]:
        """Conclude a finished experiment and honour the schedule; returns what happened, for the user."""
        notes: list[str] = []
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
