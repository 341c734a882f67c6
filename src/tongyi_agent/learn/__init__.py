"""Learning from recorded runs: rewards, recording, prompt optimization, A/B experiments, the
schedule, the tool policy and the trainers for model weights (SFT, GRPO).

The reward names are re-exported lazily: importing one learner (`learn.experiments` for
`prompts list`) must not pull in the rewards, and through them the agent loop and every tool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tongyi_agent.learn.rewards import BUILTIN_REWARDS, Reward, compute_rewards, custom_reward, task_reward

__all__ = ["BUILTIN_REWARDS", "Reward", "compute_rewards", "custom_reward", "task_reward"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tongyi_agent.learn.rewards"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
