"""Typed records of what happened in a run. The list of steps is the trajectory."""

from __future__ import annotations

from dataclasses import dataclass, field

from tongyi_agent.agent.evidence import Evidence
from tongyi_agent.llm.base import ChatResponse, ToolCall, Usage
from tongyi_agent.tools.base import SourceRef, ToolResult


@dataclass
class ParsedTurn:
    """What a dialect understood from one model response."""

    thought: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    error: str | None = None  # malformed output; told to the model


@dataclass
class ModelStep:
    index: int
    response: ChatResponse
    parsed: ParsedTurn
    seconds: float
    forced: bool = False


@dataclass
class ToolStep:
    index: int
    call: ToolCall
    result: ToolResult
    seconds: float
    skipped: str | None = None  # why the call was not executed (repeat guard)


@dataclass
class NoteStep:
    """Something the loop told the model or decided (repeat guard, malformed output, forced answer)."""

    index: int
    text: str


Step = ModelStep | ToolStep | NoteStep


@dataclass
class RunResult:
    question: str
    answer: str
    sources: list[SourceRef]
    steps: list[Step]
    model: str
    seconds: float
    usage: Usage
    stop_reason: str  # "answer", "forced", "error"
    error: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    routing: dict[str, str] | None = None  # set when the run switched to the fallback model
    experiences: list[int] = field(default_factory=list)  # ids of the worked examples the run was shown
    grounded: bool | None = None  # every key fact of the answer came from a tool result; None: not checked
    unsupported: list[str] = field(default_factory=list)  # the key facts no tool result contained

    @property
    def verification_rate(self) -> float | None:
        """Share of the answer's checkable claims that the cited tool results support."""
        return sum(e.verified for e in self.evidence) / len(self.evidence) if self.evidence else None

    @property
    def model_calls(self) -> int:
        return sum(isinstance(s, ModelStep) for s in self.steps)

    @property
    def tool_calls(self) -> list[ToolStep]:
        return [s for s in self.steps if isinstance(s, ToolStep)]

    def render_sources(self) -> str:
        return "\n".join(f"- {s.label()}" for s in self.sources)
