"""ChatModel over any OpenAI-compatible Chat Completions server (OpenAI, OpenRouter, llama.cpp, vLLM...).

Retries are ours, not the SDK's: the SDK's backoff base is a module constant (0.5 s) that tests could not
shorten, and we want one place that decides what is transient (429, 408, 5xx, connection errors,
time-outs). The SDK client is therefore built with ``max_retries=0``.
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
from tongyi_agent.llm.text_tool_calls import parse_tool_calls_from_text

if TYPE_CHECKING:
    from openai import AsyncOpenAI

# Local servers (llama.cpp, vLLM) need no key, but the SDK refuses to build a client without one and
# would otherwise fall back to OPENAI_API_KEY from the environment — the config layer decides keys, not us.
_NO_KEY = "sk-no-key-required"


def _estimate_tokens(text: str) -> int:
    return len(text) // 4


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Our messages in the wire shape strict servers accept."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        item: dict[str, Any] = {"role": msg.role, "content": msg.content or ""}
        if msg.role == "assistant" and msg.tool_calls:
            # content stays "" (never null): llama.cpp's server answers 500 to null content here.
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    # Always valid JSON, even for {"_raw": ...} arguments: servers that render templates
                    # parse these strings and fail on broken ones.
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in msg.tool_calls
            ]
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise ModelError("tool message without tool_call_id cannot be sent to an OpenAI-style server")
            item["tool_call_id"] = msg.tool_call_id
        # `name` is defined for system/user/assistant only; strict servers reject it elsewhere.
        if msg.name and msg.role in ("system", "user", "assistant"):
            item["name"] = msg.name
        out.append(item)
    return out


def _tool_names(tools: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for tool in tools:
        fn = tool.get("function", tool)
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


def _decode_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": str(raw)}
    return value if isinstance(value, dict) else {"_raw": str(raw)}


def _malformed(model: str, what: str) -> ModelError:
    return ModelError(f"{model}: malformed response from the server: {what}")


def _text(value: Any, model: str, field: str) -> str:
    """A message's text: a string, null, or a list of text parts (some servers send those)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return "".join(str(p.get("text") or "") for p in value)
    raise _malformed(model, f"'{field}' is {type(value).__name__}, not text")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _tool_calls(raw: Any, model: str) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _malformed(model, f"'tool_calls' is {type(raw).__name__}, not a list")
    calls = []
    for n, call in enumerate(raw, start=1):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _malformed(model, f"tool call {n} has no 'function' object")
        calls.append(ToolCall(id=str(call.get("id") or f"call_{n}"), name=str(function.get("name") or ""),
                              arguments=_decode_arguments(function.get("arguments"))))
    return calls


def from_openai_completion(
    data: Any, messages: list[ChatMessage], request: ChatRequest, fallback_model: str
) -> ChatResponse:
    """A Chat Completions response body (as a dict) in our shape; ModelError (one line) if it has none."""
    if not isinstance(data, dict):
        raise _malformed(fallback_model, f"the body is {type(data).__name__}, not an object")
    choices = data.get("choices") or []
    if not isinstance(choices, list):
        raise _malformed(fallback_model, f"'choices' is {type(choices).__name__}, not a list")
    if not choices:
        raise ModelError(f"{fallback_model}: response had no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _malformed(fallback_model, f"choice 0 is {type(choice).__name__}, not an object")
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise _malformed(fallback_model, f"'message' is {type(message).__name__}, not an object")
    content = _text(message.get("content"), fallback_model, "content")
    tool_calls = _tool_calls(message.get("tool_calls"), fallback_model)
    if request.tools and not tool_calls and content:
        tool_calls, content = parse_tool_calls_from_text(content, _tool_names(request.tools))

    reasoning = message.get("reasoning") or message.get("reasoning_content") or None
    usage_data = data.get("usage") or {}
    if isinstance(usage_data, dict) and usage_data:
        usage = Usage(input_tokens=_count(usage_data.get("prompt_tokens")),
                      output_tokens=_count(usage_data.get("completion_tokens")))
    else:
        # Some servers omit usage; an estimate keeps token budgets meaningful rather than free.
        usage = Usage(
            input_tokens=sum(_estimate_tokens(m.content) for m in messages),
            output_tokens=_estimate_tokens(content),
        )
    finish = choice.get("finish_reason")
    return ChatResponse(
        content=content,
        tool_calls=tool_calls,
        usage=usage,
        model=str(data.get("model") or fallback_model),
        finish_reason=finish if isinstance(finish, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
    )


class OpenAICompatBackend:
    """ChatModel for an OpenAI-compatible server. `name` is the primary model id."""

    supports_grammar = False

    def __init__(
        self,
        model_id: str,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        fallback_model_id: str | None = None,
        default_temperature: float | None = None,
        default_top_p: float | None = None,
        extra_body: dict[str, Any] | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.name = model_id
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.fallback_model_id = fallback_model_id
        self.default_temperature = default_temperature
        self.default_top_p = default_top_p
        self.extra_body = dict(extra_body or {})
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._api_key = api_key or _NO_KEY
        self._host = urlsplit(base_url).netloc or base_url
        self._client: AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # no key here, ever
        return f"OpenAICompatBackend(model_id={self.name!r}, base_url={self.base_url!r})"

    def _get_client(self) -> AsyncOpenAI:
        # Imported here: the SDK takes ~0.5 s to import and most commands never talk to a remote model.
        # The client's connection pool belongs to the loop that first used it; a later asyncio.run()
        # (one per CLI question) must not reuse sockets of a closed loop, so build one per loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _payload(self, messages: list[ChatMessage], request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"messages": to_openai_messages(messages)}
        if request.tools:
            payload["tools"] = request.tools
            payload["tool_choice"] = "auto"
        if request.stop:
            payload["stop"] = request.stop
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        temperature = request.temperature if request.temperature is not None else self.default_temperature
        if temperature is not None:
            payload["temperature"] = temperature
        top_p = request.top_p if request.top_p is not None else self.default_top_p
        if top_p is not None:
            payload["top_p"] = top_p
        if self.extra_body:
            payload["extra_body"] = self.extra_body
        return payload

    async def chat(self, messages: list[ChatMessage], request: ChatRequest | None = None) -> ChatResponse:
        request = request or ChatRequest()
        payload = self._payload(messages, request)
        deadline = deadline_after(request.timeout)
        data = await with_fallback(
            lambda model_id: self._call_with_retries(model_id, payload, deadline), self.name, self.fallback_model_id
        )
        return from_openai_completion(data, messages, request, self.name)

    async def _call_with_retries(self, model_id: str, payload: dict[str, Any],
                                 deadline: float | None) -> dict[str, Any]:
        client = self._get_client()
        completion = await with_retries(
            lambda: client.chat.completions.create(
                model=model_id, timeout=request_timeout(self.timeout, deadline), **payload),
            lambda err: self._classify(err, model_id),
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            deadline=deadline,
        )
        if not hasattr(completion, "to_dict"):  # the SDK hands back raw text for non-JSON bodies
            raise Attempt(f"{model_id} at {self._host}: response was not JSON", fall_back=True)
        # Extra fields (OpenRouter's `reasoning`, llama.cpp's `reasoning_content`) survive to_dict.
        # warnings=False: a malformed body is reported by from_openai_completion as one line, not as
        # pydantic's multi-line serializer warnings on stderr.
        return completion.to_dict(warnings=False)

    def _classify(self, err: Exception, model_id: str) -> Verdict:
        """What an SDK error means: retry, give up on this model id, or (None) not ours to handle."""
        import openai

        if isinstance(err, openai.APIStatusError):
            status = err.status_code
            detail = self._scrub(f"{model_id} at {self._host}: HTTP {status}: {self._server_message(err)}")
            # Auth failures would fail the same way on the fallback model; anything else may not.
            fall_back = status not in (401, 403)
            if not (status in (408, 429) or status >= 500):
                return Attempt(detail, fall_back=fall_back)
            return Retry(detail, after=retry_after_seconds(err.response.headers), fall_back=fall_back)
        if isinstance(err, openai.APITimeoutError):
            return Retry(f"{model_id} at {self._host}: timed out after {self.timeout:g}s")
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__ or err
            return Retry(self._scrub(f"{model_id} at {self._host}: connection failed: {cause}"))
        if isinstance(err, ValueError):  # a truncated or otherwise broken JSON body (json.JSONDecodeError)
            return Attempt(f"{model_id} at {self._host}: response was not valid JSON ({err})", fall_back=True)
        if isinstance(err, openai.OpenAIError):  # e.g. a body the SDK cannot parse; retrying will not help
            return Attempt(self._scrub(f"{model_id} at {self._host}: {err}"), fall_back=True)
        return None

    @staticmethod
    def _server_message(err: Any) -> str:
        body = err.body
        if isinstance(body, dict):
            message = body.get("message") or body.get("error") or body.get("detail")
            if message:
                return str(message)
        if isinstance(body, str) and body.strip():
            return body
        return str(getattr(err, "message", "") or "no error message")

    def _scrub(self, text: str) -> str:
        return scrub(text, self._api_key if self._api_key != _NO_KEY else None)
