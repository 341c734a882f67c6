"""Tongyi DeepResearch's protocol: <think>, <tool_call>{json}</tool_call>, <tool_response>, <answer>.

Observations go back as a *user* message wrapped in <tool_response>; generation stops before the
model starts writing one itself. The protocol is kept exactly: the model only reproduces its
results in its own format.
"""

from __future__ import annotations

import contextlib
import json
import re

from tongyi_agent.agent.dialects.base import Dialect
from tongyi_agent.agent.steps import ParsedTurn
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from tongyi_agent.tools.base import ToolRegistry

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)

STOP = ["\n<tool_response>", "<tool_response>"]


class TongyiDialect(Dialect):
    name = "tongyi"

    def system_prompt(self, instructions: str, tools: ToolRegistry) -> str:
        listed = "\n".join(json.dumps(t.openai_schema()["function"], ensure_ascii=False) for t in tools)
        return (
            f"{instructions}\n\n"
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{listed}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
            "Think inside <think></think> before acting. When you have the answer, put it inside "
            "<answer></answer> tags."
        )

    def request(self, tools: ToolRegistry, *, final: bool, grammar_ok: bool) -> ChatRequest:
        return ChatRequest(stop=STOP)

    def parse(self, response: ChatResponse, tool_names: set[str]) -> ParsedTurn:
        text = response.content
        thought = " ".join(m.strip() for m in _THINK.findall(text)) or (response.reasoning or "").strip()
        body = _THINK.sub("", text)
        answer = _ANSWER.search(body)
        if answer:
            return ParsedTurn(thought=thought, answer=answer.group(1).strip())
        blocks = _TOOL_CALL.findall(body)
        if not blocks:
            # No protocol tags at all: the text is the answer, even if it looks like JSON; never loop on it.
            plain = body.strip()
            if plain:
                return ParsedTurn(thought=thought, answer=plain)
            return ParsedTurn(thought=thought, error="Your reply was empty. Call a tool or give <answer></answer>.")
        calls = []
        for n, block in enumerate(blocks):
            try:
                data = json.loads(block.strip())
            except ValueError:
                return ParsedTurn(thought=thought, error=f"The text inside <tool_call> was not valid JSON: "
                                                         f"{block.strip()[:200]}")
            if not isinstance(data, dict) or not isinstance(data.get("name"), str):
                return ParsedTurn(thought=thought, error='A tool call must be {"name": ..., "arguments": {...}}.')
            arguments = data.get("arguments", {})
            if isinstance(arguments, str):
                with contextlib.suppress(ValueError):  # undecodable text stays a str: reported below
                    arguments = json.loads(arguments) if arguments.strip() else {}
            if not isinstance(arguments, dict):
                return ParsedTurn(thought=thought, error=f"The arguments of your {data['name']} call must be a "
                                                         f"JSON object, got: {json.dumps(arguments)[:200]}")
            calls.append(ToolCall(id=f"call_{n}", name=data["name"], arguments=arguments))
        return ParsedTurn(thought=thought, tool_calls=calls)

    def call_message(self, thought: str, call: ToolCall) -> ChatMessage:
        payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
        return ChatMessage(role="assistant", content=f"{_think(thought)}<tool_call>\n{payload}\n</tool_call>")

    def answer_message(self, thought: str, answer: str) -> ChatMessage:
        return ChatMessage(role="assistant", content=f"{_think(thought)}<answer>{answer}</answer>")

    def observation_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        body = "\n".join(f"<tool_response>\n{output}\n</tool_response>" for _, output in results)
        return [ChatMessage(role="user", content=body)]


def _think(thought: str) -> str:
    return f"<think>{thought}</think>\n" if thought else ""
