"""A scripted OpenAI-compatible HTTP server for tests.

It is a real server on 127.0.0.1 (not a mocked transport) so the whole client stack — the `openai` SDK,
its HTTP library, JSON encoding, time-outs — runs exactly as it does against llama.cpp or OpenRouter.

Each POST /v1/chat/completions consumes the next scripted reply:

* a dict describing the assistant message:
  ``{"content": "...", "tool_calls": [{"name": ..., "arguments": {...} | "raw text", "id": optional}],
  "finish_reason": ..., "usage": {"prompt_tokens": .., "completion_tokens": ..}, "model": ...,
  "reasoning": ..., "reasoning_content": ..., "delay": seconds}``
  (ids are filled in, dict arguments are JSON-encoded as the real API does, usage is estimated if absent);
* an error ``{"status": 429, "body": {...}, "headers": {...}, "delay": seconds}`` (body defaults to an
  OpenAI-style error object); with status 200 the body is sent as the completion, however malformed;
* ``{"raw": "..." | b"...", "status": 200}``: a body sent byte for byte (truncated JSON);
* a callable ``(request_json) -> reply`` for replies that depend on the request.

Requests are validated like the strict servers do before any reply is consumed: an assistant message with
``"content": null`` next to ``tool_calls`` gets HTTP 500, as llama.cpp's server answers it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest

from tests.fakes.http_fixture import JSONHandler, Script, ScriptedFake, ScriptedServer

Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class _Shared(Script):
    model_ids: list[str] = field(default_factory=list)


def _error_body(message: str, type_: str = "server_error", code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _validate(body: Any) -> tuple[int, dict[str, Any]] | None:
    """Reject what strict servers reject; None when the request is acceptable."""
    if not isinstance(body, dict):
        return 400, _error_body("request body must be a JSON object", "invalid_request_error")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, _error_body("'model' is required", "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, _error_body("'messages' must be a non-empty array", "invalid_request_error")
    offered_ids: set[str] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in {
            "system",
            "user",
            "assistant",
            "tool",
            "developer",
        }:
            return 400, _error_body(f"messages[{i}] has no valid role", "invalid_request_error")
        if msg["role"] == "assistant" and msg.get("tool_calls"):
            # llama.cpp's server answers 500 here (its template code reads content as a string).
            if "content" in msg and msg["content"] is None:
                return 500, _error_body(
                    f"messages[{i}]: assistant message with tool_calls has null content", "server_error"
                )
            for call in msg["tool_calls"]:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
                    return 400, _error_body(
                        f"messages[{i}]: tool_calls[].function.arguments must be a JSON string",
                        "invalid_request_error",
                    )
                try:
                    json.loads(fn["arguments"])
                except ValueError:
                    # llama.cpp parses the arguments to render its template; undecodable ones fail there.
                    return 500, _error_body(f"messages[{i}]: tool call arguments are not valid JSON")
                offered_ids.add(str(call.get("id")))
        elif msg["role"] == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                return 400, _error_body(
                    f"messages[{i}]: tool message needs tool_call_id", "invalid_request_error"
                )
            if call_id not in offered_ids:
                return 400, _error_body(
                    f"messages[{i}]: tool_call_id {call_id!r} answers no earlier tool call",
                    "invalid_request_error",
                )
        elif msg.get("content") is None:
            return 400, _error_body(f"messages[{i}]: content must not be null", "invalid_request_error")
    return None


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _completion(reply: dict[str, Any], request: dict[str, Any], serial: int) -> dict[str, Any]:
    tool_calls = []
    for n, call in enumerate(reply.get("tool_calls") or []):
        arguments = call.get("arguments", {})
        tool_calls.append(
            {
                "id": call.get("id", f"call_fake_{serial}_{n}"),
                "type": "function",
                "function": {
                    "name": call["name"],
                    # A str is sent as-is so tests can script malformed arguments.
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    content = reply.get("content")
    message: dict[str, Any] = {
        "role": "assistant",
        # The real API sends null content next to tool calls; clients must cope with it.
        "content": content if content is not None or tool_calls else "",
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    for key in ("reasoning", "reasoning_content"):
        if key in reply:
            message[key] = reply[key]
    usage = reply.get("usage")
    if usage is None:
        prompt = sum(_estimate_tokens(str(m.get("content") or "")) for m in request.get("messages", []))
        completion = _estimate_tokens(
            (content or "") + "".join(c["function"]["arguments"] for c in tool_calls)
        )
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage = {**usage, "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)}
    return {
        "id": f"chatcmpl-fake-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.get("model", request.get("model", "")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.get("finish_reason", "tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": usage,
    }


class _Handler(JSONHandler):
    server: _Server

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.server.shared.model_ids
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, _error_body(f"no route GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        body = self._read_json()
        self._record(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(f"no route POST {self.path}", "invalid_request_error"))
            return
        if body is not None and body.get("stream"):
            self._send_json(400, _error_body("the fake server does not stream", "invalid_request_error"))
            return
        invalid = _validate(body)
        if invalid is not None:
            self._send_json(*invalid)
            return
        scripted = self._next_reply(body, _error_body("fake server ran out of scripted replies"))
        if scripted is None:
            return
        reply, serial = scripted
        if "raw" in reply:  # bytes sent as they are: truncated or malformed JSON
            raw = reply["raw"]
            self._send_bytes(int(reply.get("status", 200)), raw.encode() if isinstance(raw, str) else raw)
        elif "status" in reply:
            status = int(reply["status"])
            default = _error_body(
                HTTPStatus(status).phrase, "rate_limit_error" if status == 429 else "server_error"
            )
            self._send_json(status, reply.get("body", default), reply.get("headers"))
        else:
            self._send_json(200, _completion(reply, body, serial), reply.get("headers"))


class _Server(ScriptedServer):
    shared: _Shared


class FakeOpenAIServer(ScriptedFake):
    """Start with `start()` or `with FakeOpenAIServer(...) as server:`; point clients at `base_url`."""

    _thread_name = "fake-openai"

    def __init__(self, replies: list[Reply] | None = None, *, model_ids: list[str] | None = None) -> None:
        shared = _Shared(replies=list(replies or []), model_ids=list(model_ids or ["fake-model"]))
        super().__init__(shared, _Handler, _Server)

    # -- inspection (scripting, `requests` and `remaining` come from ScriptedFake) --------------------

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the POST /v1/chat/completions requests, in order."""
        return [r.body for r in self.requests if r.method == "POST" and "chat/completions" in r.path]

    @property
    def base_url(self) -> str:
        return f"{self._root_url}/v1"


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A started fake server with an empty script; add replies with `openai_server.add(...)`."""
    with FakeOpenAIServer() as server:
        yield server
