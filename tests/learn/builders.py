"""RunResult builders: trajectories assembled from the agent's own step dataclasses."""

from __future__ import annotations

from tongyi_agent.agent.steps import ModelStep, NoteStep, ParsedTurn, RunResult, Step, ToolStep
from tongyi_agent.llm.base import ChatResponse, ToolCall, Usage
from tongyi_agent.tools.base import SourceRef, ToolResult

PORT_LINE = SourceRef("conf/app.ini", 3, "port = 8080")
FABRICATED = SourceRef("made/up.py", 99, "port = 8080")


def model_step(steps: list[Step], *, calls: list[ToolCall] | None = None, answer: str | None = None,
               forced: bool = False) -> None:
    parsed = ParsedTurn(tool_calls=calls or [], answer=answer)
    response = ChatResponse(content=answer or "", tool_calls=calls or [], usage=Usage(100, 20))
    steps.append(ModelStep(len(steps), response, parsed, 0.5, forced=forced))


def tool_step(steps: list[Step], name: str, *, ok: bool = True, sources: list[SourceRef] | None = None,
              skipped: str | None = None, arg: str = "port") -> None:
    call = ToolCall(f"c{len(steps)}", name, {"pattern": arg})
    result = ToolResult("found" if ok else "Error: failed", ok=ok, sources=sources or [])
    steps.append(ToolStep(len(steps), call, result, 0.1, skipped=skipped))


def make_run(answer: str = "The server listens on port 8080 (conf/app.ini:3).", *, good_tools: int = 1,
             failed_tools: int = 0, repeats: int = 0, cited: list[SourceRef] | None = None,
             seconds: float = 5.0, stop_reason: str = "answer", extra_model_calls: int = 0) -> RunResult:
    """One model call per tool call, plus one answering call. The first good tool returns PORT_LINE."""
    steps: list[Step] = []
    for i in range(good_tools):
        model_step(steps, calls=[ToolCall(f"m{i}", "search", {"pattern": f"p{i}"})])
        tool_step(steps, "search", sources=[PORT_LINE if i == 0 else SourceRef("other.txt", i, "x")], arg=f"p{i}")
    for i in range(failed_tools):
        model_step(steps, calls=[ToolCall(f"f{i}", "read_file", {"path": "missing"})])
        tool_step(steps, "read_file", ok=False, arg=f"missing{i}")
    for _ in range(repeats):
        model_step(steps, calls=[ToolCall("r", "search", {"pattern": "p0"})])
        tool_step(steps, "search", ok=False, skipped="repeat", arg="p0")
    for _ in range(extra_model_calls):
        steps.append(NoteStep(len(steps), "Your reply was empty."))
        model_step(steps)
    model_step(steps, answer=answer, forced=stop_reason == "forced")
    sources = [PORT_LINE] if cited is None and good_tools else (cited or [])
    return RunResult(question="Which port does the server use?", answer=answer, sources=sources, steps=steps,
                     model="fake", seconds=seconds, usage=Usage(100, 20), stop_reason=stop_reason)


def empty_run(**overrides: object) -> RunResult:
    """No steps at all, as when the backend failed before the first response."""
    fields: dict[str, object] = dict(question="q?", answer="", sources=[], steps=[], model="fake", seconds=0.0,
                                     usage=Usage(), stop_reason="error", error="backend down")
    fields.update(overrides)
    return RunResult(**fields)  # type: ignore[arg-type]
