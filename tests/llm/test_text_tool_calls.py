from __future__ import annotations

from tongyi_agent.llm.base import ToolCall
from tongyi_agent.llm.text_tool_calls import parse_tool_calls_from_text

TOOLS = {"search", "read_file"}


def test_tagged_call() -> None:
    calls, rest = parse_tool_calls_from_text(
        'Checking.\n<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>', TOOLS
    )
    assert calls == [ToolCall(id="call_1", name="search", arguments={"query": "x"})]
    assert rest == "Checking."


def test_unclosed_tag_at_end_of_text() -> None:
    # Generation often stops on the closing tag itself, so it never reaches the text.
    calls, rest = parse_tool_calls_from_text(
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "a"}}', TOOLS
    )
    assert calls == [ToolCall(id="call_1", name="read_file", arguments={"path": "a"})]
    assert rest == ""


def test_bare_json_variants() -> None:
    for text in (
        '{"name": "search", "arguments": {"query": "x"}}',
        '{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}',  # arguments as a JSON string
        '{"tool": "search", "tool_input": {"query": "x"}}',
        '{"type": "function", "function": {"name": "search", "arguments": {"query": "x"}}}',
        '{"function": "search", "parameters": {"query": "x"}}',
        '```json\n{"name": "search", "arguments": {"query": "x"}}\n```',
    ):
        calls, rest = parse_tool_calls_from_text(text, TOOLS)
        assert calls == [ToolCall(id="call_1", name="search", arguments={"query": "x"})], text
        assert rest == "", text


def test_multiple_calls_in_order_with_ids() -> None:
    text = (
        '<tool_call>{"name": "search", "arguments": {"query": "a"}}</tool_call>\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "b"}}</tool_call>'
    )
    calls, rest = parse_tool_calls_from_text(text, TOOLS)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_1", "search", {"query": "a"}),
        ("call_2", "read_file", {"path": "b"}),
    ]
    assert rest == ""
    calls, _ = parse_tool_calls_from_text(text, TOOLS, first_id=5)
    assert [c.id for c in calls] == ["call_5", "call_6"]


def test_list_of_calls() -> None:
    text = (
        '[{"name": "search", "arguments": {"query": "a"}}, {"name": "search", "arguments": {"query": "b"}}]'
    )
    calls, rest = parse_tool_calls_from_text(text, TOOLS)
    assert [c.arguments["query"] for c in calls] == ["a", "b"] and rest == ""


def test_malformed_json_in_tag_keeps_raw_arguments() -> None:
    inner = '{"name": "search", "arguments": {"query": "x"'
    calls, rest = parse_tool_calls_from_text(f"<tool_call>{inner}</tool_call>", TOOLS)
    assert calls == [ToolCall(id="call_1", name="search", arguments={"_raw": inner})]
    assert rest == ""


def test_malformed_bare_json_stays_text() -> None:
    text = 'I would call {"name": "search", "arguments": {"query": "x"'
    assert parse_tool_calls_from_text(text, TOOLS) == ([], text)


def test_undecodable_string_arguments_are_kept_raw() -> None:
    calls, _ = parse_tool_calls_from_text('{"name": "search", "arguments": "query=x"}', TOOLS)
    assert calls == [ToolCall(id="call_1", name="search", arguments={"_raw": "query=x"})]


def test_unknown_tool_name_is_ignored_and_left_in_text() -> None:
    text = '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
    assert parse_tool_calls_from_text(text, TOOLS) == ([], text)
    mixed = 'Example: {"name": "rm", "arguments": {}} then {"name": "search", "arguments": {"query": "q"}}'
    calls, rest = parse_tool_calls_from_text(mixed, TOOLS)
    assert [c.name for c in calls] == ["search"]
    assert rest == 'Example: {"name": "rm", "arguments": {}} then'


def test_ordinary_json_and_prose_are_untouched() -> None:
    for text in ('The config is {"name": "demo", "port": 8080}.', "No calls [here] {at all}.", ""):
        assert parse_tool_calls_from_text(text, TOOLS) == ([], text)


def test_missing_arguments_mean_empty() -> None:
    calls, _ = parse_tool_calls_from_text('{"name": "search"}', TOOLS)
    assert calls == [ToolCall(id="call_1", name="search", arguments={})]
