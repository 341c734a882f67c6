"""ReAct text protocol: Thought / Action / Action Input / Observation / Final Answer.

The most reliable protocol for the small embedded models (19/20 on file-lookup tasks with the
1.5B model). On grammar-capable backends a GBNF grammar built from the registry constrains it.
"""

from __future__ import annotations

import json
import re

from tongyi_agent.agent.dialects.base import Dialect, tool_lines
from tongyi_agent.agent.dialects.grammar import react_grammar
from tongyi_agent.agent.steps import ParsedTurn
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from tongyi_agent.tools.base import ToolRegistry

_FINAL = re.compile(r"Final Answer\s*:\s*(.*)", re.S | re.I)
# The Action line names the tool; a small model often repeats the arguments after the name there
# ("Action: search_files, query "zstd""), which the Action Input line states again.
_ACTION = re.compile(r"Action\s*:\s*([A-Za-z_][\w-]*)[^\n]*\n+\s*Action Input\s*:\s*(.*)", re.S | re.I)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*(?:Action|Final Answer)\s*:|$)", re.S | re.I)

STOP = ["\nObservation:", "Observation:"]
# One action or answer per reply: the parser reads the first, a second one is a turn of its own.
ONCE_PER_REPLY = ("Action:", "Action Input:", "Final Answer:")


class ReactDialect(Dialect):
    name = "react"

    def system_prompt(self, instructions: str, tools: ToolRegistry) -> str:
        names = ", ".join(tools.names())
        return (
            f"{instructions}\n\nYou have these tools:\n{tool_lines(tools)}\n\n"
            "Use exactly this format:\n"
            "Thought: what you will do next and why\n"
            f"Action: the tool to use, one of [{names}]\n"
            'Action Input: the arguments as a JSON object, e.g. {"query": "port"}\n'
            "Then stop; you will get back:\nObservation: the tool's result\n"
            "Repeat Thought/Action/Action Input as needed. When you know the answer, write:\n"
            "Thought: I know the answer\nFinal Answer: the answer"
        )

    def request(self, tools: ToolRegistry, *, final: bool, grammar_ok: bool) -> ChatRequest:
        grammar = react_grammar(tools, final_only=final) if grammar_ok else None
        return ChatRequest(stop=STOP, grammar=grammar, once_per_reply=ONCE_PER_REPLY)

    def parse(self, response: ChatResponse, tool_names: set[str]) -> ParsedTurn:
        text = response.content.strip()
        thought_match = _THOUGHT.search(text)
        thought = thought_match.group(1).strip() if thought_match else ""
        action = _ACTION.search(text)
        final = _FINAL.search(text)
        # Whichever comes first wins: a model that writes an action and then a made-up answer acted.
        if action and (not final or action.start() < final.start()):
            raw = action.group(2).strip()
            raw = raw.split("\nObservation", 1)[0].strip()
            try:
                arguments = json.JSONDecoder().raw_decode(raw)[0] if raw else {}
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                return ParsedTurn(thought=thought, error=f"Action Input must be a JSON object, got: {raw[:200]}")
            return ParsedTurn(thought=thought, tool_calls=[ToolCall(id="call_0", name=action.group(1),
                                                                    arguments=arguments)])
        if final:
            return ParsedTurn(thought=thought, answer=final.group(1).strip())
        if text and not thought_match:
            # Plain prose without the protocol: take it as the answer rather than loop on it.
            return ParsedTurn(answer=text)
        return ParsedTurn(thought=thought, error="Write either an Action with an Action Input, or a Final Answer.")

    def call_message(self, thought: str, call: ToolCall) -> ChatMessage:
        return ChatMessage(role="assistant", content=f"Thought: {thought or 'I will look this up.'}\n"
                                                     f"Action: {call.name}\nAction Input: {json.dumps(call.arguments)}")

    def answer_message(self, thought: str, answer: str) -> ChatMessage:
        return ChatMessage(role="assistant",
                           content=f"Thought: {thought or 'I know the answer'}\nFinal Answer: {answer}")

    def observation_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        body = "\n\n".join(f"Observation: {output}" for _, output in results)
        return [ChatMessage(role="user", content=body)]
