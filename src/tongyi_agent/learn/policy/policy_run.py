"""`--optimize` in rl mode: refit the tool policy from every recorded run that carries a policy choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tongyi_agent.learn.policy.tool_policy import PolicyStore, batch_update, default_arms
from tongyi_agent.learn.workspace import TrainingWorkspace


@dataclass
class PolicyReport:
    runs_used: int
    arms: list[dict[str, Any]]  # arm, pulls, mean_reward
    policy: str


def optimize_tool_policy(workspace: TrainingWorkspace, tool_names: list[str], max_steps: int) -> PolicyReport:
    """Replay the recorded rl-mode runs into a fresh policy and save it (no model is called)."""
    settings = workspace.training.tool_policy
    arms = default_arms(tool_names, profile_tools=tool_names, max_steps=max_steps)
    with workspace.open_store() as store:
        policies = PolicyStore(store, kind=settings.policy, exploration=settings.exploration,
                               epsilon=settings.epsilon)
        policy = policies.load(arms)
        used = batch_update(store, policy, workspace.target, settings.cost_weight)
        policies.save(policy)
    return PolicyReport(used, policy.summary(), settings.policy)

