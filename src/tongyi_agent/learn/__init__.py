"""Learning from recorded runs, grouped by what is learned:

- `memory`: worked examples from confirmed runs (experience memory);
- `prompt/`: prompt search, demonstration sets and the prompt-optimization run;
- `policy/`: the learned tool policy (rl mode);
- `weights/`: SFT and GRPO trainers, LoRA adapters in GGUF, and their gate and promotion;
- `evaluation/`: tasks, rewards, the held-out promotion gate and A/B experiments, which all of the
  above judge by.

The plumbing around every run stays here: `recording` (a run as a stored trajectory), `lifecycle`
(what happens before and after each run), `schedule` (background optimization), `workspace` (where a
project's training data lives) and `agl_rollout` (one Agent Lightning rollout).

The reward names are re-exported lazily: importing one learner (`learn.evaluation.experiments` for
`prompts list`) must not pull in the rewards, and through them the agent loop and every tool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tongyi_agent.learn.evaluation.rewards import (
        BUILTIN_REWARDS,
        Reward,
        compute_rewards,
        custom_reward,
        task_reward,
    )

__all__ = ["BUILTIN_REWARDS", "Reward", "compute_rewards", "custom_reward", "task_reward"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tongyi_agent.learn.evaluation.rewards"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
