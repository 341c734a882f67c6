"""Aggregates over recorded runs that the learners need, in SQL, so no other layer queries ``runs``.

A/B experiments find their runs by arm and prompt version; the schedule watches a rolling mean.
"""

from __future__ import annotations

from typing import Any

from tongyi_agent.store.rows import target_reward_sql
from tongyi_agent.store.trajectories import TrajectoryStore

# `ab_arm IS NOT NULL` lets SQLite use the partial index on ab_arm; the version check keeps runs of an
# earlier experiment (same arm names, other versions) out.
_ARM_RUNS = """r.ab_arm IS NOT NULL AND r.started_at >= :started
    AND ((r.ab_arm = 'control' AND r.prompt_version = :control)
         OR (r.ab_arm = 'treatment' AND r.prompt_version = :treatment))"""


def arm_summaries(store: TrajectoryStore, *, started: float, control: str, treatment: str,
                  target: str) -> list[dict[str, Any]]:
    """Per A/B arm (``control`` on version ``control``, ``treatment`` on ``treatment``) since ``started``:
    ``arm``, ``runs``, ``mean_reward`` (target; None when no run has it), ``success_rate``, ``mean_seconds``."""
    reward = target_reward_sql("r", ":name")
    rows = store.connection.execute(
        f"""SELECT r.ab_arm AS arm, COUNT(*) AS runs, AVG({reward}) AS mean_reward,
                   AVG(r.status = 'success') AS success_rate, AVG(r.seconds) AS mean_seconds
            FROM runs r WHERE {_ARM_RUNS} GROUP BY r.ab_arm""",
        {"started": started, "control": control, "treatment": treatment, "name": target},
    ).fetchall()
    return [dict(row) for row in rows]


def arm_rewards(store: TrajectoryStore, *, started: float, control: str, treatment: str, target: str,
                limit: int) -> list[tuple[str, str, float | None]]:
    """``(arm, question, target reward)`` of the first ``limit`` runs of an A/B experiment, oldest first."""
    reward = target_reward_sql("r", ":name")
    rows = store.connection.execute(
        f"""SELECT r.ab_arm AS arm, r.question AS question, {reward} AS reward FROM runs r
            WHERE {_ARM_RUNS} ORDER BY r.started_at, r.id LIMIT :limit""",
        {"started": started, "control": control, "treatment": treatment, "name": target, "limit": limit},
    ).fetchall()
    return [(row["arm"], row["question"], row["reward"]) for row in rows]


def recent_mean_reward(store: TrajectoryStore, target: str, window: int) -> tuple[int, float | None]:
    """(count, mean) of the target reward over the newest ``window`` runs that have one."""
    reward = target_reward_sql("r", ":name")
    # Newest first through the (started_at, id) index; the correlated reward lookup uses its covering index.
    row = store.connection.execute(
        f"""SELECT COUNT(*), AVG(reward) FROM (
                SELECT {reward} AS reward FROM runs r WHERE {reward} IS NOT NULL
                ORDER BY r.started_at DESC, r.id DESC LIMIT :window)""",
        {"name": target, "window": window},
    ).fetchone()
    return int(row[0]), None if row[1] is None else float(row[1])
