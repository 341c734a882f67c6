"""AnthropicBackend against a real HTTP server that speaks the Messages API wire format (JSON and SSE)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_server import FakeAnthropicServer
from tongyi_agent.llm.anthropic_backend import DEFAULT_BASE_URL, AnthropicBackend, to_anthropic_messages
from tongyi_agent.llm.base import ChatMessage, ChatModel, ChatRequest, ModelError, ToolCall

KEY = "sk-ant-test-key-0123456789"
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the files.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
STREAM_MODES = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])


def backend(server: FakeAnthropicServer, **kwargs: Any) -> AnthropicBackend:
    options: dict[str, Any] = {
        "base_url": server.base_url, "timeout": 5.0, "max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05,
    }
    options.update(kwargs)
    return AnthropicBackend(options.pop("model_id", "claude-test"), options.pop("api_key", KEY), **options)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="You are terse."), ChatMessage(role="user", content=text)]


def tool_turn(calls: list[ToolCall], outputs: list[str]) -> list[ChatMessage]:
    return [
        ChatMessage(role="assistant", content="", tool_calls=calls),
        *(ChatMessage(role="tool", content=out, tool_call_id=c.id, name=c.name) for c, out in zip(calls, outputs,
                                                                                                   strict=True)),
    ]


@STREAM_MODES
async def test_plain_answer(anthropic_server: FakeAnthropicServer, stream: bool) -> None:
    anthropic_server.add({"content": "Paris.", "thinking": "Capital: Paris.",
                          "usage": {"input_tokens": 12, "output_tokens": 3}})
    # Sampling defaults are configured but must not reach API version 2026-10-21 (the fake answers 400 to them).
    model = backend(anthropic_server, stream=stream, default_temperature=0.2, default_top_p=0.9)

    response = await model.chat(user("Capital of France?"),
                                ChatRequest(max_tokens=50, stop=["\n\nHuman:", "\n\n"], temperature=0.5))
    await model.aclose()

    assert isinstance(model, ChatModel) and model.supports_grammar is False
    assert (response.content, response.model, response.finish_reason) == ("Paris.", "claude-test", "end_turn")
    assert response.reasoning == "Capital: Paris."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.tool_calls == []
    (sent,) = anthropic_server.message_requests
    assert sent["model"] == "claude-test" and sent["system"] == "You are terse."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}]
    assert sent["max_tokens"] == 50
    assert sent["stop_sequences"] == ["\n\nHuman:"]  # whitespace-only stop sequences are refused by the API
    assert not {"temperature", "top_p", "top_k", "tools"} & set(sent)
    assert bool(sent.get("stream")) is stream
    headers = anthropic_server.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}" and headers["anthropic-version"]


async def test_max_tokens_defaults_to_the_backend_setting(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"content": "ok"})
    await backend(anthropic_server, max_tokens=333).chat(user("hi"))
    assert anthropic_server.message_requests[0]["max_tokens"] == 333


@STREAM_MODES
async def test_tool_use_round_trip(anthropic_server: FakeAnthropicServer, stream: bool) -> None:
    arguments = {"query": "llama habitat", "limit": 3, "nested": {"deep": ["a", "b"]}}
    anthropic_server.add(
        {"content": "Let me search.", "tool_calls": [{"id": "toolu_abc", "name": "search", "arguments": arguments}]},
        {"content": "Found it in notes.md."},
    )
    model = backend(anthropic_server, stream=stream)
    request = ChatRequest(tools=[SEARCH_TOOL])
    messages = user("Where do I mention llamas?")

    first = await model.chat(messages, request)
    # With streaming, the input arrives as input_json_delta fragments the SDK has to join.
    assert first.tool_calls == [ToolCall(id="toolu_abc", name="search", arguments=arguments)]
    assert (first.content, first.finish_reason) == ("Let me search.", "tool_use")

    messages += [
        ChatMessage(role="assistant", content=first.content, tool_calls=first.tool_calls),
        ChatMessage(role="tool", content="notes.md:3: llamas", tool_call_id="toolu_abc", name="search"),
    ]
    second = await model.chat(messages, request)
    assert second.content == "Found it in notes.md."

    sent = anthropic_server.message_requests
    assert sent[0]["tools"] == [{
        "name": "search", "description": "Search the files.",
        "input_schema": SEARCH_TOOL["function"]["parameters"],
    }]
    assert [m["role"] for m in sent[1]["messages"]] == ["user", "assistant", "user"]
    assistant, result = sent[1]["messages"][1:]
    assert assistant["content"] == [
        {"type": "text", "text": "Let me search."},
        {"type": "tool_use", "id": "toolu_abc", "name": "search", "input": arguments},
    ]
    assert result["content"] == [{"type": "tool_result", "tool_use_id": "toolu_abc", "content": "notes.md:3: llamas"}]


async def test_several_tool_results_form_one_user_turn(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"content": "Both read."})
    calls = [ToolCall("toolu_1", "search", {"query": "a"}), ToolCall("toolu_2", "search", {"query": "b"})]
    messages = user("q") + tool_turn(calls, ["one", "Error: no such file"])
    messages.append(ChatMessage(role="user", content="Answer now."))  # a note from the loop after the results

    response = await backend(anthropic_server).chat(messages, ChatRequest(tools=[SEARCH_TOOL]))

    assert response.content == "Both read."
    wire = anthropic_server.message_requests[0]["messages"]
    assert [m["role"] for m in wire] == ["user", "assistant", "user"]
    assert wire[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Error: no such file", "is_error": True},
        {"type": "text", "text": "Answer now."},
    ]


async def test_request_without_tools_writes_earlier_tool_turns_as_text(
        anthropic_server: FakeAnthropicServer) -> None:
    # The forced last turn offers no tools; tool blocks would then be refused with HTTP 400.
    anthropic_server.add({"content": "Final."})
    messages = user("q") + tool_turn([ToolCall("toolu_1", "search", {"query": "x"})], ["hit: a.md:1"])
    messages.append(ChatMessage(role="user", content="Stop using tools now."))

    response = await backend(anthropic_server).chat(messages, ChatRequest(tools=None))

    assert response.content == "Final."
    sent = anthropic_server.message_requests[0]
    assert "tools" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [{"type": "text", "text": '[tool call search {"query": "x"}]'}]
    assert [b["text"] for b in sent["messages"][2]["content"]] == [
        "[tool result search]\nhit: a.md:1", "Stop using tools now."]


def test_conversion_merges_roles_and_drops_empty_text() -> None:
    system, wire = to_anthropic_messages([
        ChatMessage("system", "A."), ChatMessage("user", "one"), ChatMessage("assistant", "  "),
        ChatMessage("user", "two"), ChatMessage("system", "B."),
    ])
    assert system == "A.\n\nB."
    assert wire == [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]
    with pytest.raises(ModelError, match="tool_call_id"):
        to_anthropic_messages([ChatMessage("tool", "x")])


@STREAM_MODES
@pytest.mark.parametrize("stop_reason", ["end_turn", "max_tokens", "stop_sequence", "tool_use"])
async def test_stop_reason_becomes_finish_reason(
        anthropic_server: FakeAnthropicServer, stream: bool, stop_reason: str) -> None:
    anthropic_server.add({"content": "cut", "stop_reason": stop_reason})
    response = await backend(anthropic_server, stream=stream).chat(user("hi"))
    assert response.finish_reason == stop_reason


@STREAM_MODES
async def test_overloaded_is_retried_then_succeeds(anthropic_server: FakeAnthropicServer, stream: bool) -> None:
    anthropic_server.add({"status": 529}, {"status": 429, "headers": {"retry-after": "0"}}, {"content": "ok"})
    response = await backend(anthropic_server, stream=stream).chat(user("hi"))
    assert response.content == "ok"
    assert len(anthropic_server.message_requests) == 3 and anthropic_server.remaining == 0


async def test_overloaded_error_event_mid_stream_is_retried(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"stream_error": "overloaded_error"}, {"content": "second try"})
    response = await backend(anthropic_server).chat(user("hi"))
    assert response.content == "second try"
    assert len(anthropic_server.message_requests) == 2


async def test_retry_after_is_honoured(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"status": 429, "headers": {"retry-after": "0.4"}}, {"content": "ok"})
    started = time.monotonic()
    response = await backend(anthropic_server, backoff_base=0.001).chat(user("hi"))
    assert response.content == "ok"
    assert time.monotonic() - started >= 0.4


async def test_retries_are_bounded(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add(*[{"status": 529} for _ in range(5)])
    with pytest.raises(ModelError) as caught:
        await backend(anthropic_server, max_retries=2).chat(user("hi"))
    message = str(caught.value)
    assert "claude-test" in message and "HTTP 529 overloaded_error: Overloaded" in message
    assert "\n" not in message
    assert len(anthropic_server.message_requests) == 3 and anthropic_server.remaining == 2


async def test_bad_request_is_not_retried(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"status": 400, "body": {"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long"}}}, {"content": "never"})
    with pytest.raises(ModelError, match="HTTP 400 invalid_request_error: prompt is too long"):
        await backend(anthropic_server).chat(user("hi"))
    assert anthropic_server.remaining == 1


async def test_fallback_model_after_server_errors(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"status": 500}, {"status": 500}, {"content": "from the fallback"})
    model = backend(anthropic_server, max_retries=1, fallback_model_id="claude-fallback")
    response = await model.chat(user("hi"))
    assert (response.content, response.model) == ("from the fallback", "claude-fallback")
    assert [r["model"] for r in anthropic_server.message_requests] == ["claude-test", "claude-test", "claude-fallback"]


async def test_both_models_failing_names_both(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add(*[{"status": 503} for _ in range(2)])
    model = backend(anthropic_server, max_retries=0, fallback_model_id="claude-fallback")
    with pytest.raises(ModelError, match=r"claude-test .*HTTP 503.*; fallback claude-fallback .*HTTP 503"):
        await model.chat(user("hi"))


async def test_auth_failure_neither_retries_nor_falls_back_nor_leaks_the_key(
        anthropic_server: FakeAnthropicServer) -> None:
    # Some proxies echo the key they refused; it must not reach logs or the terminal.
    anthropic_server.add({"status": 401, "body": {"type": "error", "error": {
        "type": "authentication_error", "message": f"invalid x-api-key {KEY}\nplease check"}}})
    model = backend(anthropic_server, fallback_model_id="claude-fallback")
    with pytest.raises(ModelError) as caught:
        await model.chat(user("hi"))
    message = str(caught.value)
    assert KEY not in message and "***" in message and "\n" not in message
    assert "HTTP 401 authentication_error" in message
    assert len(anthropic_server.message_requests) == 1
    assert KEY not in repr(model)


async def test_timeout_becomes_one_line_model_error(anthropic_server: FakeAnthropicServer) -> None:
    anthropic_server.add({"content": "late", "delay": 3})
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"^claude-test at 127\.0\.0\.1:\d+: timed out after 0\.3s$"):
        await backend(anthropic_server, timeout=0.3, max_retries=0).chat(user("hi"))
    assert time.monotonic() - started < 2.5


async def test_connection_refused_is_retried_then_reported() -> None:
    with FakeAnthropicServer() as closed:
        base_url = closed.base_url  # a port nothing listens on once the server is closed
    model = AnthropicBackend("claude-test", KEY, base_url=base_url, timeout=2.0, max_retries=1, backoff_base=0.01)
    with pytest.raises(ModelError, match="connection failed") as caught:
        await model.chat(user("hi"))
    assert KEY not in str(caught.value) and "\n" not in str(caught.value)


async def test_sdk_reads_no_anthropic_variables_from_the_environment(
        anthropic_server: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-environment")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-from-environment")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "x-from-environment: yes")
    anthropic_server.add({"content": "ok"})

    response = await backend(anthropic_server).chat(user("hi"))

    assert response.content == "ok"  # so the passed base_url, not ANTHROPIC_BASE_URL, was used
    headers = anthropic_server.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in headers and "x-from-environment" not in headers
    assert "sk-ant-from-environment" not in str(headers) and "token-from-environment" not in str(headers)


def test_base_url_defaults_to_the_public_api_and_accepts_a_v1_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert AnthropicBackend("m", KEY).base_url == DEFAULT_BASE_URL
    assert AnthropicBackend("m", KEY, base_url="https://proxy.example/anthropic/v1/").base_url == (
        "https://proxy.example/anthropic")


@pytest.mark.parametrize(("headers", "body", "status", "message"), [
    ({}, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, 401, "x-api-key"),
    ({"x-api-key": "k"}, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
     400, "anthropic-version"),
    (None, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, 400, "max_tokens: Field required"),
    (None, {"model": "m", "max_tokens": 5, "temperature": 1.0, "messages": [{"role": "user", "content": "hi"}]},
     400, "temperature: Extra inputs"),
    (None, {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "s"},
                                                        {"role": "user", "content": "hi"}]},
     400, 'Unexpected role "system"'),
    (None, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"},
                                                        {"role": "user", "content": "b"}]},
     400, "roles must alternate"),
    (None, {"model": "m", "max_tokens": 5, "tools": [{"name": "t", "input_schema": {"type": "object"}}], "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "x"}]}]},
     400, "unexpected `tool_use_id`"),
    (None, {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]},
     400, "must define tools"),
])
def test_fake_server_rejects_what_the_api_rejects(
        anthropic_server: FakeAnthropicServer, headers: dict[str, str] | None, body: dict[str, Any], status: int,
        message: str) -> None:
    # The backend tests above are only as strict as this server; no scripted reply may be consumed.
    anthropic_server.add({"content": "should not be sent"})
    sent_headers = headers if headers is not None else {"x-api-key": "k", "anthropic-version": "2026-10-21"}
    response = httpx.post(f"{anthropic_server.base_url}/v1/messages", json=body, headers=sent_headers, timeout=5)
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error" and message in error["error"]["message"]
    assert anthropic_server.remaining == 1
