"""The three dialects: how each parses good and malformed model output and renders messages back."""

from __future__ import annotations

import json

import pytest

from tongyi_agent.agent.dialects import NativeDialect, ReactDialect, TongyiDialect, get_dialect
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.tools import FILE_TOOLS, default_registry

TOOLS = default_registry(FILE_TOOLS)
NAMES = set(TOOLS.names())


def reply(content: str = "", tool_calls: list[ToolCall] | None = None, reasoning: str | None = None) -> ChatResponse:
    return ChatResponse(content=content, tool_calls=tool_calls or [], reasoning=reasoning)


def test_get_dialect_by_name() -> None:
    assert isinstance(get_dialect("native"), NativeDialect)
    assert isinstance(get_dialect("tongyi"), TongyiDialect)
    assert isinstance(get_dialect("react"), ReactDialect)
    with pytest.raises(ValueError, match="unknown dialect 'xml'"):
        get_dialect("xml")


# -- native ----------------------------------------------------------------------------------------------


def test_native_tool_calls() -> None:
    call = ToolCall(id="call_abc", name="search_files", arguments={"query": "port"})
    parsed = NativeDialect().parse(reply("", [call]), NAMES)
    assert parsed.tool_calls == [call]
    assert (parsed.answer, parsed.error, parsed.thought) == (None, None, "")


def test_native_assistant_message_keeps_calls_and_never_null_content() -> None:
    dialect = NativeDialect()
    call = ToolCall(id="call_abc", name="search_files", arguments={"query": "port"})
    response = reply("", [call])
    message = dialect.assistant_message(response, dialect.parse(response, NAMES))
    assert (message.role, message.content, message.tool_calls) == ("assistant", "", [call])

    response = reply("Let me look.", [call])
    message = dialect.assistant_message(response, dialect.parse(response, NAMES))
    assert message.content == "Let me look." and message.tool_calls == [call]


@pytest.mark.parametrize(
    "content",
    [
        '<tool_call>\n{"name": "search_files", "arguments": {"query": "port"}}\n</tool_call>',
        'I will search first.\n```json\n{"name": "search_files", "arguments": {"query": "port"}}\n```',
        '{"name": "search_files", "arguments": "{\\"query\\": \\"port\\"}"}',
    ],
)
def test_native_tool_call_written_as_text(content: str) -> None:
    parsed = NativeDialect().parse(reply(content), NAMES)
    assert parsed.answer is None and parsed.error is None
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("search_files", {"query": "port"})]
    assert "search_files" not in parsed.thought  # the call is taken out of the text


def test_native_text_call_keeps_the_prose_as_thought() -> None:
    content = 'I will search first.\n{"name": "read_file", "arguments": {"path": "README.md"}}'
    parsed = NativeDialect().parse(reply(content), NAMES)
    assert parsed.thought == "I will search first."
    assert parsed.tool_calls[0].arguments == {"path": "README.md"}


def test_native_undecodable_arguments_are_an_error_for_the_model() -> None:
    call = ToolCall(id="c1", name="read_file", arguments={"_raw": '{"path": README.md'})
    parsed = NativeDialect().parse(reply("", [call]), NAMES)
    assert parsed.tool_calls == [] and parsed.answer is None
    assert parsed.error is not None
    assert "read_file" in parsed.error and "not valid JSON" in parsed.error and "README.md" in parsed.error


def test_native_plain_answer() -> None:
    parsed = NativeDialect().parse(reply("  The billing service listens on port 8443.\n"), NAMES)
    assert parsed.answer == "The billing service listens on port 8443."
    assert parsed.tool_calls == [] and parsed.error is None


@pytest.mark.parametrize(
    "content",
    [
        '{"port": 8443, "host": "0.0.0.0"}',
        '{"name": "billing", "port": 8443}',  # has a "name", but names no offered tool
        '[{"name": "billing"}, {"name": "catalogue"}]',
    ],
)
def test_native_json_answer_that_is_not_a_tool_call_is_the_answer(content: str) -> None:
    parsed = NativeDialect().parse(reply(content), NAMES)
    assert parsed.answer == content
    assert parsed.tool_calls == [] and parsed.error is None


def test_native_final_turn_takes_text_as_answer_even_if_it_looks_like_a_call() -> None:
    content = '{"name": "search_files", "arguments": {"query": "port"}}'
    parsed = NativeDialect().parse(reply(content), set())
    assert parsed.answer == content and parsed.tool_calls == []


def test_native_request_offers_tools_unless_final() -> None:
    dialect = NativeDialect()
    request = dialect.request(TOOLS, final=False, grammar_ok=True)
    assert request.tools is not None
    assert [t["function"]["name"] for t in request.tools] == TOOLS.names()
    assert request.grammar is None
    assert dialect.request(TOOLS, final=True, grammar_ok=False).tools is None


def test_native_observations_are_tool_messages() -> None:
    calls = [ToolCall("c1", "search_files", {"query": "a"}), ToolCall("c2", "read_file", {"path": "b"})]
    messages = NativeDialect().observation_messages([(calls[0], "out one"), (calls[1], "out two")])
    assert [(m.role, m.tool_call_id, m.name, m.content) for m in messages] == [
        ("tool", "c1", "search_files", "out one"),
        ("tool", "c2", "read_file", "out two"),
    ]


# -- tongyi ----------------------------------------------------------------------------------------------


def tongyi_call(name: str, arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def test_tongyi_think_and_tool_call() -> None:
    text = "<think>\nI should search for the port.\n</think>\n" + tongyi_call("search_files", {"query": "port"})
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert parsed.thought == "I should search for the port."
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("search_files", {"query": "port"})]
    assert parsed.answer is None and parsed.error is None


def test_tongyi_multiple_calls_get_distinct_ids() -> None:
    text = tongyi_call("search_files", {"query": "port"}) + "\n" + tongyi_call("read_file", {"path": "README.md"})
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert [c.name for c in parsed.tool_calls] == ["search_files", "read_file"]
    assert parsed.tool_calls[1].arguments == {"path": "README.md"}
    assert len({c.id for c in parsed.tool_calls}) == 2


def test_tongyi_arguments_as_a_json_string() -> None:
    text = tongyi_call("read_file", json.dumps({"path": "README.md", "start_line": 2}))
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert parsed.tool_calls[0].arguments == {"path": "README.md", "start_line": 2}


@pytest.mark.parametrize("arguments", ['{"path": README.md', ["README.md"], "README.md"])
def test_tongyi_arguments_that_are_not_an_object_are_an_error(arguments: object) -> None:
    parsed = TongyiDialect().parse(reply(tongyi_call("read_file", arguments)), NAMES)
    assert parsed.tool_calls == [] and parsed.answer is None
    assert parsed.error is not None and "read_file" in parsed.error and "JSON object" in parsed.error


def test_tongyi_unclosed_tool_call_is_still_a_call() -> None:
    # Generation stopped at the stop sequence before the closing tag.
    text = '<tool_call>\n{"name": "list_files", "arguments": {}}\n'
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("list_files", {})]


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ('{"name": "search_files", "arguments": {"query": "port"', "not valid JSON"),
        ('{"tool": "search_files"}', '{"name": ..., "arguments": {...}}'),
    ],
)
def test_tongyi_malformed_tool_call(inner: str, expected: str) -> None:
    parsed = TongyiDialect().parse(reply(f"<think>go</think><tool_call>{inner}</tool_call>"), NAMES)
    assert parsed.tool_calls == [] and parsed.answer is None
    assert parsed.error is not None and expected in parsed.error
    assert parsed.thought == "go"


def test_tongyi_answer() -> None:
    text = "<think>The search showed it.</think>\n<answer>\nPort 8443.\n</answer>"
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert (parsed.thought, parsed.answer, parsed.tool_calls, parsed.error) == (
        "The search showed it.", "Port 8443.", [], None)


@pytest.mark.parametrize("text", ["The billing service uses port 8443.", '{"port": 8443}'])
def test_tongyi_plain_text_without_tags_is_the_answer(text: str) -> None:
    parsed = TongyiDialect().parse(reply(text), NAMES)
    assert parsed.answer == text and parsed.tool_calls == [] and parsed.error is None


def test_tongyi_thought_only_is_an_error_not_an_answer() -> None:
    parsed = TongyiDialect().parse(reply("<think>hmm</think>\n"), NAMES)
    assert parsed.answer is None and parsed.error is not None and parsed.thought == "hmm"


def test_tongyi_reasoning_field_is_the_thought_when_there_is_no_think_tag() -> None:
    parsed = TongyiDialect().parse(reply("<answer>8443</answer>", reasoning=" looked it up "), NAMES)
    assert (parsed.thought, parsed.answer) == ("looked it up", "8443")


def test_tongyi_observations_are_one_user_message_in_tool_response() -> None:
    calls = [ToolCall("call_0", "search_files", {"query": "a"}), ToolCall("call_1", "list_files", {})]
    (message,) = TongyiDialect().observation_messages([(calls[0], "first result"), (calls[1], "second result")])
    assert message.role == "user" and message.tool_call_id is None
    assert message.content == (
        "<tool_response>\nfirst result\n</tool_response>\n<tool_response>\nsecond result\n</tool_response>"
    )


def test_tongyi_request_stops_before_tool_response_and_has_no_tools() -> None:
    for final in (False, True):
        request = TongyiDialect().request(TOOLS, final=final, grammar_ok=True)
        assert request.stop is not None and any("<tool_response>" in s for s in request.stop)
        assert request.tools is None and request.grammar is None


def test_tongyi_system_prompt_lists_every_tool_schema() -> None:
    prompt = TongyiDialect().system_prompt("Be careful.", TOOLS)
    assert prompt.startswith("Be careful.")
    listed = prompt.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert [json.loads(line)["name"] for line in listed.splitlines()] == TOOLS.names()


# -- react -----------------------------------------------------------------------------------------------


def test_react_thought_action_input() -> None:
    text = 'Thought: I should search.\nAction: search_files\nAction Input: {"query": "port", "path": "services"}'
    parsed = ReactDialect().parse(reply(text), NAMES)
    assert parsed.thought == "I should search."
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("search_files", {"query": "port", "path": "services"})]
    assert parsed.answer is None and parsed.error is None


def test_react_action_line_with_arguments_repeated_after_the_name() -> None:
    # Seen from the 1.5B model on real changelog questions: the Action line restates the arguments.
    text = ('Thought: I will search.\nAction: search_files, query "compression.zstd", path "docs"\n'
            'Action Input: {"query": "compression.zstd", "path": "docs"}')
    parsed = ReactDialect().parse(reply(text), NAMES)
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("search_files", {"query": "compression.zstd", "path": "docs"})]
    assert parsed.error is None


def test_react_final_answer() -> None:
    parsed = ReactDialect().parse(reply("Thought: I know the answer\nFinal Answer: Port 8443.\n"), NAMES)
    assert (parsed.thought, parsed.answer, parsed.tool_calls) == ("I know the answer", "Port 8443.", [])


def test_react_action_before_a_made_up_final_answer_wins() -> None:
    text = ('Thought: search\nAction: search_files\nAction Input: {"query": "port"}\n'
            "Observation: port 1234\nThought: I know the answer\nFinal Answer: 1234")
    parsed = ReactDialect().parse(reply(text), NAMES)
    assert parsed.answer is None
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("search_files", {"query": "port"})]


@pytest.mark.parametrize("raw", ["{query: port}", '{"query": "port"', '"port"', "[1, 2]"])
def test_react_invalid_action_input(raw: str) -> None:
    parsed = ReactDialect().parse(reply(f"Thought: go\nAction: search_files\nAction Input: {raw}"), NAMES)
    assert parsed.tool_calls == [] and parsed.answer is None
    assert parsed.error is not None and "Action Input must be a JSON object" in parsed.error


def test_react_prose_without_protocol_is_the_answer() -> None:
    parsed = ReactDialect().parse(reply("The billing service listens on port 8443."), NAMES)
    assert parsed.answer == "The billing service listens on port 8443."
    assert parsed.tool_calls == [] and parsed.error is None


def test_react_thought_without_action_or_answer_is_an_error() -> None:
    parsed = ReactDialect().parse(reply("Thought: I am not sure what to do."), NAMES)
    assert parsed.answer is None and parsed.tool_calls == []
    assert parsed.error is not None and "Final Answer" in parsed.error


def test_react_observations_and_stop() -> None:
    dialect = ReactDialect()
    call = ToolCall("call_0", "search_files", {"query": "port"})
    (message,) = dialect.observation_messages([(call, "services/billing.md:3: port 8443")])
    assert (message.role, message.content) == ("user", "Observation: services/billing.md:3: port 8443")
    request = dialect.request(TOOLS, final=False, grammar_ok=False)
    assert request.stop is not None and "Observation:" in request.stop
    assert request.grammar is None and request.tools is None


def test_react_grammar_only_for_grammar_capable_models() -> None:
    dialect = ReactDialect()
    acting = dialect.request(TOOLS, final=False, grammar_ok=True).grammar
    final = dialect.request(TOOLS, final=True, grammar_ok=True).grammar
    assert acting is not None and "Action: " in acting
    assert final is not None and "Action" not in final and "Final Answer: " in final


def test_react_system_prompt_names_tools_and_arguments() -> None:
    prompt = ReactDialect().system_prompt("Be careful.", TOOLS)
    assert "[list_files, read_file, search_files]" in prompt
    assert "start_line (integer, optional)" in prompt and "query (string)" in prompt
