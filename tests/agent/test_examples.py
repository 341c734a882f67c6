"""Worked examples rendered in each dialect, inside a token budget, observations shortened first."""

from __future__ import annotations

import json

from tongyi_agent.agent.context import CHARS_PER_TOKEN
from tongyi_agent.agent.dialects import get_dialect
from tongyi_agent.agent.examples import ExampleStep, WorkedExample, message_chars, render_examples, shorten
from tongyi_agent.llm.base import ChatResponse
from tongyi_agent.tools import default_registry

OBSERVATION = "\n".join([f"notes/file{i}.md:{i}: filler line number {i} " + "x" * 40 for i in range(30)]
                        + ["services/billing.md:7: - Listens on port 8443 (HTTPS only)."])


def _example(example_id: int = 1, observation: str = OBSERVATION) -> WorkedExample:
    steps = [ExampleStep("search_files", {"query": "billing port"}, observation, "I will search for the port.")]
    return WorkedExample(example_id, "Which port does billing listen on?", steps, "Port 8443.",
                         cited=["- Listens on port 8443 (HTTPS only)."])


def test_react_examples_are_thought_action_observation_final_answer() -> None:
    messages, shown = render_examples([_example()], get_dialect("react"), budget_tokens=5000)
    assert shown == [1]
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0].content.endswith("Which port does billing listen on?")
    assert messages[1].content == ('Thought: I will search for the port.\nAction: search_files\n'
                                   'Action Input: {"query": "billing port"}')
    assert messages[2].content.startswith("Observation: notes/file0.md:0")
    assert messages[3].content.endswith("Final Answer: Port 8443.")
    # The dialect reads its own example turns back as the same call and answer.
    react = get_dialect("react")
    call = react.parse(ChatResponse(content=messages[1].content), {"search_files"}).tool_calls[0]
    assert (call.name, call.arguments) == ("search_files", {"query": "billing port"})
    assert react.parse(ChatResponse(content=messages[3].content), set()).answer == "Port 8443."


def test_tongyi_examples_use_its_tags_and_user_tool_responses() -> None:
    tongyi = get_dialect("tongyi")
    messages, _ = render_examples([_example()], tongyi, budget_tokens=5000)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1].content.startswith("<think>I will search for the port.</think>\n<tool_call>\n")
    payload = messages[1].content.split("<tool_call>\n", 1)[1].split("\n</tool_call>", 1)[0]
    assert json.loads(payload) == {"name": "search_files", "arguments": {"query": "billing port"}}
    assert messages[2].content.startswith("<tool_response>\n")
    assert tongyi.parse(ChatResponse(content=messages[3].content), set()).answer == "Port 8443."


def test_native_examples_are_tool_call_and_tool_messages() -> None:
    messages, _ = render_examples([_example()], get_dialect("native"), budget_tokens=5000)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1].tool_calls[0]
    assert (call.name, call.arguments, call.id) == ("search_files", {"query": "billing port"}, "example1_call_0")
    assert messages[2].tool_call_id == call.id and messages[2].name == "search_files"
    assert messages[3].content == "Port 8443."


def test_budget_shortens_observations_first_keeping_the_cited_line() -> None:
    full, _ = render_examples([_example()], get_dialect("react"), budget_tokens=5000)
    budget = 200  # tokens: far less than the full observation
    messages, shown = render_examples([_example()], get_dialect("react"), budget_tokens=budget)
    assert shown == [1]
    assert message_chars(messages) <= budget * CHARS_PER_TOKEN < message_chars(full)
    observation = messages[2].content
    assert "Listens on port 8443" in observation and "[…]" in observation
    assert messages[1].content == full[1].content  # the call itself is never cut


def test_whole_examples_are_dropped_least_similar_first_when_shortening_is_not_enough() -> None:
    two = [_example(1), _example(2)]
    messages, shown = render_examples(two, get_dialect("react"), budget_tokens=90)
    assert shown == [1]
    assert message_chars(messages) <= 90 * CHARS_PER_TOKEN
    assert messages[2].content == "Observation: […]"  # even the cited line did not fit
    assert render_examples(two, get_dialect("react"), budget_tokens=5) == ([], [])


def test_the_loop_puts_examples_between_the_system_prompt_and_the_question(tmp_path) -> None:
    from tongyi_agent.agent.loop import Agent
    from tongyi_agent.llm.scripted import ScriptedModel

    # "42" rests on no tool result: the grounding check asks once, and the model insists.
    model = ScriptedModel(["Thought: I know the answer\nFinal Answer: 42"] * 2)
    agent = Agent(model, default_registry(["read_file"]), get_dialect("react"), tmp_path)
    examples, _ = render_examples([_example()], get_dialect("react"), budget_tokens=5000)
    result = agent.variant(examples=examples).run_sync("What is the answer?")
    sent = model.calls[0].messages
    assert result.answer == "42"
    assert [m.content for m in sent[1:5]] == [m.content for m in examples]
    assert sent[-1].content == "What is the answer?" and sent[0].role == "system"


def test_shorten_keeps_short_text_whole() -> None:
    assert shorten("a\nb", 10, []) == "a\nb"
    assert shorten("aaaa\nbbbb\ncccc", 6, ["cccc"]) == "[…]\ncccc"
