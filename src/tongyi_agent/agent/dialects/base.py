"""One interface for the ways a model can ask for tools.

A dialect renders the system prompt and the request options, parses a response into a ParsedTurn,
and renders the assistant turn and the observations back into messages. The loop never looks at raw
model text itself.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod

from tongyi_agent.agent.steps import ParsedTurn
from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from tongyi_agent.tools.base import ToolRegistry


class Dialect(ABC):
    name: str

    @abstractmethod
    def system_prompt(self, instructions: str, tools: ToolRegistry) -> str:
        """The full system message: instructions plus whatever the protocol needs."""

    @abstractmethod
    def request(self, tools: ToolRegistry, *, final: bool, grammar_ok: bool) -> ChatRequest:
        """Options for the next call; `final` means tools are no longer allowed."""

    @abstractmethod
    def parse(self, response: ChatResponse, tool_names: set[str]) -> ParsedTurn: ...

    def assistant_message(self, response: ChatResponse, parsed: ParsedTurn) -> ChatMessage:
        return ChatMessage(role="assistant", content=response.content.strip())

    @abstractmethod
    def observation_messages(self, results: list[tuple[ToolCall, str]]) -> list[ChatMessage]:
        """Messages carrying tool outputs back to the model, in call order."""

    def note_message(self, text: str) -> ChatMessage:
        """A message from the loop itself (repeat guard, format error, forced answer)."""
        return ChatMessage(role="user", content=text)

    @abstractmethod
    def call_message(self, thought: str, call: ToolCall) -> ChatMessage:
        """The assistant turn that makes ``call``, written as this protocol's model would write it
        (worked examples from earlier runs are replayed in the model's own dialect)."""

    @abstractmethod
    def answer_message(self, thought: str, answer: str) -> ChatMessage:
        """The assistant turn that gives the final ``answer`` in this protocol."""


def looks_like_json(text: str) -> bool:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def tool_lines(tools: ToolRegistry) -> str:
    """A compact, model-readable description of each tool and its arguments."""
    lines = []
    for tool in tools:
        args = []
        for pname, prop in tool.parameters["properties"].items():
            required = pname in tool.parameters["required"]
            ptype = prop["type"] if isinstance(prop["type"], str) else prop["type"][0]
            desc = f" - {prop['description']}" if prop.get("description") else ""
            args.append(f"    {pname} ({ptype}{'' if required else ', optional'}){desc}")
        lines.append(f"{tool.name}: {tool.description}\n" + "\n".join(args))
    return "\n".join(lines)
