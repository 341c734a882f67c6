"""A scripted Anthropic Messages API server for tests.

It is a real server on 127.0.0.1 (not a mocked transport) so the whole client stack — the `anthropic` SDK,
httpx2, JSON encoding, server-sent events, time-outs — runs exactly as it does against the real API.

Each POST /v1/messages consumes the next scripted reply:

* a dict describing the assistant message:
  ``{"content": "...", "tool_calls": [{"name": ..., "arguments": {...}, "id": optional}],
  "thinking": "...", "stop_reason": ..., "usage": {"input_tokens": .., "output_tokens": ..}, "model": ...,
  "headers": {...}, "delay": seconds}``
  (ids are filled in, usage is estimated if absent, stop_reason is ``tool_use`` or ``end_turn`` if absent);
* an error ``{"status": 529, "body": {...}, "headers": {...}, "delay": seconds}`` (the body defaults to the
  Anthropic error shape, ``{"type": "error", "error": {"type": "overloaded_error", "message": ...}}``);
* ``{"stream_error": "overloaded_error"}``: on a streamed request, a 200 response whose stream breaks off
  with an ``error`` event after ``message_start``, as the real API does when it overloads mid-reply
  (non-streamed requests get the matching HTTP status);
* a callable ``(request_json) -> reply`` for replies that depend on the request.

A request with ``"stream": true`` is answered with real server-sent events in chunked transfer encoding:
``message_start``, ``ping``, per block ``content_block_start`` / ``content_block_delta`` (``text_delta``,
``input_json_delta`` split into partial chunks, ``thinking_delta``) / ``content_block_stop``, then
``message_delta`` with stop_reason and usage, and ``message_stop``.

Requests are validated as the real API validates them before any reply is consumed: a key and an
``anthropic-version`` header, ``max_tokens``, alternating user/assistant roles, no ``system`` role inside
messages, non-empty content, each ``tool_result`` answering a ``tool_use`` of the previous message and each
``tool_use`` answered in the next one, tool blocks only with ``tools`` defined, and (API version
2026-10-21) no ``temperature`` / ``top_p`` / ``top_k``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest

from tests.fakes.http_fixture import JSONHandler, Script, ScriptedFake

Reply = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]

API_VERSIONS = ("2023-06-01", "2026-10-21")
_SAMPLING_REMOVED_IN = "2026-10-21"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_TYPE_STATUS = {v: k for k, v in _ERROR_TYPES.items()}


def error_body(message: str, type_: str = "api_error") -> dict[str, Any]:
    """The Anthropic error shape."""
    return {"type": "error", "error": {"type": type_, "message": message}}


def _invalid(message: str) -> tuple[int, dict[str, Any]]:
    return 400, error_body(message, "invalid_request_error")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _validate_headers(headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
    bearer = headers.get("authorization", "")
    # SDK 2.x sends the key as a bearer token; older clients use x-api-key. The API takes either.
    if not headers.get("x-api-key") and not (bearer.startswith("Bearer ") and bearer[7:].strip()):
        return 401, error_body("x-api-key header is required", "authentication_error")
    version = headers.get("anthropic-version")
    if not version:
        return _invalid("anthropic-version: header is required")
    if version not in API_VERSIONS:
        return _invalid(f"anthropic-version: invalid version {version!r}")
    return None


def _validate(body: Any, version: str) -> tuple[int, dict[str, Any]] | None:
    """Reject what the Messages API rejects; None when the request is acceptable."""
    if not isinstance(body, dict):
        return _invalid("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _invalid("model: Field required")
    if "max_tokens" not in body:
        return _invalid("max_tokens: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return _invalid("max_tokens: must be a positive integer")
    if version >= _SAMPLING_REMOVED_IN:
        for key in ("temperature", "top_p", "top_k"):
            if key in body:
                return _invalid(f"{key}: Extra inputs are not permitted")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return _invalid("system: Input should be a valid string or a list of text blocks")
    for seq in body.get("stop_sequences") or []:
        if not isinstance(seq, str) or not seq.strip():
            return _invalid("stop_sequences: each stop sequence must contain non-whitespace characters")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
                return _invalid(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return _invalid(f"tools.{i}.input_schema: type must be 'object'")

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid("messages: at least one message is required")
    uses_tool_blocks = False
    pending_ids: list[str] = []  # tool_use ids of the previous assistant message, still to be answered
    previous_role: str | None = None
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "system":
            return _invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level `system` '
                "parameter, not \"system\" as an input message role."
            )
        if role not in ("user", "assistant"):
            return _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            return _invalid("messages: first message must use the \"user\" role")
        if role == previous_role:
            return _invalid(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" '
                "roles in a row"
            )
        previous_role = role
        content = msg.get("content")
        blocks = _blocks(content)
        if not blocks or (isinstance(content, str) and not content.strip()):
            return _invalid(f"messages.{i}: all messages must have non-empty content")
        answered: set[str] = set()
        seen_other = False
        use_ids: list[str] = []
        for j, block in enumerate(blocks):
            kind = block.get("type")
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"].strip():
                    return _invalid(f"{where}: text content blocks must contain non-whitespace text")
                seen_other = True
            elif kind == "tool_use":
                uses_tool_blocks = True
                if role != "assistant":
                    return _invalid(f"{where}: tool_use blocks are only allowed in assistant messages")
                if not isinstance(block.get("id"), str) or not isinstance(block.get("input"), dict):
                    return _invalid(f"{where}: tool_use blocks need an id and an object input")
                use_ids.append(block["id"])
            elif kind == "tool_result":
                uses_tool_blocks = True
                if role != "user":
                    return _invalid(f"{where}: tool_result blocks are only allowed in user messages")
                use_id = block.get("tool_use_id")
                if use_id not in pending_ids:
                    return _invalid(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )
                if seen_other:
                    return _invalid(f"{where}: tool_result blocks must come before any other content")
                answered.add(use_id)
            else:
                return _invalid(f"{where}.type: unsupported content block type {kind!r}")
        missing = [u for u in pending_ids if u not in answered]
        if missing:
            return _invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                "the next message."
            )
        pending_ids = use_ids
    if uses_tool_blocks and not tools:
        return _invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    return None


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _request_text(request: dict[str, Any]) -> str:
    parts = [request["system"] if isinstance(request.get("system"), str) else ""]
    for msg in request.get("messages", []):
        for block in _blocks(msg.get("content")):
            parts.append(str(block.get("text") or block.get("content") or json.dumps(block.get("input", ""))))
    return "".join(parts)


def _message(reply: dict[str, Any], request: dict[str, Any], serial: int) -> dict[str, Any]:
    """The complete (non-streamed) Message the reply describes."""
    content: list[dict[str, Any]] = []
    if reply.get("thinking"):
        content.append({"type": "thinking", "thinking": reply["thinking"], "signature": f"sig-{serial}"})
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for n, call in enumerate(reply.get("tool_calls") or []):
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", f"toolu_fake_{serial}_{n}"),
                "name": call["name"],
                "input": call.get("arguments", {}),
            }
        )
    has_calls = any(b["type"] == "tool_use" for b in content)
    usage = reply.get("usage") or {
        "input_tokens": _estimate_tokens(_request_text(request)),
        "output_tokens": _estimate_tokens(json.dumps(content)),
    }
    return {
        "id": f"msg_fake_{serial}",
        "type": "message",
        "role": "assistant",
        "model": reply.get("model", request.get("model", "")),
        "content": content,
        "stop_reason": reply.get("stop_reason", "tool_use" if has_calls else "end_turn"),
        "stop_sequence": reply.get("stop_sequence"),
        "usage": {"input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0)},
    }


def _chunks(text: str, parts: int) -> list[str]:
    """`text` split into about `parts` non-empty pieces (the API splits deltas at arbitrary points)."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


def _events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events that stream `message`."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            for piece in _chunks(block["text"], 3):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": piece}}
        elif kind == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}
            # input_json_delta pieces are not valid JSON on their own; the client must join them.
            for piece in _chunks(json.dumps(block["input"]), 3):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta", "partial_json": piece}}
        elif kind == "thinking":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            for piece in _chunks(block["thinking"], 2):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "thinking_delta", "thinking": piece}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "signature_delta", "signature": block["signature"]}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"],
                                      "stop_sequence": message["stop_sequence"]},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


class _Handler(JSONHandler):
    def _extra_headers(self) -> dict[str, str]:
        return {"request-id": f"req_fake_{self.server.shared.served}"}

    def _send_events(self, events: Iterator[tuple[str, dict[str, Any]]], headers: dict[str, str] | None) -> None:
        """Server-sent events, one chunk per event, flushed as they go."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            for name, data in events:
                chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._record(None)
        self._send_json(404, error_body(f"no route GET {self.path}", "not_found_error"))

    def do_POST(self) -> None:
        body = self._read_json()
        headers = self._record(body)
        if self.path.split("?")[0].rstrip("/") != "/v1/messages":
            self._send_json(404, error_body(f"no route POST {self.path}", "not_found_error"))
            return
        invalid = _validate_headers(headers) or _validate(body, headers["anthropic-version"])
        if invalid is not None:
            self._send_json(*invalid)
            return
        scripted = self._next_reply(body, error_body("fake server ran out of scripted replies"))
        if scripted is None:
            return
        reply, serial = scripted
        streamed = bool(body.get("stream"))
        if "status" in reply:
            status = int(reply["status"])
            default = error_body(
                "Overloaded" if status == 529 else HTTPStatus(status).phrase, _ERROR_TYPES.get(status, "api_error")
            )
            self._send_json(status, reply.get("body", default), reply.get("headers"))
        elif "stream_error" in reply:
            kind = str(reply["stream_error"])
            error = error_body("Overloaded" if kind == "overloaded_error" else kind, kind)
            if not streamed:
                self._send_json(_TYPE_STATUS.get(kind, 500), error, reply.get("headers"))
                return
            start = _message({"content": "partial"}, body, serial)
            self._send_events(iter([*list(_events(start))[:2], ("error", error)]), reply.get("headers"))
        elif streamed:
            self._send_events(_events(_message(reply, body, serial)), reply.get("headers"))
        else:
            self._send_json(200, _message(reply, body, serial), reply.get("headers"))


class FakeAnthropicServer(ScriptedFake):
    """Start with `start()` or `with FakeAnthropicServer(...) as server:`; point clients at `base_url`."""

    _thread_name = "fake-anthropic"

    def __init__(self, replies: list[Reply] | None = None) -> None:
        super().__init__(Script(replies=list(replies or [])), _Handler)

    # -- inspection (scripting, `requests` and `remaining` come from ScriptedFake) --------------------

    @property
    def message_requests(self) -> list[dict[str, Any]]:
        """Bodies of the POST /v1/messages requests, in order (rejected ones included)."""
        return [r.body for r in self.requests if r.method == "POST" and r.path.startswith("/v1/messages")]

    @property
    def base_url(self) -> str:
        """The API root, as ANTHROPIC_BASE_URL spells it (the SDK appends /v1/messages)."""
        return self._root_url


# Registered as `anthropic_server`; the function has another name so that modules importing it can take an
# `anthropic_server` argument without ruff's F811 (redefinition of an import).
@pytest.fixture(name="anthropic_server")
def anthropic_server_fixture() -> Iterator[FakeAnthropicServer]:
    """A started fake server with an empty script; add replies with `anthropic_server.add(...)`."""
    with FakeAnthropicServer() as server:
        yield server
