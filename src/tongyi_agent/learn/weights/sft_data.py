"""Supervised fine-tuning data from recorded runs, in the agent's own protocol.

Every model call of a run is recorded as an llm span whose input is exactly the messages the model
saw (system prompt with the dialect's tool description, question, earlier turns, observations) and
whose output is the text it wrote. One example per call: the input as the prompt, the reply as the
completion, so training teaches the model to write what the good runs wrote at each step, and the
loss falls on the reply only (TRL's conversational prompt-completion format).

Only runs worth imitating are used: successful, with a target reward of at least ``min_reward``, at
least one tool call, every cited claim verified against a tool result (``verification_rate`` 1
with some evidence), and a correct answer when the run was a task with a known answer. Calls
answered with native tool calls are skipped: the embedded models speak a text protocol, and
training them on another would teach them a format they are never shown.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tongyi_agent.store import TrajectoryStore
from tongyi_agent.store.records import RunRecord, SpanRecord
from tongyi_agent.store.redact import redact

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class SftExample:
    """One model call to imitate: the messages it was given and the reply it wrote."""

    prompt: list[dict[str, str]]
    completion: str
    run_id: str

    def to_trl(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion row."""
        return {"prompt": self.prompt, "completion": [{"role": "assistant", "content": self.completion}],
                "run_id": self.run_id}


@dataclass
class SftDataset:
    examples: list[SftExample] = field(default_factory=list)
    runs_used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> runs


def build_sft_dataset(store: TrajectoryStore, *, min_reward: float, reward_name: str | None = None,
                      exclude_questions: Iterable[str] = ()) -> SftDataset:
    """Select the runs worth imitating and turn each of their model calls into an example.

    ``exclude_questions`` keeps held-out evaluation questions out of the training data."""
    excluded = {q.strip() for q in exclude_questions}
    dataset = SftDataset()
    for run in store.iter_runs(reward_name=reward_name):
        reason = rejection_reason(run, min_reward, reward_name)
        if reason is None and run.question.strip() in excluded:
            reason = "held-out question"
        examples = [] if reason else list(examples_from_spans(store.iter_spans(run.id), run.id))
        if reason is None and not examples:
            reason = "no text-protocol model call"
        if reason:
            dataset.skipped[reason] += 1
            continue
        dataset.runs_used += 1
        dataset.examples.extend(SftExample(redact(ex.prompt, store.secrets), redact(ex.completion, store.secrets),
                                           ex.run_id) for ex in examples)
    return dataset


def rejection_reason(run: RunRecord, min_reward: float, reward_name: str | None = None) -> str | None:
    """Why a run is not imitated, or None when it is."""
    if run.status != "success":
        return "not successful"
    reward = run.reward(reward_name)
    if reward is None or reward < min_reward:
        return f"reward below {min_reward:g}"
    task = [r.value for r in run.rewards if r.name == "task" and r.value is not None]
    if task and min(task) < 1.0:
        return "wrong answer to its task"
    if run.tool_calls == 0:
        return "answered without looking anything up"
    evidence = run.metadata.get("evidence") or []
    if not evidence or float(run.metadata.get("verification_rate") or 0.0) < 1.0:
        return "citations not all verified"
    return None


def examples_from_spans(spans: Iterable[SpanRecord], run_id: str) -> Iterator[SftExample]:
    for span in spans:
        if span.kind != "llm" or not isinstance(span.input, list):
            continue
        output = span.output if isinstance(span.output, dict) else {"content": span.output}
        text = output.get("content")
        if output.get("tool_calls") or not isinstance(text, str) or not text.strip():
            continue
        prompt = [_plain(m) for m in span.input if isinstance(m, dict)]
        if prompt and None not in prompt:
            yield SftExample([m for m in prompt if m is not None], text, run_id)


def _plain(message: dict[str, Any]) -> dict[str, str] | None:
    role, content = message.get("role"), message.get("content")
    if role not in ROLES or not isinstance(content, str) or message.get("tool_calls"):
        return None  # a native tool turn: not part of a text-protocol conversation
    return {"role": role, "content": content}


def write_jsonl(examples: Iterable[SftExample], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_trl(), ensure_ascii=False) + "\n")
            count += 1
    return count
