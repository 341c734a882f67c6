"""The agent loop over HTTP: OpenAICompatBackend against the fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent.conftest import BILLING_LINE
from tests.fakes.openai_server import FakeOpenAIServer
from tongyi_agent.agent.dialects import Dialect, NativeDialect, ReactDialect, TongyiDialect
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.llm.openai_compat import OpenAICompatBackend
from tongyi_agent.tools import FILE_TOOLS, default_registry

QUESTION = "Which port does billing use?"
ANSWER = "The billing service listens on port 8443."


@pytest.fixture
async def backend(openai_server: FakeOpenAIServer) -> AsyncIterator[OpenAICompatBackend]:
    model = OpenAICompatBackend("fake-model", openai_server.base_url, None, timeout=5.0, max_retries=0)
    yield model
    await model.aclose()


def make_agent(backend: OpenAICompatBackend, project: Path, dialect: Dialect, **spec: object) -> Agent:
    return Agent(backend, default_registry(FILE_TOOLS), dialect, project, AgentSpec(**spec))


async def test_native_tool_run_sends_a_valid_conversation(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    openai_server.add(
        {"tool_calls": [{"id": "call_abc", "name": "search_files", "arguments": {"query": "billing port"}}]},
        {"content": ANSWER},
    )
    result = await make_agent(backend, project, NativeDialect()).run(QUESTION)

    assert (result.answer, result.stop_reason, result.model) == (ANSWER, "answer", "fake-model")
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    assert openai_server.remaining == 0

    first, second = openai_server.chat_requests
    assert [t["function"]["name"] for t in first["tools"]] == ["list_files", "read_file", "search_files"]
    assert first["max_tokens"] == AgentSpec().max_output_tokens
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == QUESTION

    system, user, assistant, tool = second["messages"]
    assert (system["role"], user["role"], user["content"]) == ("system", "user", QUESTION)
    assert assistant["role"] == "assistant"
    assert assistant["content"] == ""  # never null: llama.cpp's server answers 500 to that
    (sent_call,) = assistant["tool_calls"]
    assert sent_call["id"] == "call_abc" and sent_call["function"]["name"] == "search_files"
    assert json.loads(sent_call["function"]["arguments"]) == {"query": "billing port"}
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_abc"
    assert f"services/billing.md:3: {BILLING_LINE}" in tool["content"]


async def test_native_text_beside_calls_and_two_calls_in_one_turn(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    openai_server.add(
        {"content": "Let me look.", "tool_calls": [
            {"id": "call_1", "name": "list_files", "arguments": {}},
            {"id": "call_2", "name": "read_file", "arguments": {"path": "services/billing.md"}},
        ]},
        {"content": ANSWER},
    )
    result = await make_agent(backend, project, NativeDialect()).run(QUESTION)
    assert result.answer == ANSWER
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    messages = openai_server.chat_requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[2]["content"] == "Let me look."
    assert [m["tool_call_id"] for m in messages[3:]] == ["call_1", "call_2"]
    assert "3: " + BILLING_LINE in messages[4]["content"]


async def test_native_tool_call_in_content_over_http(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    text_call = '<tool_call>\n{"name": "search_files", "arguments": {"query": "billing port"}}\n</tool_call>'
    openai_server.add({"content": text_call}, {"content": ANSWER})
    result = await make_agent(backend, project, NativeDialect()).run(QUESTION)
    assert result.answer == ANSWER and len(result.tool_calls) == 1
    messages = openai_server.chat_requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assistant, tool = messages[2:]
    assert assistant["content"] == "" and assistant["tool_calls"][0]["function"]["name"] == "search_files"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]


async def test_native_undecodable_arguments_are_told_and_the_run_goes_on(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    openai_server.add({"tool_calls": [{"id": "call_x", "name": "read_file", "arguments": '{"path": '}]},
                      {"content": ANSWER})
    # Grounding off: this is about the undecodable call; the scripted answer looked nothing up.
    result = await make_agent(backend, project, NativeDialect(), grounding="off").run(QUESTION)
    assert result.answer == ANSWER and result.tool_calls == []
    messages = openai_server.chat_requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "not valid JSON" in messages[-1]["content"]


async def test_native_forced_answer_over_http(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    openai_server.add({"tool_calls": [{"name": "list_files", "arguments": {}}]},
                      {"content": "Not found in the files."})
    result = await make_agent(backend, project, NativeDialect(), max_steps=1).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", "Not found in the files.")
    last = openai_server.chat_requests[-1]
    assert "tools" not in last
    assert [m["role"] for m in last["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert "Stop using tools now" in last["messages"][-1]["content"]


async def test_tongyi_dialect_over_http(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    call_text = ('<think>I should search the files.</think>\n<tool_call>\n'
                 '{"name": "search_files", "arguments": {"query": "billing port"}}\n</tool_call>')
    openai_server.add({"content": call_text}, {"content": f"<think>Found it.</think>\n<answer>{ANSWER}</answer>"})
    result = await make_agent(backend, project, TongyiDialect()).run(QUESTION)

    assert (result.answer, result.stop_reason) == (ANSWER, "answer")
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    first, second = openai_server.chat_requests
    for sent in (first, second):
        assert "tools" not in sent
        assert any("<tool_response>" in s for s in sent["stop"])
    assert "<tools>" in first["messages"][0]["content"]
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assistant, observation = second["messages"][2:]
    assert assistant["content"] == call_text and "tool_calls" not in assistant
    assert observation["content"].startswith("<tool_response>\n")
    assert observation["content"].endswith("\n</tool_response>")
    assert f"services/billing.md:3: {BILLING_LINE}" in observation["content"]


async def test_react_dialect_over_http(
        openai_server: FakeOpenAIServer, backend: OpenAICompatBackend, project: Path) -> None:
    openai_server.add(
        {"content": 'Thought: search\nAction: search_files\nAction Input: {"query": "billing port"}'},
        {"content": "Thought: I know the answer\nFinal Answer: Port 8443."},
    )
    result = await make_agent(backend, project, ReactDialect()).run(QUESTION)
    assert result.answer == "Port 8443."
    first, second = openai_server.chat_requests
    assert "Observation:" in first["stop"] and "tools" not in first
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][-1]["content"].startswith("Observation: ")
