"""The agent loop with an in-process scripted model and the real file tools on a temporary project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.conftest import BILLING_LINE
from tongyi_agent.agent.budget import Budget
from tongyi_agent.agent.dialects import NativeDialect, ReactDialect, TongyiDialect
from tongyi_agent.agent.loop import NOT_FOUND, Agent, AgentSpec
from tongyi_agent.agent.steps import ModelStep, NoteStep, Step, ToolStep
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ModelError, ToolCall, Usage
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import Tool, ToolContext, ToolRegistry, ToolResult

QUESTION = "Which port does billing use?"
ANSWER = "The billing service listens on port 8443."


def call(name: str, call_id: str = "c1", **arguments: object) -> ChatResponse:
    return ChatResponse(content="", tool_calls=[ToolCall(call_id, name, dict(arguments))])


def agent(model: ScriptedModel, root: Path, dialect=None, tools: ToolRegistry | None = None,
          **spec: object) -> Agent:
    return Agent(model, tools or default_registry(), dialect or NativeDialect(), root, AgentSpec(**spec))


def kinds(steps: list[Step]) -> list[str]:
    return [type(s).__name__ for s in steps]


async def test_search_then_answer_cites_the_real_line(project: Path) -> None:
    model = ScriptedModel([call("search_files", query="billing port"), ANSWER])
    result = await agent(model, project).run(QUESTION)

    assert (result.answer, result.stop_reason, result.model) == (ANSWER, "answer", "scripted")
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]
    assert result.sources[0].text == BILLING_LINE
    assert result.render_sources() == "- services/billing.md:3"
    assert kinds(result.steps) == ["ModelStep", "ToolStep", "ModelStep"]
    assert result.model_calls == 2 and result.usage.total_tokens > 0
    # The second call saw the question, the call and the tool's real output.
    sent = model.calls[1].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[1].content == QUESTION
    assert sent[2].tool_calls[0].name == "search_files" and sent[2].content == ""
    assert sent[3].tool_call_id == "c1" and f"services/billing.md:3: {BILLING_LINE}" in sent[3].content
    assert model.calls[0].request.tools is not None and model.remaining == 0


async def test_models_own_source_list_is_replaced(project: Path) -> None:
    model = ScriptedModel([call("search_files", query="billing port"),
                           f"{ANSWER}\n\nSources:\n- services/billing.md:3\n- docs/ports.md:7\n"])
    result = await agent(model, project).run(QUESTION)
    assert result.answer == ANSWER
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]


async def test_answer_without_tools_is_looked_up_before_it_is_accepted(project: Path) -> None:
    model = ScriptedModel(["Port 9000, I believe.", "Port 9000, I believe."])
    result = await agent(model, project).run(QUESTION)
    # The grounding check ran the look-up itself (which shows 8443); the model insisted on 9000,
    # so the answer stays marked and cites nothing.
    assert kinds(result.steps) == ["ModelStep", "ToolStep", "NoteStep", "ModelStep"]
    assert "the numbers in it appear in no tool result" in model.calls[1].messages[-1].content
    assert "port 8443" in "\n".join(m.content or "" for m in model.calls[1].messages)
    assert result.answer == "Port 9000, I believe." and result.sources == []
    assert (result.grounded, result.unsupported) == (False, ["9000"])


async def test_answer_without_tools_is_accepted_as_is_with_grounding_off(project: Path) -> None:
    result = await agent(ScriptedModel(["Port 8443, I believe."]), project, grounding="off").run(QUESTION)
    assert result.answer == "Port 8443, I believe." and result.grounded is None and result.model_calls == 1


async def test_step_limit_forces_a_final_answer_without_tools(project: Path) -> None:
    model = ScriptedModel([call("list_files"), call("search_files", "c2", query="port"),
                           "It was not found in the files."])
    result = await agent(model, project, max_steps=2).run(QUESTION)

    assert result.stop_reason == "forced"
    assert result.answer == "It was not found in the files."
    assert result.model_calls == 3 and len(result.tool_calls) == 2
    assert [c.request.tools is None for c in model.calls] == [False, False, True]
    forced = model.calls[2].messages[-1]
    assert forced.role == "user" and "Stop using tools now" in forced.content and "step limit of 2" in forced.content
    notes = [s for s in result.steps if isinstance(s, NoteStep)]
    assert len(notes) == 1 and notes[0].text == forced.content
    last = result.steps[-1]
    assert isinstance(last, ModelStep) and last.forced


async def test_forced_turn_that_still_calls_a_tool_says_not_found(project: Path) -> None:
    model = ScriptedModel([call("list_files"), call("search_files", "c2", query="port")])
    result = await agent(model, project, max_steps=1).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", NOT_FOUND)
    assert len(result.tool_calls) == 1  # the call in the forced turn is not run


async def test_tongyi_forced_turn_that_still_calls_a_tool_does_not_answer_with_the_call(project: Path) -> None:
    tool_call = '<tool_call>\n{"name": "list_files", "arguments": {}}\n</tool_call>'
    model = ScriptedModel([tool_call, tool_call])
    result = await agent(model, project, dialect=TongyiDialect(), max_steps=1).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", NOT_FOUND)


async def test_forced_turn_prose_without_tags_is_the_answer(project: Path) -> None:
    model = ScriptedModel(['<tool_call>{"name": "list_files", "arguments": {}}</tool_call>',
                           "<think>Nothing about ports.</think>It was not found in the files."])
    result = await agent(model, project, dialect=TongyiDialect(), max_steps=1).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", "It was not found in the files.")


async def test_react_forced_turn_uses_the_final_only_grammar(project: Path) -> None:
    model = ScriptedModel([
        'Thought: look\nAction: search_files\nAction Input: {"query": "billing port"}',
        "Thought: I know it\nFinal Answer: Port 8443.",
    ], supports_grammar=True)
    result = await agent(model, project, dialect=ReactDialect(), max_steps=1, grammar="always").run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", "Port 8443.")
    first, forced = (c.request.grammar for c in model.calls)
    assert first is not None and "Action: " in first and "search_files" in first
    assert forced is not None and "Action" not in forced and "Final Answer" in forced
    assert [s.label() for s in result.sources] == ["services/billing.md:3"]


async def test_react_grammar_on_demand_constrains_only_the_re_ask_and_the_forced_turn(project: Path) -> None:
    model = ScriptedModel([
        'Thought: look\nAction: search_files\nAction Input: {"query": "billing port"}',
        "Thought: look again\nAction: search_files\nAction Input: {query: billing}",  # malformed
        'Thought: look\nAction: read_file\nAction Input: {"path": "services/billing.md"}',
        "Thought: I know it\nFinal Answer: Port 8443.",
    ], supports_grammar=True)
    result = await agent(model, project, dialect=ReactDialect(), max_steps=3).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", "Port 8443.")
    grammars = [c.request.grammar for c in model.calls]
    assert grammars[0] is None and grammars[1] is None  # well-formed so far: sampled freely
    assert grammars[2] is not None and "Action: " in grammars[2]  # the re-ask after the malformed reply
    assert grammars[3] is not None and "Action" not in grammars[3]  # the forced answer


async def test_token_budget_forces_an_answer(project: Path) -> None:
    big = call("search_files", query="billing port")
    big.usage = Usage(input_tokens=900, output_tokens=200)
    model = ScriptedModel([big, "Not found in the files."])
    result = await agent(model, project, max_tokens=1000).run(QUESTION)
    assert (result.stop_reason, result.answer) == ("forced", "Not found in the files.")
    assert result.model_calls == 2
    assert "token budget of 1000 tokens" in model.calls[1].messages[-1].content
    assert model.calls[1].request.tools is None


async def test_no_time_left_ends_the_run_without_a_model_call(project: Path) -> None:
    model = ScriptedModel(["Not found in the files."])
    result = await agent(model, project, max_seconds=0).run(QUESTION)
    assert result.stop_reason == "deadline" and model.calls == []
    assert result.answer == "I could not finish within the time limit of 0 s."
    assert "time limit of 0 s was reached" in result.steps[-1].text


def test_the_answer_is_forced_when_only_the_reserve_is_left() -> None:
    budget = Budget(max_seconds=10)
    assert budget.reserve == 2 and budget.exhausted() is None
    budget.started -= 8.5  # as if 8.5 s had passed: less than the 2 s reserve is left
    assert budget.exhausted() == "time limit of 10 s almost reached"
    assert budget.tool_deadline == budget.deadline - 2 and 1 < budget.remaining() < 2


async def test_the_forced_answer_gets_the_time_left_as_its_timeout(project: Path) -> None:
    model = ScriptedModel(["Not found in the files."])
    result = await agent(model, project, max_seconds=1e-9 + 300).run(QUESTION)
    assert result.stop_reason == "answer"
    assert 0 < model.calls[0].request.timeout <= 300


def counting_registry(calls: list[str]) -> ToolRegistry:
    def count(ctx: ToolContext, word: str) -> ToolResult:
        """Count a word.

        Args:
            word: the word
        """
        calls.append(word)
        return ToolResult(f"counted {word}")

    registry = default_registry()
    registry.add(Tool.from_function(count))
    return registry


async def test_repeat_guard_skips_the_repeat_and_forces_on_the_third(project: Path) -> None:
    ran: list[str] = []
    model = ScriptedModel([call("count", "c1", word="port"), call("count", "c2", word="port"),
                           call("count", "c3", word="other"), call("count", "c4", word="port"),
                           "Not found in the files."])
    result = await agent(model, project, tools=counting_registry(ran)).run(QUESTION)

    assert ran == ["port", "other"]  # the repeats were not executed
    tool_steps = result.tool_calls
    assert [(s.call.arguments["word"], s.skipped) for s in tool_steps] == [
        ("port", None), ("port", "repeat"), ("other", None), ("port", "repeat")]
    assert not tool_steps[1].result.ok and "already called count" in tool_steps[1].result.output
    # The model is told, in the tool message answering its call.
    told = model.calls[2].messages[-1]
    assert (told.role, told.tool_call_id) == ("tool", "c2") and "already called count" in told.content
    # The second repeat forces the answer.
    assert result.stop_reason == "forced" and result.answer == "Not found in the files."
    assert model.calls[4].request.tools is None
    assert "repeated" in model.calls[4].messages[-1].content
    assert model.remaining == 0


async def test_same_tool_with_other_arguments_is_not_a_repeat(project: Path) -> None:
    ran: list[str] = []
    model = ScriptedModel([call("count", "c1", word="a"), call("count", "c2", word="b"), "done"])
    result = await agent(model, project, tools=counting_registry(ran)).run(QUESTION)
    assert ran == ["a", "b"] and result.stop_reason == "answer"
    assert all(s.skipped is None for s in result.tool_calls)


async def test_malformed_reply_is_told_and_counts_against_the_budget(project: Path) -> None:
    bad = call("read_file", path="x")
    bad.tool_calls[0].arguments = {"_raw": '{"path": README.md'}
    model = ScriptedModel([bad, bad, "Not found in the files."])
    result = await agent(model, project, max_steps=2).run(QUESTION)

    assert result.stop_reason == "forced" and result.model_calls == 3
    assert result.tool_calls == []
    told = model.calls[1].messages
    assert [m.role for m in told] == ["system", "user", "assistant", "user"]
    assert "not valid JSON" in told[-1].content
    notes = [s.text for s in result.steps if isinstance(s, NoteStep)]
    assert len(notes) == 3 and all("not valid JSON" in n for n in notes[:2])


async def test_tongyi_malformed_call_then_answer(project: Path) -> None:
    model = ScriptedModel(['<tool_call>{"name": "search_files", "arguments": {"query": </tool_call>',
                           "<answer>Port 8443.</answer>"])
    # Grounding off: this is about the malformed call, and the scripted answer looked nothing up.
    result = await agent(model, project, dialect=TongyiDialect(), grounding="off").run(QUESTION)
    assert (result.answer, result.stop_reason) == ("Port 8443.", "answer")
    assert "not valid JSON" in model.calls[1].messages[-1].content
    assert kinds(result.steps) == ["ModelStep", "NoteStep", "ModelStep"]


async def test_empty_reply_is_told_to_the_model(project: Path) -> None:
    model = ScriptedModel(["", ANSWER])
    result = await agent(model, project, grounding="off").run(QUESTION)
    assert result.answer == ANSWER
    assert model.calls[1].messages[-1].role == "user" and "empty" in model.calls[1].messages[-1].content


async def test_tool_errors_come_back_as_observations(project: Path) -> None:
    model = ScriptedModel([
        ChatResponse(content="", tool_calls=[
            ToolCall("c1", "delete_everything", {}),
            ToolCall("c2", "read_file", {"path": "../../etc/passwd"}),
            ToolCall("c3", "read_file", {"path": "README.md", "colour": "red"}),
        ]),
        "Not found in the files.",
    ])
    result = await agent(model, project).run(QUESTION)
    assert result.stop_reason == "answer"
    assert [s.result.ok for s in result.tool_calls] == [False, False, False]
    observations = model.calls[1].messages[-3:]
    assert [(m.role, m.tool_call_id) for m in observations] == [("tool", "c1"), ("tool", "c2"), ("tool", "c3")]
    assert "unknown tool 'delete_everything'" in observations[0].content
    assert "outside the project root" in observations[1].content
    assert "unknown argument(s) colour" in observations[2].content
    assert all(m.content.startswith("Error: ") for m in observations)


async def test_long_observations_are_capped(project: Path) -> None:
    (project / "big.txt").write_text("".join(f"line {n} of filler text\n" for n in range(500)))
    model = ScriptedModel([call("read_file", path="big.txt"), "done"])
    await agent(model, project, max_observation_chars=300).run(QUESTION)
    observation = model.calls[1].messages[-1].content
    assert "[output cut at 300 characters" in observation and len(observation) < 400


async def test_react_run_renders_observations(project: Path) -> None:
    model = ScriptedModel(['Thought: search\nAction: search_files\nAction Input: {"query": "billing port"}',
                           "Thought: I know the answer\nFinal Answer: Port 8443."])
    result = await agent(model, project, dialect=ReactDialect()).run(QUESTION)
    assert result.answer == "Port 8443."
    sent = model.calls[1].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1].content.startswith("Observation: ") and "services/billing.md:3" in sent[-1].content
    assert model.calls[0].request.stop is not None and "Observation:" in model.calls[0].request.stop
    assert model.calls[0].request.grammar is None  # the scripted model is not grammar-capable


async def test_history_comes_between_system_and_question(project: Path) -> None:
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello.")]
    model = ScriptedModel([ANSWER])
    await agent(model, project, grounding="off").run(QUESTION, history)
    assert [(m.role, m.content) for m in model.calls[0].messages[1:]] == [
        ("user", "Hi"), ("assistant", "Hello."), ("user", QUESTION)]


async def test_backend_errors_propagate(project: Path) -> None:
    with pytest.raises(ModelError, match="server down"):
        await agent(ScriptedModel([ModelError("server down")]), project).run(QUESTION)


def test_run_sync(project: Path) -> None:
    model = ScriptedModel([call("search_files", query="billing port"), ANSWER])
    result = agent(model, project).run_sync(QUESTION)
    assert result.answer == ANSWER and [s.label() for s in result.sources] == ["services/billing.md:3"]


async def test_on_step_receives_every_step_in_order(project: Path) -> None:
    seen: list[Step] = []

    def check_request(messages: list[ChatMessage], request: ChatRequest) -> str:
        # Steps are reported as they happen, not at the end.
        assert kinds(seen) == ["ModelStep", "ToolStep", "ModelStep", "NoteStep", "NoteStep"]
        return "Not found."

    model = ScriptedModel([call("search_files", query="port"), "", check_request])
    spec = AgentSpec(max_steps=2)
    result = await Agent(model, default_registry(), NativeDialect(), project, spec, on_step=seen.append).run(QUESTION)
    assert seen == result.steps
    assert [s.index for s in seen] == list(range(len(seen)))
    assert kinds(seen) == ["ModelStep", "ToolStep", "ModelStep", "NoteStep", "NoteStep", "ModelStep"]
    assert isinstance(seen[1], ToolStep) and seen[1].call.name == "search_files"
