"""Typed records the store reads and writes: a run, its spans, its rewards.

Span contract (the recorder writes it, the SFT/DPO exporters read it)
--------------------------------------------------------------------
``kind == "llm"`` — one model call:

* ``input``: the full message list sent to the model, each message a dict
  ``{"role": "system"|"user"|"assistant"|"tool", "content": str | None,
  "tool_calls"?: [{"id": str, "name": str, "arguments": dict | str}],  # assistant only
  "tool_call_id"?: str}``                                               # tool only
* ``output``: ``{"content": str | None, "tool_calls": [{"id": str, "name": str, "arguments": dict | str}]}``
  (``tool_calls`` empty or absent when the model answered in text).
* ``name``: the model name; ``input_tokens``/``output_tokens``: that call's usage.

``kind == "tool"`` — one tool call:

* ``name``: the tool name; ``input``: the arguments dict; ``output``: the observation (str or
  JSON-serialisable value); ``error``: set when the tool failed (counts against tool efficiency);
  ``attributes["tool_call_id"]``: the id of the model's call it answers, when there is one.

Because every llm span carries the whole conversation so far, the last llm span's input plus its
output is the complete trajectory; exporters rely on that rather than stitching spans together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["success", "failed", "forced"]
SpanKind = Literal["llm", "tool"]
RewardSource = Literal["builtin", "custom", "user", "task"]

RUN_STATUSES: frozenset[str] = frozenset({"success", "failed", "forced"})
SPAN_KINDS: frozenset[str] = frozenset({"llm", "tool"})
REWARD_SOURCES: frozenset[str] = frozenset({"builtin", "custom", "user", "task"})


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RewardRecord:
    """One named score for a run. ``value is None`` means missing (e.g. a custom reward that raised)."""

    name: str
    value: float | None
    source: RewardSource = "builtin"
    detail: str | None = None
    created_at: float = 0.0


@dataclass
class SpanRecord:
    """One LLM or tool call inside a run; see the module docstring for ``input``/``output``."""

    seq: int
    kind: SpanKind
    name: str
    input: Any = None
    output: Any = None
    started_at: float = 0.0
    duration: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """One answered (or failed) question. ``rewards`` is filled when read back from the store."""

    question: str
    answer: str
    status: RunStatus
    model: str = ""
    backend: str = ""
    dialect: str = ""
    prompt_version: str | None = None
    training_mode: str | None = None
    root: str = ""
    started_at: float = 0.0
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    tools_used: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # {"path", "line", "text"}
    error: str | None = None
    stop_reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    ab_arm: str | None = None  # which A/B arm served the run (migration m002); None outside experiments
    cost: float | None = None  # USD at the model's prices (migration m004); None when unknown
    grounded: bool | None = None  # answer's key facts all in tool results (migration m007); None: not checked
    id: str = field(default_factory=new_run_id)
    rewards: list[RewardRecord] = field(default_factory=list)

    def reward(self, name: str | None = None) -> float | None:
        """The run's target reward: mean of the non-missing values named ``name`` (all names if None).

        The same definition is used in SQL by ``iter_runs(min_reward=...)`` and ``compute_stats``.
        """
        values = [r.value for r in self.rewards if r.value is not None and (name is None or r.name == name)]
        return sum(values) / len(values) if values else None
