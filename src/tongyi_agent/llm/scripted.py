"""An in-process ChatModel that plays back a script: for tests, here and in users' projects."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ModelError, Usage

ScriptedReply: TypeAlias = (
    ChatResponse
    | str
    | BaseException
    | Callable[[list[ChatMessage], ChatRequest], ChatResponse | str | Awaitable[ChatResponse | str]]
)


@dataclass
class ScriptedCall:
    """What the model was asked on one call (deep copies, so later mutation by the agent does not leak in)."""

    messages: list[ChatMessage]
    request: ChatRequest


def _estimate(text: str) -> int:
    return len(text) // 4


class ScriptedModel:
    """Returns `replies` in order: a str becomes ChatResponse(content=str); an exception is raised;
    a callable gets (messages, request) and returns a ChatResponse or str (or an awaitable of one).

    Running out of replies raises ModelError, so a test whose agent loops more than expected fails loudly.
    """

    def __init__(
        self, replies: list[ScriptedReply], name: str = "scripted", *, supports_grammar: bool = False
    ):
        self.name = name
        self.supports_grammar = supports_grammar
        self._replies = list(replies)
        self.calls: list[ScriptedCall] = []

    @property
    def remaining(self) -> int:
        return len(self._replies)

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        request = request or ChatRequest()
        self.calls.append(ScriptedCall(copy.deepcopy(messages), copy.deepcopy(request)))
        if not self._replies:
            raise ModelError(f"scripted model ran out of replies (call {len(self.calls)})")
        reply = self._replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            produced = reply(messages, request)
            reply = await produced if inspect.isawaitable(produced) else produced
        if isinstance(reply, str):
            reply = ChatResponse(content=reply)
        if not isinstance(reply, ChatResponse):
            raise TypeError(f"scripted reply must be a ChatResponse or str, got {type(reply).__name__}")
        # Copy so a reply object reused in a script is not mutated across calls.
        response = copy.deepcopy(reply)
        if not response.model:
            response.model = self.name
        if response.usage == Usage():
            # Estimated like the agent's own budget maths, so token limits can be exercised in tests.
            response.usage = Usage(
                input_tokens=sum(_estimate(m.content) for m in messages),
                output_tokens=_estimate(response.content)
                + sum(_estimate(str(c.arguments)) for c in response.tool_calls),
            )
        return response
