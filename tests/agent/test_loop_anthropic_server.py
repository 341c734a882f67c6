"""The agent loop over HTTP: AnthropicBackend against the fake Messages API server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent.conftest import BILLING_LINE
from tests.fakes.anthropic_server import FakeAnthropicServer
from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.agent.steps import ToolStep
from tongyi_agent.llm.anthropic_backend import AnthropicBackend
from tongyi_agent.tools import FILE_TOOLS, default_registry

QUESTION = "Which port does billing use?"
ANSWER = "The billing service listens on port 8443."


@pytest.fixture
async def backend(anthropic_server: FakeAnthropicServer) -> AsyncIterator[AnthropicBackend]:
    model = AnthropicBackend("claude-test", "sk-ant-test", base_url=anthropic_server.base_url, timeout=5.0,
                             max_retries=0)
    yield model
    await model.aclose()


def make_agent(backend: AnthropicBackend, project: Path, **spec: object) -> Agent:
    return Agent(backend, default_registry(FILE_TOOLS), NativeDialect(), project, AgentSpec(**spec))


async def test_multi_step_tool_run_answers_with_real_sources(
        anthropic_server: FakeAnthropicServer, backend: AnthropicBackend, project: Path) -> None:
    anthropic_server.add(
        {"content": "I will search first.",
         "tool_calls": [{"id": "toolu_search", "name": "search_files", "arguments": {"query": "billing port"}}]},
        {"tool_calls": [{"id": "toolu_read", "name": "read_file", "arguments": {"path": "services/billing.md"}}]},
        {"content": ANSWER, "usage": {"input_tokens": 300, "output_tokens": 12}},
    )
    result = await make_agent(backend, project).run(QUESTION)

    assert (result.answer, result.stop_reason, result.model) == (ANSWER, "answer", "claude-test")
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    assert [s.call.name for s in result.tool_calls] == ["search_files", "read_file"]
    assert result.usage.input_tokens >= 300 and result.usage.output_tokens >= 12
    assert anthropic_server.remaining == 0

    first, second, third = anthropic_server.message_requests
    assert [t["name"] for t in first["tools"]] == ["list_files", "read_file", "search_files"]
    assert all(t["input_schema"]["type"] == "object" for t in first["tools"])
    assert first["max_tokens"] == AgentSpec().max_output_tokens
    assert first["system"] and [m["role"] for m in first["messages"]] == ["user"]

    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assistant, results = second["messages"][1:]
    assert assistant["content"] == [
        {"type": "text", "text": "I will search first."},
        {"type": "tool_use", "id": "toolu_search", "name": "search_files", "input": {"query": "billing port"}},
    ]
    (search_result,) = results["content"]
    assert search_result["tool_use_id"] == "toolu_search" and "is_error" not in search_result
    assert f"services/billing.md:3: {BILLING_LINE}" in search_result["content"]

    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    (read_use,) = third["messages"][3]["content"]
    assert read_use == {"type": "tool_use", "id": "toolu_read", "name": "read_file",
                        "input": {"path": "services/billing.md"}}
    (read_result,) = third["messages"][4]["content"]
    assert read_result["tool_use_id"] == "toolu_read" and f"3: {BILLING_LINE}" in read_result["content"]


async def test_tool_error_goes_back_as_is_error_and_the_run_completes(
        anthropic_server: FakeAnthropicServer, backend: AnthropicBackend, project: Path) -> None:
    anthropic_server.add(
        {"tool_calls": [
            {"id": "toolu_bad", "name": "read_file", "arguments": {"path": "services/payments.md"}},
            {"id": "toolu_ok", "name": "search_files", "arguments": {"query": "billing port"}},
        ]},
        {"content": ANSWER},
    )
    result = await make_agent(backend, project).run(QUESTION)

    assert (result.answer, result.stop_reason) == (ANSWER, "answer")
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    failed = [s for s in result.steps if isinstance(s, ToolStep) and not s.result.ok]
    assert [s.call.id for s in failed] == ["toolu_bad"]

    messages = anthropic_server.message_requests[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    bad, ok = messages[2]["content"]  # both results in one user turn, as the API requires
    assert (bad["tool_use_id"], bad["is_error"]) == ("toolu_bad", True)
    assert bad["content"].startswith("Error:") and "payments.md" in bad["content"]
    assert ok["tool_use_id"] == "toolu_ok" and "is_error" not in ok


async def test_forced_answer_turn_is_accepted_without_tools(
        anthropic_server: FakeAnthropicServer, backend: AnthropicBackend, project: Path) -> None:
    anthropic_server.add(
        {"tool_calls": [{"id": "toolu_list", "name": "list_files", "arguments": {}}]},
        {"content": "Not found in the files."},
    )
    result = await make_agent(backend, project, max_steps=1).run(QUESTION)

    assert (result.stop_reason, result.answer) == ("forced", "Not found in the files.")
    last = anthropic_server.message_requests[-1]
    assert "tools" not in last
    # Without tools the API refuses tool blocks, so the earlier exchange travels as text, note included.
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "user"]
    blocks = [b for m in last["messages"] for b in m["content"]]
    assert {b["type"] for b in blocks} == {"text"}
    assert blocks[1]["text"].startswith("[tool call list_files")
    assert "services/billing.md" in blocks[2]["text"]
    assert "Stop using tools now" in blocks[-1]["text"]
