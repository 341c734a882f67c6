"""Native function calling (OpenAI `tools`), with tool calls also accepted as text in content."""

from __future__ import annotations

from tongyi_agent.agent.dialects.base import Dialect
from tongyi_agent.agent.steps import ParsedTurn
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from tongyi_agent.llm.text_tool_calls import parse_tool_calls_from_text
from tongyi_agent.tools.base import ToolRegistry


class NativeDialect(Dialect):
    name = "native"

    def system_prompt(self, instructions: str, tools: ToolRegistry) -> str:
        return instructions

    def request(self, tools: ToolRegistry, *, final: bool, grammar_ok: bool) -> ChatRequest:
        return ChatRequest(tools=None if final else tools.openai_schemas())

    def parse(self, response: ChatResponse, tool_names: set[str]) -> ParsedTurn:
        calls = list(response.tool_calls)
        content = response.content
        if not calls and tool_names:
            calls, content = parse_tool_calls_from_text(content, tool_names)
        bad = [c for c in calls if "_raw" in c.arguments]
        if bad:
            return ParsedTurn(error=f"The arguments of your {bad[0].name} call were not valid JSON: "
                                    f"{bad[0].arguments['_raw'][:200]}. Call it again with a JSON object.")
        if calls:
            return ParsedTurn(thought=content.strip(), tool_calls=calls)
        return ParsedTurn(answer=content.strip())

    def assistant_message(self, response: ChatResponse, parsed: ParsedTurn) -> ChatMessage:
        # content "" rather than None: llama.cpp's server answers HTTP 500 to a null content.
        return ChatMessage(role="assistant", content=parsed.thought if parsed.tool_calls else response.content,
                           tool_calls=parsed.tool_calls)

    def call_message(self, thought: str, call: ToolCall) -> ChatMessage:
        return ChatMessage(role="assistant", content=thought, tool_calls=[call])

    def answer_message(self, thought: str, answer: str) -> ChatMessage:
        return ChatMessage(role="assistant", content=answer)

    def observation_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        return [ChatMessage(role="tool", content=output, tool_call_id=call.id, name=call.name)
                for call, output in results]
