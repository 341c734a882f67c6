"""OpenAICompatBackend against a real HTTP server that speaks the Chat Completions wire format."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ModelError, ToolCall
from tongyi_agent.llm.openai_compat import OpenAICompatBackend, to_openai_messages

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the files.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def backend(server: FakeOpenAIServer, **kwargs: Any) -> OpenAICompatBackend:
    options: dict[str, Any] = {"timeout": 5.0, "max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05}
    options.update(kwargs)
    api_key = options.pop("api_key", "sk-test-key")
    return OpenAICompatBackend("fake-model", server.base_url, api_key, **options)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="You are terse."), ChatMessage(role="user", content=text)]


async def test_plain_answer(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"content": "Paris.", "usage": {"prompt_tokens": 12, "completion_tokens": 2}})
    model = backend(openai_server, default_temperature=0.2)

    response = await model.chat(user("Capital of France?"), ChatRequest(max_tokens=50, stop=["\n\n"]))

    assert isinstance(model, ChatModel)
    assert (response.content, response.model, response.finish_reason) == ("Paris.", "fake-model", "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 2)
    assert response.tool_calls == []
    (sent,) = openai_server.chat_requests
    assert sent["model"] == "fake-model"
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (50, ["\n\n"], 0.2)
    assert "tools" not in sent and "top_p" not in sent
    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-test-key"


async def test_native_tool_call_round_trip(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(
        {"tool_calls": [{"id": "call_abc", "name": "search", "arguments": {"query": "llama"}}]},
        {"content": "Found it in notes.md."},
    )
    model = backend(openai_server)
    request = ChatRequest(tools=[SEARCH_TOOL])
    messages = user("Where do I mention llamas?")

    first = await model.chat(messages, request)
    assert first.tool_calls == [ToolCall(id="call_abc", name="search", arguments={"query": "llama"})]
    assert first.content == ""  # null on the wire becomes ""
    assert first.finish_reason == "tool_calls"

    messages += [
        ChatMessage(role="assistant", content=first.content, tool_calls=first.tool_calls),
        ChatMessage(role="tool", content="notes.md:3: llamas", tool_call_id="call_abc", name="search"),
    ]
    second = await model.chat(messages, request)
    assert second.content == "Found it in notes.md."

    sent = openai_server.chat_requests
    assert sent[0]["tools"] == [SEARCH_TOOL] and sent[0]["tool_choice"] == "auto"
    assistant, tool = sent[1]["messages"][2:]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "search", "arguments": '{"query": "llama"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "content": "notes.md:3: llamas", "tool_call_id": "call_abc"}


async def test_fake_server_rejects_null_content_like_llama_cpp(openai_server: FakeOpenAIServer) -> None:
    # Guards the guard: if the server stopped rejecting this, the round-trip test would prove nothing.
    import httpx

    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "s", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{openai_server.base_url}/chat/completions", json=body)
    assert reply.status_code == 500
    assert "null content" in reply.json()["error"]["message"]


async def test_429_then_success_is_retried(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(
        {"status": 429, "body": {"error": {"message": "slow down", "type": "rate_limit_error"}}},
        {"status": 503},
        {"content": "ok"},
    )
    response = await backend(openai_server, max_retries=3).chat(user("hi"))
    assert response.content == "ok"
    assert len(openai_server.chat_requests) == 3


async def test_retry_after_header_is_honoured(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"status": 429, "headers": {"Retry-After": "0.3"}}, {"content": "ok"})
    started = time.monotonic()
    response = await backend(openai_server, max_retries=1).chat(user("hi"))
    assert response.content == "ok"
    assert time.monotonic() - started >= 0.3  # backoff alone would be ~0.01 s


async def test_retries_are_bounded(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(*[{"status": 429, "body": {"error": {"message": "quota exceeded"}}}] * 5)
    with pytest.raises(ModelError) as caught:
        await backend(openai_server, max_retries=2).chat(user("hi"))
    assert len(openai_server.chat_requests) == 3  # one try + two retries, then give up
    assert openai_server.remaining == 2
    message = str(caught.value)
    assert "429" in message and "quota exceeded" in message and "\n" not in message


async def test_client_errors_are_not_retried(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(
        {"status": 400, "body": {"error": {"message": "context too long"}}}, {"content": "never"}
    )
    with pytest.raises(ModelError, match=r"HTTP 400: context too long"):
        await backend(openai_server).chat(user("hi"))
    assert len(openai_server.chat_requests) == 1


async def test_fallback_model_serves_when_primary_keeps_failing(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(
        {"status": 500, "body": {"error": {"message": "primary down"}}},
        {"status": 500, "body": {"error": {"message": "primary down"}}},
        {"content": "from the fallback"},
    )
    model = backend(openai_server, max_retries=1, fallback_model_id="backup-model")

    response = await model.chat(user("hi"))

    assert [r["model"] for r in openai_server.chat_requests] == ["fake-model", "fake-model", "backup-model"]
    assert response.content == "from the fallback"
    assert response.model == "backup-model"
    assert model.name == "fake-model"


async def test_fallback_failure_reports_both(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(*[{"status": 502, "body": {"error": {"message": "bad gateway"}}}] * 2)
    model = backend(openai_server, max_retries=0, fallback_model_id="backup-model")
    with pytest.raises(ModelError) as caught:
        await model.chat(user("hi"))
    assert "fake-model" in str(caught.value) and "fallback backup-model" in str(caught.value)
    assert len(openai_server.chat_requests) == 2


async def test_timeout_raises_model_error_promptly(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"content": "too late", "delay": 3.0}, {"content": "too late", "delay": 3.0})
    started = time.monotonic()
    with pytest.raises(ModelError, match="timed out"):
        await backend(openai_server, timeout=0.3, max_retries=1).chat(user("hi"))
    assert time.monotonic() - started < 2.0
    assert len(openai_server.chat_requests) == 2  # the time-out was retried once


async def test_connection_refused_raises_model_error() -> None:
    with FakeOpenAIServer() as server:
        base_url = server.base_url  # a port that was free a moment ago and is closed now
    model = OpenAICompatBackend("m", base_url, None, max_retries=1, backoff_base=0.01)
    with pytest.raises(ModelError, match="connection failed"):
        await model.chat(user("hi"))


async def test_tool_call_written_as_text_is_parsed(openai_server: FakeOpenAIServer) -> None:
    openai_server.add(
        {
            "content": "Let me look.\n<tool_call>\n"
            '{"name": "search", "arguments": {"query": "llama"}}\n</tool_call>'
        }
    )
    response = await backend(openai_server).chat(user("llamas?"), ChatRequest(tools=[SEARCH_TOOL]))
    assert response.tool_calls == [ToolCall(id="call_1", name="search", arguments={"query": "llama"})]
    assert response.content == "Let me look."


async def test_text_tool_calls_are_left_alone_without_tools(openai_server: FakeOpenAIServer) -> None:
    text = '{"name": "search", "arguments": {"query": "llama"}}'
    openai_server.add({"content": text})
    response = await backend(openai_server).chat(user("show me JSON"))
    assert response.tool_calls == [] and response.content == text


async def test_malformed_native_arguments_are_kept_raw(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"tool_calls": [{"id": "c1", "name": "search", "arguments": '{"query": "lla'}]})
    response = await backend(openai_server).chat(user("hi"), ChatRequest(tools=[SEARCH_TOOL]))
    assert response.tool_calls == [ToolCall(id="c1", name="search", arguments={"_raw": '{"query": "lla'})]


async def test_raw_arguments_are_sent_back_as_valid_json(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"content": "ok"})
    history = [
        *user("hi"),
        ChatMessage(
            role="assistant", tool_calls=[ToolCall(id="c1", name="search", arguments={"_raw": "{bad"})]
        ),
        ChatMessage(role="tool", content="error: arguments were not JSON", tool_call_id="c1"),
    ]
    # The fake server, like llama.cpp, returns 500 for undecodable arguments; success proves they are JSON.
    assert (await backend(openai_server, max_retries=0).chat(history)).content == "ok"


async def test_reasoning_fields_are_exposed(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"content": "4", "reasoning": "2+2"}, {"content": "5", "reasoning_content": "2+3"})
    model = backend(openai_server)
    assert (await model.chat(user("2+2"))).reasoning == "2+2"
    assert (await model.chat(user("2+3"))).reasoning == "2+3"


async def test_extra_body_and_top_p_are_sent(openai_server: FakeOpenAIServer) -> None:
    openai_server.add({"content": "ok"})
    model = backend(openai_server, default_top_p=0.9, extra_body={"provider": {"sort": "price"}})
    await model.chat(user("hi"), ChatRequest(temperature=0.0))
    (sent,) = openai_server.chat_requests
    assert (sent["top_p"], sent["temperature"], sent["provider"]) == (0.9, 0.0, {"sort": "price"})


async def test_api_key_never_appears_in_errors(openai_server: FakeOpenAIServer) -> None:
    key = "sk-very-secret-0123456789"
    openai_server.add({"status": 401, "body": {"error": {"message": f"Incorrect API key provided: {key}"}}})
    model = backend(openai_server, api_key=key, fallback_model_id="backup-model")
    with pytest.raises(ModelError) as caught:
        await model.chat(user("hi"))
    assert key not in str(caught.value) and key not in repr(model)
    assert "401" in str(caught.value) and "Incorrect API key" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(openai_server.chat_requests) == 1  # an auth failure is not retried, nor sent to the fallback


def test_tool_message_without_id_is_refused() -> None:
    with pytest.raises(ModelError, match="tool_call_id"):
        to_openai_messages([ChatMessage(role="tool", content="x")])


def test_importing_the_backend_does_not_import_the_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, tongyi_agent.llm.openai_compat; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_backend_survives_successive_event_loops() -> None:
    # The CLI runs one asyncio.run() per question with the same backend object.
    import asyncio

    with FakeOpenAIServer([{"content": "one"}, {"content": "two"}]) as server:
        model = backend(server)
        assert asyncio.run(model.chat(user("a"))).content == "one"
        assert asyncio.run(model.chat(user("b"))).content == "two"
