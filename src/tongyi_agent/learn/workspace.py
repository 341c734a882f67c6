"""Where a project's training data lives and how it is configured, resolved once per command."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tongyi_agent.config.environment import env_layers
from tongyi_agent.config.settings import resolve_root, user_config_dir
from tongyi_agent.config.training import TrainingConfig, load_training_config
from tongyi_agent.config.trust import Ignored, RootTrust, root_trust
from tongyi_agent.learn.evaluation.experiments import ExperimentManager
from tongyi_agent.learn.evaluation.tasks import CONFIRMED
from tongyi_agent.learn.schedule import schedule_status
from tongyi_agent.store import (
    ExperienceStore,
    TrajectoryStore,
    compute_stats,
    export_dpo,
    export_json,
    export_jsonl,
    export_sft,
    secret_values_from_env,
)
from tongyi_agent.store.prompts import PromptStore, PromptVersion

EXPORT_FORMATS = ("json", "jsonl", "sft", "dpo")
STORE_FILE = "trajectories.sqlite"
# tool_policy.POLICY_KEY (a test keeps them equal). tool_policy itself is imported only when a policy
# exists: it brings numpy, and `--training-stats` must start fast.
POLICY_KEY = "tool_policy"


def store_path(training: TrainingConfig, root: Path) -> Path:
    """The project's trajectory store: one SQLite file in the training data directory."""
    return training.data_dir(root) / STORE_FILE


@dataclass
class TrainingWorkspace:
    root: Path
    training: TrainingConfig
    env: dict[str, str] = field(repr=False)
    trust: RootTrust | None = None
    ignored: list[Ignored] = field(default_factory=list)  # the root's settings left out (untrusted root)

    @classmethod
    def load(cls, root: Path | str, *, enabled: bool | None = None, mode: str | None = None,
             env: dict[str, str] | None = None, trust_root: bool = False) -> TrainingWorkspace:
        """Raises ConfigError (one line) for a bad root, INI file or environment value.

        ``trust_root`` (--trust-root) honours the root's own storage and code settings for this load
        even when the user has not trusted the folder with ``tongyi-cli trust``."""
        root_path = resolve_root(root)
        config_dir = user_config_dir(env)
        trust = root_trust(root_path, config_dir, trust_root=trust_root)
        merged, env_ignored = env_layers(root_path, config_dir, env, trust=trust)
        training = load_training_config(root_path, config_dir, merged, enabled=enabled, mode=mode, trust=trust)
        return cls(root_path, training, merged, trust, training.ignored + env_ignored)

    @property
    def store_path(self) -> Path:
        return store_path(self.training, self.root)

    def has_data(self) -> bool:
        return self.store_path.is_file()

    def open_store(self) -> TrajectoryStore:
        """The project's store; created on first use. Secrets from the environment are redacted."""
        return TrajectoryStore(self.store_path, secrets=secret_values_from_env(self.env))

    @property
    def target(self) -> str:
        return self.training.prompt_optimization.optimization_target

    def stats(self, store: TrajectoryStore) -> dict[str, Any]:
        """The store's metrics plus the learning state: prompt optimization, A/B experiment, schedule."""
        metrics = self.training.performance_metrics
        stats = compute_stats(store, max_response_time=metrics.max_response_time,
                              min_success_rate=metrics.min_success_rate,
                              min_tool_efficiency=metrics.min_tool_efficiency, target=self.target)
        experiments = ExperimentManager(store, self.training.experiments, self.target)
        current = experiments.current()
        history = experiments.history()
        stats["prompt_optimization"] = json.loads(store.get_meta("optimizer.run") or "null")
        stats["fine_tuning"] = json.loads(store.get_meta("sft.run") or "null")  # written by sft_run
        stats["grpo"] = json.loads(store.get_meta("grpo.run") or "null")  # written by grpo_run
        stats["experiment"] = {
            "current": asdict(current) if current else None,
            "arms": experiments.arm_stats() if current else {},
            "last_result": history[-1].result if history else None,
        }
        stats["schedule"] = schedule_status(store)
        stats["tool_policy"] = _policy_summary(store)
        experiences = ExperienceStore(store)
        outcomes = experiences.usage_outcomes(self.target, min_reward=self.training.memory.min_reward,
                                              confirmed=CONFIRMED)
        stats["memory"] = {**experiences.counts(), **outcomes}
        active = PromptStore(store).active()
        stats["active_prompt_version"] = active.id if active else None
        return stats

    def config_summary(self) -> dict[str, Any]:
        """The training configuration as exported with the data (paths as strings)."""
        data = self.training.model_dump(mode="json", exclude={"files"})
        data["files"] = [str(p) for p in self.training.files]
        return data

    def export(self, path: Path, fmt: str = "json", *, min_reward: float | None = None,
               chunk_size: int | None = None, tools_schema: list[dict[str, Any]] | None = None) -> int:
        """Write the recorded runs to `path`; returns the number of records (DPO: pairs) written.

        `tools_schema` is what the SFT examples declare as the agent's tools."""
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
        with self.open_store() as store:
            if fmt == "json":
                return export_json(store, path, self.config_summary(), self.stats(store), min_reward, chunk_size,
                                   reward_name=self.target)
            if fmt == "jsonl":
                return export_jsonl(store, path, min_reward, chunk_size, reward_name=self.target)
            if fmt == "sft":
                return export_sft(store, path, tools_schema or [], min_reward, chunk_size, reward_name=self.target)
            return export_dpo(store, path, chunk_size=chunk_size, reward_name=self.target)

    def active_prompt(self) -> PromptVersion | None:
        """The active prompt version, when this project has a store with versions (never creates one)."""
        if not self.has_data():
            return None
        with self.open_store() as store:
            return PromptStore(store).active()


def _policy_summary(store: TrajectoryStore) -> list[dict[str, Any]]:
    """The learned tool policy's arms with pulls and mean reward; empty before rl mode was used."""
    raw = store.get_meta(POLICY_KEY)
    if not raw:
        return []
    from tongyi_agent.learn.policy.tool_policy import PolicyArm, PolicyStore

    try:
        data = json.loads(raw)
        arms = [PolicyArm.from_dict(arm) for arm in data["arms"]]
        return PolicyStore(store).load(arms, int(data["dim"])).summary()
    except (ValueError, KeyError, TypeError):
        return []
