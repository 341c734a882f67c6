"""Chat-format training exports: SFT conversations with tool calls, and DPO preference pairs.

Both read the span contract documented in ``records.py``: the last llm span's input messages plus
its output are the whole conversation. Output follows OpenAI's fine-tuning formats, which TRL reads
as well (``messages`` + ``tools`` for SFT; ``input`` / ``preferred_output`` / ``non_preferred_output``
for DPO).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tongyi_agent.store.output import ChunkedOutput
from tongyi_agent.store.records import RunRecord, SpanRecord
from tongyi_agent.store.redact import redact
from tongyi_agent.store.rows import reward_from_row, run_from_row, target_reward_sql
from tongyi_agent.store.trajectories import TrajectoryStore

QUESTION_BATCH = 200


def export_sft(
    store: TrajectoryStore,
    path: Path,
    tools_schema: list[dict[str, Any]],
    min_reward: float | None = None,
    chunk_size: int | None = None,
    *,
    reward_name: str | None = None,
    statuses: Iterable[str] = ("success",),
) -> int:
    """Write one ``{"messages": [...], "tools": [...]}`` line per run; return the number written.

    Only runs whose status is in ``statuses`` (default: successful ones; training on failures teaches
    failure) and that have at least one llm span are exported. ``tools_schema`` entries may be OpenAI
    tool dicts or bare function dicts (``{"name", "description", "parameters"}``); both are written in
    the OpenAI shape.
    """
    wanted = frozenset(statuses)
    tools = [t if t.get("type") == "function" else {"type": "function", "function": t} for t in tools_schema]
    with ChunkedOutput(Path(path), chunk_size) as out:
        for run in store.iter_runs(min_reward=min_reward, reward_name=reward_name):
            if run.status not in wanted:
                continue
            messages = conversation(store.iter_spans(run.id))
            if messages:
                line = {"messages": redact(messages, store.secrets), "tools": tools}
                out.write(json.dumps(line, ensure_ascii=False, default=str))
    return out.items


def export_dpo(
    store: TrajectoryStore,
    path: Path,
    min_gap: float = 0.0,
    chunk_size: int | None = None,
    *,
    reward_name: str | None = None,
    max_pairs_per_question: int | None = None,
) -> int:
    """Write preference pairs from runs of the same question whose target rewards differ.

    For each question asked more than once, the best-rewarded run is paired with every run whose
    reward is lower by more than 0 and at least ``min_gap`` (worst first, up to
    ``max_pairs_per_question``). Runs without a target reward are ignored. Returns the pair count.
    """
    with ChunkedOutput(Path(path), chunk_size) as out:
        for question in _repeated_questions(store):
            ranked = _ranked_runs(store, question, reward_name)
            best = next(ranked, None)
            ranked.close()  # finalises the cursor now rather than whenever it is garbage-collected
            if best is None:
                continue
            best_reward = best.reward(reward_name)
            assert best_reward is not None
            prompt = _prompt_messages(store, best)
            preferred = [{"role": "assistant", "content": best.answer}]
            # Worst first, so the loop can stop at the first run too close to the best.
            for written, other in enumerate(_ranked_runs(store, question, reward_name, ascending=True)):
                other_reward = other.reward(reward_name)
                assert other_reward is not None
                gap = best_reward - other_reward
                if other.id == best.id or gap <= 0 or gap < min_gap:
                    break  # ascending order: every later run is at least as close to the best
                if max_pairs_per_question is not None and written >= max_pairs_per_question:
                    break
                pair = {
                    "input": {"messages": prompt},
                    "preferred_output": preferred,
                    "non_preferred_output": [{"role": "assistant", "content": other.answer}],
                }
                out.write(json.dumps(redact(pair, store.secrets), ensure_ascii=False, default=str))
    return out.items


def conversation(spans: Iterable[SpanRecord]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages of a run: the last llm span's input messages plus its output."""
    last = None
    for span in spans:
        if span.kind == "llm":
            last = span
    if last is None or not isinstance(last.input, list):
        return []
    messages = [_openai_message(m) for m in last.input if isinstance(m, dict)]
    output = last.output if isinstance(last.output, dict) else {"content": last.output}
    messages.append(_openai_message({"role": "assistant", **output}))
    return messages


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False, default=str)
    out: dict[str, Any] = {"role": role, "content": content}
    calls = message.get("tool_calls") or []
    if role == "assistant" and calls:
        out["tool_calls"] = [_openai_tool_call(c) for c in calls]
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
        if content is None:
            out["content"] = ""
    return out


def _openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    if "function" in call:  # already in OpenAI shape
        fn = call["function"]
        name, arguments = fn.get("name"), fn.get("arguments")
    else:
        name, arguments = call.get("name"), call.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False, default=str)
    return {"id": call.get("id"), "type": "function", "function": {"name": name, "arguments": arguments}}


def _prompt_messages(store: TrajectoryStore, run: RunRecord) -> list[dict[str, Any]]:
    """The messages before the model's first turn (system + user); just the question if none were recorded."""
    for span in store.iter_spans(run.id):
        if span.kind == "llm" and isinstance(span.input, list):
            prompt = []
            for message in span.input:
                if isinstance(message, dict) and message.get("role") in ("system", "user"):
                    prompt.append(_openai_message(message))
                else:
                    break
            if prompt:
                return prompt
            break
    return [{"role": "user", "content": run.question}]


def _repeated_questions(store: TrajectoryStore) -> Iterator[str]:
    # Keyset over the runs_question index: a batch of questions per query, never all of them at once.
    last = ""
    sql = "SELECT question FROM runs WHERE question > ? GROUP BY question HAVING COUNT(*) > 1 ORDER BY question LIMIT ?"
    while True:
        rows = store.connection.execute(sql, (last, QUESTION_BATCH)).fetchall()
        if not rows:
            return
        yield from (row[0] for row in rows)
        last = rows[-1][0]


def _ranked_runs(
    store: TrajectoryStore, question: str, reward_name: str | None, *, ascending: bool = False
) -> Iterator[RunRecord]:
    """Runs of one question with a target reward, best first (or worst first), rewards attached."""
    target = target_reward_sql("r", ":name" if reward_name else None)
    order = "ASC" if ascending else "DESC"
    cursor = store.connection.execute(
        f"SELECT r.* FROM runs r WHERE r.question = :q AND {target} IS NOT NULL"
        f" ORDER BY {target} {order}, r.started_at, r.id",
        {"q": question, "name": reward_name},
    )
    # A per-row reward query keeps this a stream even for a question asked thousands of times.
    for row in cursor:
        run = run_from_row(row)
        run.rewards = [reward_from_row(r) for r in store.connection.execute(
            "SELECT * FROM rewards WHERE run_id = ? ORDER BY id", (run.id,))]  # fmt: skip
        yield run
