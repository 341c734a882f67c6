"""Small builders for runs and spans that follow the span contract in ``store/records.py``."""

from __future__ import annotations

from typing import Any

from tongyi_agent.store import RewardRecord, RunRecord, SpanRecord
from tongyi_agent.store.records import RunStatus

DAY0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make_run(
    question: str = "What does core.py do?",
    *,
    answer: str = "It adds numbers [src/core.py:1].",
    status: RunStatus = "success",
    seconds: float = 1.0,
    started_at: float = DAY0,
    **fields: Any,
) -> RunRecord:
    fields.setdefault("model", "test-model")
    return RunRecord(question=question, answer=answer, status=status, seconds=seconds, started_at=started_at,
                     backend="scripted", dialect="native", **fields)  # fmt: skip


def make_spans(question: str = "What does core.py do?", answer: str = "It adds numbers.",
               tool_error: str | None = None) -> list[SpanRecord]:
    """system+user → assistant calls read_file → tool result → final answer (2 llm spans, 1 tool span)."""
    system = {"role": "system", "content": "You are a research assistant."}
    user = {"role": "user", "content": question}
    call = {"id": "call_1", "name": "read_file", "arguments": {"path": "src/core.py"}}
    first_out = {"content": None, "tool_calls": [call]}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    tool_msg = {"role": "tool", "tool_call_id": "call_1", "content": "def add(a, b): return a + b"}
    return [
        SpanRecord(0, "llm", "test-model", [system, user], first_out, input_tokens=20, output_tokens=5),
        SpanRecord(1, "tool", "read_file", {"path": "src/core.py"}, "def add(a, b): return a + b",
                   error=tool_error, attributes={"tool_call_id": "call_1"}),
        SpanRecord(2, "llm", "test-model", [system, user, assistant, tool_msg],
                   {"content": answer, "tool_calls": []}, input_tokens=40, output_tokens=8),
    ]


def make_rewards(value: float | None = 1.0, name: str = "task_success") -> list[RewardRecord]:
    return [RewardRecord(name, value, "builtin", None, DAY0)]
