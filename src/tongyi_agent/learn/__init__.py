"""Learning from recorded runs: rewards now; optimizers, policies and trainers build on them."""

from tongyi_agent.learn.rewards import BUILTIN_REWARDS, Reward, compute_rewards, custom_reward, task_reward

__all__ = ["BUILTIN_REWARDS", "Reward", "compute_rewards", "custom_reward", "task_reward"]
