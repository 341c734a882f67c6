"""Training statistics computed entirely in SQL, so memory stays flat at any history size."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from tongyi_agent.store.rows import target_reward_sql
from tongyi_agent.store.trajectories import TrajectoryStore

TREND_DAYS = 30
DAY = 86_400.0
NO_VERSION = "(none)"  # key for runs recorded without a prompt version; JSON keys cannot be null


def compute_stats(
    source: TrajectoryStore | sqlite3.Connection,
    *,
    max_response_time: float,
    min_success_rate: float,
    min_tool_efficiency: float,
    target: str | None = None,
) -> dict[str, Any]:
    """Aggregate every run in the store.

    ``target`` names the reward used for ``reward_trend`` (mean of all reward names when None).
    On an empty store every average and rate is 0.0. A threshold's ``pass`` is None when there is
    no data to judge it (no runs, or no tool calls for tool efficiency), so that an empty history
    never looks like a performance drop. ``p95_response_time`` uses the nearest-rank method.
    """
    conn = source.connection if isinstance(source, TrajectoryStore) else source
    row = conn.execute(
        """SELECT COUNT(*), COALESCE(SUM(status = 'success'), 0), COALESCE(AVG(seconds), 0.0),
                  COALESCE(AVG(model_calls), 0.0), COALESCE(AVG(tool_calls), 0.0),
                  COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0)
           FROM runs"""
    ).fetchone()
    total, successes, avg_seconds, avg_model_calls, avg_tool_calls, in_tokens, out_tokens = tuple(row)
    tool_spans, ok_tool_spans = tuple(
        conn.execute("SELECT COUNT(*), COALESCE(SUM(error IS NULL), 0) FROM spans WHERE kind = 'tool'").fetchone()
    )
    success_rate = successes / total if total else 0.0
    efficiency = ok_tool_spans / tool_spans if tool_spans else 0.0
    return {
        "total_interactions": total,
        "successful_interactions": successes,
        "success_rate": success_rate,
        "average_response_time": avg_seconds,
        "p95_response_time": _p95_seconds(conn, total),
        "average_model_calls": avg_model_calls,
        "average_tool_calls": avg_tool_calls,
        "tool_usage_efficiency": efficiency,
        "total_input_tokens": in_tokens,
        "total_output_tokens": out_tokens,
        **_costs(conn),
        "average_reward": dict(conn.execute("SELECT name, AVG(value) FROM rewards GROUP BY name ORDER BY name")),
        "target": target,
        "reward_trend": _reward_trend(conn, target),
        "prompt_versions": _counts(conn, "prompt_version"),
        "models": _counts(conn, "model"),
        "thresholds": {
            "max_response_time": _threshold(avg_seconds, max_response_time, avg_seconds <= max_response_time, total),
            "min_success_rate": _threshold(success_rate, min_success_rate, success_rate >= min_success_rate, total),
            "min_tool_efficiency": _threshold(
                efficiency, min_tool_efficiency, efficiency >= min_tool_efficiency, tool_spans
            ),
        },
    }


def _p95_seconds(conn: sqlite3.Connection, total: int) -> float:
    if not total:
        return 0.0
    # Nearest rank: the ceil(0.95 n)-th smallest value; the runs_seconds index makes this an index walk.
    offset = math.ceil(0.95 * total) - 1
    row = conn.execute("SELECT seconds FROM runs ORDER BY seconds LIMIT 1 OFFSET ?", (offset,)).fetchone()
    return float(row[0]) if row else 0.0


def _reward_trend(conn: sqlite3.Connection, target: str | None) -> list[dict[str, Any]]:
    """Per UTC day: runs, mean target reward, mean seconds — for the 30 days ending at the newest run.

    Anchored on the newest run rather than today, so an old history still shows its last month.
    """
    newest = conn.execute("SELECT MAX(started_at) FROM runs").fetchone()[0]
    if newest is None:
        return []
    since = math.floor(newest / DAY) * DAY - (TREND_DAYS - 1) * DAY
    reward = target_reward_sql("r", ":name" if target else None)
    rows = conn.execute(
        f"""SELECT date(started_at, 'unixepoch') AS day, COUNT(*), AVG(reward), AVG(seconds)
            FROM (SELECT r.started_at, r.seconds, {reward} AS reward FROM runs r WHERE r.started_at >= :since)
            GROUP BY day ORDER BY day""",
        {"since": since, "name": target},
    )
    return [{"date": day, "count": n, "mean_reward": mean, "mean_seconds": secs} for day, n, mean, secs in rows]


def _counts(conn: sqlite3.Connection, column: str) -> dict[str, int]:
    # Few distinct models / prompt versions exist, so the grouped result is small whatever the history.
    rows = conn.execute(f"SELECT {column}, COUNT(*) FROM runs GROUP BY {column} ORDER BY COUNT(*) DESC, {column}")
    return {(NO_VERSION if key is None else key): n for key, n in rows}


def _threshold(value: float, threshold: float, passed: bool, evidence: int) -> dict[str, Any]:
    return {"value": value, "threshold": threshold, "pass": passed if evidence else None}


def _costs(conn: sqlite3.Connection) -> dict[str, float | None]:
    """Total cost, and cost per run and per successful run (runs of unknown cost left out)."""
    total, priced, per_success = conn.execute(
        """SELECT SUM(cost), AVG(cost), SUM(cost) / NULLIF(SUM(status = 'success' AND cost IS NOT NULL), 0)
           FROM runs"""
    ).fetchone()
    return {"total_cost": total or 0.0, "cost_per_run": priced or 0.0, "cost_per_successful_run": per_success}
