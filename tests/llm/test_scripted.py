from __future__ import annotations

import pytest

from tongyi_agent.llm.base import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    ChatResponse,
    ModelError,
    ToolCall,
    Usage,
)
from tongyi_agent.llm.scripted import ScriptedModel


async def test_replies_in_order_and_calls_recorded() -> None:
    call = ToolCall(id="c1", name="search", arguments={"query": "x"})
    model = ScriptedModel([ChatResponse(content="", tool_calls=[call]), "done"])
    messages = [ChatMessage(role="user", content="hello there")]
    request = ChatRequest(max_tokens=5)

    first = await model.chat(messages, request)
    messages.append(ChatMessage(role="assistant", tool_calls=[call]))  # the agent mutates its history
    second = await model.chat(messages)

    assert isinstance(model, ChatModel) and model.supports_grammar is False
    assert first.tool_calls == [call] and first.model == "scripted"
    assert (second.content, second.model) == ("done", "scripted")
    assert [len(c.messages) for c in model.calls] == [1, 2]  # copies, not the live list
    assert model.calls[0].request.max_tokens == 5 and model.calls[1].request == ChatRequest()
    assert model.remaining == 0


async def test_usage_is_estimated_unless_given() -> None:
    model = ScriptedModel(["x" * 40, ChatResponse(content="y", usage=Usage(7, 3))])
    messages = [ChatMessage(role="user", content="z" * 80)]
    assert (await model.chat(messages)).usage == Usage(input_tokens=20, output_tokens=10)
    assert (await model.chat(messages)).usage == Usage(7, 3)


async def test_exceptions_are_raised_and_exhaustion_is_loud() -> None:
    model = ScriptedModel([ModelError("HTTP 503"), "ok"], name="fake")
    with pytest.raises(ModelError, match="HTTP 503"):
        await model.chat([ChatMessage(role="user", content="a")])
    assert (await model.chat([ChatMessage(role="user", content="a")])).model == "fake"
    with pytest.raises(ModelError, match="ran out of replies"):
        await model.chat([ChatMessage(role="user", content="a")])
    assert len(model.calls) == 3


async def test_callable_replies_see_the_conversation() -> None:
    def echo(messages: list[ChatMessage], request: ChatRequest) -> str:
        return f"{messages[-1].content} ({request.temperature})"

    async def async_reply(messages: list[ChatMessage], request: ChatRequest) -> ChatResponse:
        return ChatResponse(content=str(len(messages)))

    model = ScriptedModel([echo, async_reply])
    assert (
        await model.chat([ChatMessage(role="user", content="hi")], ChatRequest(temperature=0.5))
    ).content == ("hi (0.5)")
    assert (await model.chat([ChatMessage(role="user", content="a")] * 3)).content == "3"


async def test_reused_reply_objects_are_not_mutated() -> None:
    shared = ChatResponse(content="same")
    model = ScriptedModel([shared, shared], name="m")
    await model.chat([ChatMessage(role="user", content="abcdefgh")])
    assert shared.model == "" and shared.usage == Usage()
