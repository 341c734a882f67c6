"""Mapping between records and table rows, and the SQL fragments the store, stats and exports share."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tongyi_agent.store.records import RewardRecord, RunRecord, SpanRecord

RUN_COLUMNS = (
    "id", "question", "answer", "status", "model", "backend", "dialect", "prompt_version", "training_mode",
    "root", "started_at", "seconds", "input_tokens", "output_tokens", "model_calls", "tool_calls",
    "tools_used", "sources", "error", "stop_reason", "metadata", "ab_arm", "cost", "grounded",
)  # fmt: skip
JSON_RUN_COLUMNS = frozenset({"tools_used", "sources", "metadata"})
INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
INSERT_SPAN = (
    "INSERT INTO spans (run_id, seq, kind, name, input, output, started_at, duration, input_tokens,"
    " output_tokens, error, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_REWARD = "INSERT INTO rewards (run_id, name, value, source, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)"


def target_reward_sql(run_alias: str, name_param: str | None) -> str:
    """SQL for a run's target reward: mean of its non-NULL rewards named ``name_param`` (all names if None).

    Must agree with ``RunRecord.reward``.
    """
    name_clause = f" AND w.name = {name_param}" if name_param else ""
    return f"(SELECT AVG(w.value) FROM rewards w WHERE w.run_id = {run_alias}.id{name_clause})"


def dumps(value: Any) -> str:
    # default=str: a stray Path or datetime in metadata should not lose the whole run.
    return json.dumps(value, ensure_ascii=False, default=str)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def run_from_row(row: sqlite3.Row) -> RunRecord:
    """A run without its rewards (callers attach them, batched)."""
    data = {c: row[c] for c in RUN_COLUMNS}
    for c in JSON_RUN_COLUMNS:
        data[c] = loads(data[c])
    data["grounded"] = None if data["grounded"] is None else bool(data["grounded"])
    return RunRecord(**data)


def reward_from_row(row: sqlite3.Row) -> RewardRecord:
    return RewardRecord(row["name"], row["value"], row["source"], row["detail"], row["created_at"])


def span_from_row(row: sqlite3.Row) -> SpanRecord:
    return SpanRecord(
        seq=row["seq"], kind=row["kind"], name=row["name"], input=loads(row["input"]), output=loads(row["output"]),
        started_at=row["started_at"], duration=row["duration"], input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"], error=row["error"], attributes=loads(row["attributes"]) or {},
    )  # fmt: skip
