"""The one interface every model backend implements, and the message types it speaks.

Backends never record, retry across models or parse dialects: they turn a list of messages into one
response. The agent decides what the text means; the recorder decides what to keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    """A request from the model to run one tool."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ChatMessage:
    """One message of a conversation, in a provider-neutral shape."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens


@dataclass
class ChatResponse:
    """What a backend returns for one call."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    reasoning: str | None = None


@dataclass
class ChatRequest:
    """Options of one call beyond the messages. Backends ignore what they cannot honour,
    except `grammar`, which only grammar-capable backends accept (see `supports_grammar`)."""

    tools: list[dict[str, Any]] | None = None  # OpenAI function-tool schemas, for native calling
    stop: list[str] | None = None
    grammar: str | None = None  # GBNF text
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    timeout: float | None = None  # seconds this call may take, retries and backoff included (the run's deadline)
    once_per_reply: tuple[str, ...] = ()  # line prefixes a reply holds once; a streaming backend stops at a second


class ModelError(RuntimeError):
    """A backend failed after its own retries (network, HTTP status, load failure)."""


class DeadlineError(ModelError):
    """The call's time (ChatRequest.timeout) ran out before the model answered; no fallback is tried."""


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: `name` is the model id it reports; `chat` is one round trip."""

    name: str
    supports_grammar: bool

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse: ...
