"""Learning from recorded runs: rewards, recording, prompt optimization, A/B experiments, the
schedule and the tool policy. Trainers for model weights (SFT, GRPO) are not built yet."""

from tongyi_agent.learn.rewards import BUILTIN_REWARDS, Reward, compute_rewards, custom_reward, task_reward

__all__ = ["BUILTIN_REWARDS", "Reward", "compute_rewards", "custom_reward", "task_reward"]
