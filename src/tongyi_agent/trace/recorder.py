"""Recording without the recorded knowing: wrappers around a ChatModel and a ToolRegistry that
write one span per model call and per tool call into a Recorder.

Backends and tools stay unaware of recording, so every backend and every tool is recorded with no
extra work. Span inputs and outputs follow the contract documented in `store.records`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ChatResponse
from tongyi_agent.store.records import SpanRecord
from tongyi_agent.tools.base import ToolContext, ToolRegistry, ToolResult


def message_dict(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [asdict(call) for call in message.tool_calls]
    if message.tool_call_id:
        data["tool_call_id"] = message.tool_call_id
    return data


class Recorder:
    """Collects the spans of one run, in order."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def add(self, span: SpanRecord) -> None:
        span.seq = len(self.spans)
        self.spans.append(span)


class RecordingModel:
    """A ChatModel that records each call it forwards."""

    def __init__(self, inner: ChatModel, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = inner.name
        self.supports_grammar = inner.supports_grammar
        if hasattr(inner, "count_tokens"):  # the loop fits the conversation with the backend's own counts
            self.count_tokens = inner.count_tokens

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        started_at, started = time.time(), time.monotonic()
        attributes: dict[str, Any] = {}
        if request is not None:
            attributes = {k: v for k, v in asdict(request).items() if v is not None and k not in ("tools", "grammar")}
            if request.tools:
                attributes["tools"] = [t["function"]["name"] for t in request.tools]
        span = SpanRecord(seq=0, kind="llm", name=self.inner.name, input=[message_dict(m) for m in messages],
                          started_at=started_at, attributes=attributes)
        try:
            response = await self.inner.chat(messages, request)
        except Exception as exc:
            span.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            span.duration = time.monotonic() - started
            self.recorder.add(span)
        span.output = {"content": response.content, "tool_calls": [asdict(c) for c in response.tool_calls]}
        if response.reasoning:
            span.output["reasoning"] = response.reasoning
        span.input_tokens = response.usage.input_tokens
        span.output_tokens = response.usage.output_tokens
        span.attributes["response_model"] = response.model
        span.attributes["finish_reason"] = response.finish_reason
        return response


class RecordingRegistry(ToolRegistry):
    """The same tools; each run is recorded as a tool span."""

    def __init__(self, inner: ToolRegistry, recorder: Recorder) -> None:
        super().__init__(list(inner), timeout=inner.timeout)
        self.recorder = recorder

    async def run(self, name: str, arguments: Any, ctx: ToolContext, call_id: str | None = None) -> ToolResult:
        started_at, started = time.time(), time.monotonic()
        result = await super().run(name, arguments, ctx, call_id)
        self.recorder.add(SpanRecord(
            seq=0, kind="tool", name=name, input=arguments, output=result.output, started_at=started_at,
            duration=time.monotonic() - started, error=None if result.ok else result.output,
            attributes={"tool_call_id": call_id, "sources": len(result.sources)} if call_id else
            {"sources": len(result.sources)}))
        return result
