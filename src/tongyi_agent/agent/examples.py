"""Worked examples: earlier, confirmed runs replayed as conversation turns in the model's own dialect.

A small model copies what it sees done far better than it follows rewritten instructions, so an
example shows the whole move: the question, each tool call with its arguments, what came back, and
the final answer. Examples share the context window with the run itself, so they get a fixed token
budget: observations are shortened first (keeping the lines the answer cited), and only then are
whole examples dropped, the least similar first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tongyi_agent.agent.context import CHARS_PER_TOKEN
from tongyi_agent.agent.dialects import Dialect
from tongyi_agent.llm.base import ChatMessage, ToolCall

# Observation lengths (characters) tried in turn until the examples fit; 0 keeps only a marker.
OBSERVATION_CAPS = (1200, 600, 300, 120, 0)
_GAP = "[…]"
INTRO = "Worked example (an earlier question in this folder, answered correctly):\n"


@dataclass
class ExampleStep:
    tool: str
    arguments: dict[str, Any]
    observation: str
    thought: str = ""


@dataclass
class WorkedExample:
    id: int
    question: str
    steps: list[ExampleStep]
    answer: str
    cited: list[str] = field(default_factory=list)  # text of the lines the answer cited

    @classmethod
    def from_trajectory(cls, example_id: int, question: str, answer: str, trajectory: dict[str, Any]) -> WorkedExample:
        """From the compact trajectory an experience stores (see learn/memory.py)."""
        steps = [ExampleStep(str(s.get("tool", "")), dict(s.get("arguments") or {}), str(s.get("observation", "")),
                             str(s.get("thought", ""))) for s in trajectory.get("steps", [])]
        cited = [str(c.get("text", "")) for c in trajectory.get("cited", []) if isinstance(c, dict)]
        return cls(example_id, question, steps, answer, [c for c in cited if c.strip()])


def render_examples(examples: list[WorkedExample], dialect: Dialect, *,
                    budget_tokens: int) -> tuple[list[ChatMessage], list[int]]:
    """Messages for as many of ``examples`` (most similar first) as fit in ``budget_tokens``, and the
    ids of those shown."""
    budget_chars = int(budget_tokens * CHARS_PER_TOKEN)
    chosen = list(examples)
    while chosen:
        for cap in OBSERVATION_CAPS:
            messages = [m for example in chosen for m in example_messages(example, dialect, cap)]
            if message_chars(messages) <= budget_chars:
                return messages, [example.id for example in chosen]
        chosen.pop()  # the least similar goes first
    return [], []


def example_messages(example: WorkedExample, dialect: Dialect, observation_cap: int) -> list[ChatMessage]:
    messages = [ChatMessage("user", INTRO + example.question)]
    for n, step in enumerate(example.steps):
        call = ToolCall(id=f"example{example.id}_call_{n}", name=step.tool, arguments=step.arguments)
        messages.append(dialect.call_message(step.thought, call))
        messages.extend(dialect.observation_messages([(call, shorten(step.observation, observation_cap,
                                                                     example.cited))]))
    messages.append(dialect.answer_message("", example.answer))
    return messages


def shorten(text: str, cap: int, keep: list[str]) -> str:
    """``text`` within ``cap`` characters: lines holding a cited text first, then the others in order,
    shown in their original order with a marker where lines were left out."""
    if len(text) <= cap:
        return text
    lines = text.splitlines()
    wanted = [i for i, line in enumerate(lines) if any(k.strip() and k.strip() in line for k in keep)]
    order = wanted + [i for i in range(len(lines)) if i not in wanted]
    picked: set[int] = set()
    used = 0
    for i in order:
        size = len(lines[i]) + 1
        if used + size > cap:
            continue
        picked.add(i)
        used += size
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in picked:
            out.append(line)
        elif not out or out[-1] != _GAP:
            out.append(_GAP)
    return "\n".join(out)


def message_chars(messages: list[ChatMessage]) -> int:
    """Characters a list of messages puts into the context (tool calls as their JSON)."""
    total = 0
    for m in messages:
        total += len(m.content)
        total += sum(len(c.name) + len(json.dumps(c.arguments)) for c in m.tool_calls)
    return total
