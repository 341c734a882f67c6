"""Trajectory store: every run, its spans and rewards in one SQLite file, plus stats and exports.

The only layer that opens SQLite; it imports nothing else from ``tongyi_agent``.
"""

from tongyi_agent.store.db import StoreError, connect
from tongyi_agent.store.experiences import Experience, ExperienceStore, ExperienceUse, UseChanges
from tongyi_agent.store.export import export_dpo, export_json, export_jsonl, export_sft
from tongyi_agent.store.migrations import MIGRATIONS, applied_migrations, migrate
from tongyi_agent.store.prompts import PromptStore, PromptVersion
from tongyi_agent.store.records import RewardRecord, RunRecord, SpanRecord, new_run_id
from tongyi_agent.store.redact import REDACTED, redact, secret_values_from_env
from tongyi_agent.store.stats import compute_stats
from tongyi_agent.store.trajectories import USER_FEEDBACK, StoreTransaction, TrajectoryStore

__all__ = [
    "MIGRATIONS",
    "REDACTED",
    "USER_FEEDBACK",
    "Experience",
    "ExperienceStore",
    "ExperienceUse",
    "PromptStore",
    "PromptVersion",
    "RewardRecord",
    "RunRecord",
    "SpanRecord",
    "StoreError",
    "StoreTransaction",
    "TrajectoryStore",
    "UseChanges",
    "applied_migrations",
    "compute_stats",
    "connect",
    "export_dpo",
    "export_json",
    "export_jsonl",
    "export_sft",
    "migrate",
    "new_run_id",
    "redact",
    "secret_values_from_env",
]
