"""Streaming exports of recorded runs: the guide's JSON format, JSONL, and (re-exported) SFT and DPO.

Every writer pulls runs from ``TrajectoryStore.iter_runs`` one batch at a time and writes each
interaction as soon as it is built, so memory stays flat however large the history is. Text is
redacted once more on the way out, for rows written before a secret was known to the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tongyi_agent.store.chat_export import export_dpo, export_sft
from tongyi_agent.store.output import ChunkedOutput
from tongyi_agent.store.records import RunRecord
from tongyi_agent.store.redact import redact
from tongyi_agent.store.trajectories import TrajectoryStore

EXPORT_VERSION = "1.0"

__all__ = ["export_dpo", "export_json", "export_jsonl", "export_sft", "interaction", "iso_timestamp"]


def iso_timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def interaction(run: RunRecord, reward_name: str | None = None) -> dict[str, Any]:
    """One run in the guide's ``interactions`` shape (plus the store's extra fields)."""
    return {
        "timestamp": iso_timestamp(run.started_at),
        "query": run.question,
        "response": run.answer,
        "response_time": run.seconds,
        "success": run.status == "success",
        "tools_used": run.tools_used,
        "query_length": len(run.question),
        "response_length": len(run.answer),
        "reward": run.reward(reward_name),
        "rewards": {name: run.reward(name) for name in dict.fromkeys(r.name for r in run.rewards)},
        "model": run.model,
        "cost": run.cost,
        "grounded": run.grounded,
        "run_id": run.id,
        "status": run.status,
        "prompt_version": run.prompt_version,
        "training_mode": run.training_mode,
        "sources": run.sources,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
    }


def export_json(
    store: TrajectoryStore,
    path: Path,
    config: dict[str, Any],
    metrics: dict[str, Any],
    min_reward: float | None = None,
    chunk_size: int | None = None,
    *,
    reward_name: str | None = None,
) -> int:
    """Write ``{"version", "export_timestamp", "config", "metrics", "interactions": [...]}``.

    The document is written incrementally (header, one interaction at a time, footer) instead of
    ``json.dump`` of a full list. With ``chunk_size`` each chunk file is a complete document with the
    same header. Returns the number of interactions written.
    """
    header = json.dumps(
        {
            "version": EXPORT_VERSION,
            "export_timestamp": datetime.now(tz=UTC).isoformat(),
            "config": redact(config, store.secrets),
            "metrics": metrics,
        },
        ensure_ascii=False,
        indent=2,
        default=str,
    )
    # Reopen the header object so the interactions list can follow it: '{ ... }' -> '{ ..., "interactions": ['.
    opener = header[: header.rstrip().rfind("}")].rstrip() + ',\n  "interactions": [\n'
    out = ChunkedOutput(
        Path(path), chunk_size, opener=lambda _: opener, closer="\n  ]\n}\n", separator=",\n", terminator=""
    )
    with out:
        for run in store.iter_runs(min_reward=min_reward, reward_name=reward_name):
            item = redact(interaction(run, reward_name), store.secrets)
            out.write("    " + json.dumps(item, ensure_ascii=False, default=str))
    return out.items


def export_jsonl(
    store: TrajectoryStore,
    path: Path,
    min_reward: float | None = None,
    chunk_size: int | None = None,
    *,
    reward_name: str | None = None,
) -> int:
    """One interaction (same shape as in ``export_json``) per line. Returns the number written."""
    with ChunkedOutput(Path(path), chunk_size) as out:
        for run in store.iter_runs(min_reward=min_reward, reward_name=reward_name):
            out.write(json.dumps(redact(interaction(run, reward_name), store.secrets), ensure_ascii=False, default=str))
    return out.items
