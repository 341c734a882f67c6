"""ChatModel over Anthropic's Messages API (Claude), with native tool use.

Written against the `anthropic` SDK 2.x, which sends ``anthropic-version: 2026-10-21``. That API version
rejects ``temperature``, ``top_p`` and ``top_k`` with HTTP 400 even at their default values, so this backend
never sends them (see `AnthropicBackend`).

Retries are ours, not the SDK's, for the same reasons as in `openai_compat`: one place decides what is
transient (429, 529 overloaded, 408, 5xx, connection errors, time-outs, an ``error`` event mid-stream) and
tests can shorten the backoff. The SDK client is therefore built with ``max_retries=0``.

The SDK reads several environment variables when a client is built without explicit arguments
(``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``, ``ANTHROPIC_BASE_URL``, credential profiles,
``ANTHROPIC_CUSTOM_HEADERS``, ``ANTHROPIC_OPEN_TELEMETRY*``). The config layer decides keys and endpoints
from the merged environment (.env files included), so every one of them is passed explicitly here.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tongyi_agent.llm.base import ChatMessage, ChatRequest, ChatResponse, ModelError, ToolCall, Usage
from tongyi_agent.llm.retry import (
    Attempt,
    Retry,
    Verdict,
    deadline_after,
    request_timeout,
    retry_after_seconds,
    scrub,
    with_fallback,
    with_retries,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

DEFAULT_BASE_URL = "https://api.anthropic.com"
# A proxy that needs no key still gets one: with no key at all the SDK goes looking for ANTHROPIC_API_KEY,
# ANTHROPIC_AUTH_TOKEN and credential profiles on disk.
_NO_KEY = "no-key-required"
# Error types that are worth another try. Needed beside the HTTP status because an `error` event inside a
# stream arrives on a response whose status is already 200.
_TRANSIENT_ERROR_TYPES = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
_ERROR_TYPE_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500, "timeout_error": 504}
# Tool output that starts with this is a failed call (ToolResult.error); the API lets us say so.
_TOOL_ERROR_PREFIX = "Error:"


# -- request conversion ---------------------------------------------------------------------------------


def to_anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function-tool schemas as Anthropic tool definitions."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        fn = tool.get("function", tool)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        schema = fn.get("parameters") or fn.get("input_schema") or {}
        if not isinstance(schema, dict) or schema.get("type") != "object":
            # The API requires an object schema; tools without parameters still need one.
            schema = {"type": "object", "properties": {}}
        item: dict[str, Any] = {"name": fn["name"], "input_schema": schema}
        if fn.get("description"):
            item["description"] = str(fn["description"])
        out.append(item)
    return out


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _call_as_text(call: ToolCall) -> str:
    return f"[tool call {call.name} {json.dumps(call.arguments, ensure_ascii=False)}]"


def to_anthropic_messages(
    messages: list[ChatMessage], *, tool_blocks: bool = True
) -> tuple[str | None, list[dict[str, Any]]]:
    """Our messages as the Messages API wants them: ``(system, messages)``.

    * system messages (wherever they stand) become the top-level ``system`` text;
    * assistant tool calls become ``tool_use`` blocks, tool messages ``tool_result`` blocks in a user turn;
    * consecutive messages of one role are merged, because the API requires user and assistant to alternate
      (several tool results, or tool results followed by a note from the loop, form one user turn);
    * empty text is dropped: the API rejects empty text blocks and empty messages.

    With ``tool_blocks=False`` tool turns are written as plain text instead, for requests that offer no
    tools: the API refuses ``tool_use``/``tool_result`` blocks in a request without ``tools``.
    """
    system_parts: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, list(blocks)))

    for msg in messages:
        text = msg.content or ""
        if msg.role == "system":
            if text.strip():
                system_parts.append(text)
        elif msg.role == "user":
            add("user", [_text_block(text)] if text.strip() else [])
        elif msg.role == "assistant":
            blocks = [_text_block(text)] if text.strip() else []
            if tool_blocks:
                blocks += [
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                    for call in msg.tool_calls
                ]
            elif msg.tool_calls:
                calls = "\n".join(_call_as_text(call) for call in msg.tool_calls)
                blocks = [_text_block(f"{text}\n{calls}".strip())]
            add("assistant", blocks)
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise ModelError("tool message without tool_call_id cannot be sent to the Anthropic API")
            if tool_blocks:
                block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id}
                if text:
                    block["content"] = text
                if text.startswith(_TOOL_ERROR_PREFIX):
                    block["is_error"] = True
                add("user", [block])
            else:
                label = msg.name or msg.tool_call_id
                add("user", [_text_block(f"[tool result {label}]\n{text or '(no output)'}")])

    out: list[dict[str, Any]] = []
    for role, blocks in turns:
        if role == "user":
            # tool_result blocks must open the user turn that answers the tool_use blocks.
            blocks = [b for b in blocks if b["type"] == "tool_result"] + [
                b for b in blocks if b["type"] != "tool_result"
            ]
        out.append({"role": role, "content": blocks})
    return ("\n\n".join(system_parts) or None), out


def _has_tool_blocks(messages: list[ChatMessage]) -> bool:
    return any(m.role == "tool" or (m.role == "assistant" and m.tool_calls) for m in messages)


# -- response conversion --------------------------------------------------------------------------------


def from_anthropic_message(data: dict[str, Any], fallback_model: str) -> ChatResponse:
    """A Messages API response (as a dict) in our shape."""
    texts: list[str] = []
    thoughts: list[str] = []
    tool_calls: list[ToolCall] = []
    for n, block in enumerate(data.get("content") or [], start=1):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            raw = block.get("input")
            arguments = raw if isinstance(raw, dict) else {"_raw": json.dumps(raw)}
            tool_calls.append(
                ToolCall(id=str(block.get("id") or f"toolu_{n}"), name=str(block.get("name", "")), arguments=arguments)
            )
        elif kind == "thinking" and block.get("thinking"):
            thoughts.append(str(block["thinking"]))
    usage_data = data.get("usage") or {}
    # Cached prompt tokens are reported apart from input_tokens; the token budget should count them too.
    input_tokens = sum(
        int(usage_data.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return ChatResponse(
        content="".join(texts),
        tool_calls=tool_calls,
        usage=Usage(input_tokens=input_tokens, output_tokens=int(usage_data.get("output_tokens") or 0)),
        model=str(data.get("model") or fallback_model),
        finish_reason=data.get("stop_reason"),
        reasoning="\n\n".join(thoughts) or None,
    )


# -- the backend ----------------------------------------------------------------------------------------


class AnthropicBackend:
    """ChatModel for Claude over the Messages API. `name` is the primary model id.

    `default_temperature` and `default_top_p` (and ChatRequest.temperature/top_p) are accepted so that
    profiles stay interchangeable, but are not sent: API version 2026-10-21 answers 400 to them.
    `max_tokens` is the reply limit used when a request names none (the API requires one).
    """

    supports_grammar = False

    def __init__(
        self,
        model_id: str,
        api_key: str | None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        fallback_model_id: str | None = None,
        max_tokens: int = 1024,
        default_temperature: float | None = None,
        default_top_p: float | None = None,
        stream: bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.name = model_id
        self.base_url = _normalise_base_url(base_url or DEFAULT_BASE_URL)
        self.timeout = timeout
        self.max_retries = max_retries
        self.fallback_model_id = fallback_model_id
        self.max_tokens = max_tokens
        self.default_temperature = default_temperature
        self.default_top_p = default_top_p
        self.stream = stream
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._api_key = api_key or _NO_KEY
        self._host = urlsplit(self.base_url).netloc or self.base_url
        self._client: AsyncAnthropic | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # no key here, ever
        return f"AnthropicBackend(model_id={self.name!r}, base_url={self.base_url!r})"

    def _get_client(self) -> AsyncAnthropic:
        # Imported here: the SDK is slow to import and most commands never talk to a remote model.
        # The client's connection pool belongs to the loop that first used it; a later asyncio.run()
        # (one per CLI question) must not reuse sockets of a closed loop, so build one per loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from anthropic import AsyncAnthropic

            client = AsyncAnthropic(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,
                # An explicit option stops the SDK from reading ANTHROPIC_OPEN_TELEMETRY*: runs are traced by
                # our recorder, and SDK spans or trace headers would appear only when some env var said so.
                open_telemetry={"traces": False, "propagation": False},
            )
            # The SDK merges ANTHROPIC_CUSTOM_HEADERS from os.environ into every request and offers no
            # switch for it; headers are the config layer's business, so drop what it picked up.
            if isinstance(getattr(client, "_custom_headers", None), dict):
                client._custom_headers = {}
            self._client = client
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _payload(self, messages: list[ChatMessage], request: ChatRequest) -> dict[str, Any]:
        offers_tools = bool(request.tools)
        system, wire_messages = to_anthropic_messages(
            messages, tool_blocks=offers_tools or not _has_tool_blocks(messages)
        )
        if not wire_messages:
            raise ModelError(f"{self.name}: nothing to send (the conversation has no user message)")
        payload: dict[str, Any] = {
            "messages": wire_messages,
            "max_tokens": request.max_tokens if request.max_tokens is not None else self.max_tokens,
        }
        if system:
            payload["system"] = system
        if request.tools:
            payload["tools"] = to_anthropic_tools(request.tools)
        # The API rejects stop sequences that are only whitespace ("\n\n"); the model stops at end_turn anyway.
        stop = [s for s in request.stop or [] if s.strip()]
        if stop:
            payload["stop_sequences"] = stop
        return payload

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        request = request or ChatRequest()
        payload = self._payload(messages, request)
        deadline = deadline_after(request.timeout)
        data = await with_fallback(
            lambda model_id: self._call_with_retries(model_id, payload, deadline), self.name, self.fallback_model_id
        )
        return from_anthropic_message(data, self.name)

    async def _once(self, client: AsyncAnthropic, model_id: str, payload: dict[str, Any],
                    deadline: float | None) -> dict[str, Any]:
        timeout = request_timeout(self.timeout, deadline)
        if not self.stream:
            message = await client.messages.create(model=model_id, timeout=timeout, **payload)
            if not hasattr(message, "to_dict"):  # the SDK hands back raw text for non-JSON bodies (proxies)
                raise Attempt(f"{model_id} at {self._host}: response was not JSON", fall_back=True)
            return message.to_dict()
        # Streaming keeps long replies under proxies' idle time-outs; the SDK's helper assembles text deltas
        # and partial tool-input JSON into the same Message a non-streamed call returns.
        async with client.messages.stream(model=model_id, timeout=timeout, **payload) as stream:
            final = await stream.get_final_message()
        data = final.to_dict()
        if data.get("stop_reason") is None:
            # The connection ended before message_delta: a cut-off reply, not an answer.
            raise _StreamCut()
        return data

    async def _call_with_retries(self, model_id: str, payload: dict[str, Any],
                                 deadline: float | None) -> dict[str, Any]:
        client = self._get_client()
        return await with_retries(
            lambda: self._once(client, model_id, payload, deadline),
            lambda err: self._classify(err, f"{model_id} at {self._host}"),
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            deadline=deadline,
        )

    def _classify(self, err: Exception, where: str) -> Verdict:
        """What an SDK error means: retry, give up on this model id, or (None) not ours to handle."""
        import anthropic
        import httpx2

        if isinstance(err, anthropic.APIStatusError):
            error_type = err.type if isinstance(err.type, str) else None
            # An `error` event mid-stream comes on a 200 response: its type tells what happened.
            status = err.status_code if err.status_code >= 400 else _ERROR_TYPE_STATUS.get(error_type or "", 500)
            kind = f" {error_type}" if error_type else ""
            detail = self._scrub(f"{where}: HTTP {status}{kind}: {self._server_message(err)}")
            # Auth failures would fail the same way on the fallback model; anything else may not.
            fall_back = status not in (401, 403)
            if not (status in (408, 429) or status >= 500 or error_type in _TRANSIENT_ERROR_TYPES):
                return Attempt(detail, fall_back=fall_back)
            return Retry(detail, after=retry_after_seconds(err.response.headers), fall_back=fall_back)
        if isinstance(err, anthropic.APITimeoutError):
            return Retry(f"{where}: timed out after {self.timeout:g}s")
        if isinstance(err, (anthropic.APIConnectionError, httpx2.TransportError, _StreamCut)):
            # httpx2 errors raised while reading a stream reach us unwrapped by the SDK.
            cause = err.__cause__ or err
            return Retry(self._scrub(f"{where}: connection failed: {cause}"))
        if isinstance(err, (anthropic.AnthropicError, ValueError)):
            # A body the SDK cannot parse, or tool-input JSON it cannot decode: retrying will not help.
            return Attempt(self._scrub(f"{where}: {err}"), fall_back=True)
        return None

    @staticmethod
    def _server_message(err: Any) -> str:
        if getattr(err, "api_message", None):
            return str(err.api_message)
        body = err.body
        if isinstance(body, dict):
            inner = body.get("error")
            message = (inner.get("message") if isinstance(inner, dict) else inner) or body.get("message")
            if message:
                return str(message)
        if isinstance(body, str) and body.strip():
            return body
        return str(getattr(err, "message", "") or "no error message")

    def _scrub(self, text: str) -> str:
        return scrub(text, self._api_key if self._api_key != _NO_KEY else None)


class _StreamCut(Exception):
    """The stream closed before the message was complete."""

    def __str__(self) -> str:
        return "the stream ended before the reply was complete"


def _normalise_base_url(url: str) -> str:
    # The SDK appends /v1/messages to the API root. OpenAI-style roots end in /v1 (as the openai profiles in
    # models.ini do); accept that spelling here too rather than posting to /v1/v1/messages.
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url
