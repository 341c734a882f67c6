"""Tool calls written as text, parsed back into `ToolCall`s.

Servers without native tool calling (and models that ignore it) put calls in the message text:
Hermes/Qwen ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, a fenced or bare JSON object,
LangChain-style ``{"tool": ..., "tool_input": ...}``, or OpenAI-shaped ``{"function": {...}}``.
Only calls naming an offered tool are taken, so JSON that merely appears in an answer stays text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tongyi_agent.llm.base import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_FENCED = re.compile(r"```(?:json|tool_call|tool)?[ \t]*\n(.*?)\n?```", re.DOTALL)
_NAME_FIELD = re.compile(r'"(?:name|tool|function)"\s*:\s*"([^"]+)"')

# Key pairs models use for (name, arguments), most common first.
_NAME_KEYS = ("name", "tool", "tool_name", "action", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "tool_input", "action_input", "input")


def _decode_arguments(value: Any) -> dict[str, Any]:
    """Arguments as a dict; undecodable text is kept as {"_raw": text} so the agent can show the model."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            decoded = json.loads(value)
        except ValueError:
            return {"_raw": value}
        return decoded if isinstance(decoded, dict) else {"_raw": value}
    return {"_raw": json.dumps(value)}


def _as_call(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) when `obj` has the shape of one tool call, else None."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict):  # OpenAI shape: {"type": "function", "function": {"name", "arguments"}}
        return _as_call(fn)
    for name_key in _NAME_KEYS:
        name = obj.get(name_key)
        if isinstance(name, str) and name:
            break
    else:
        return None
    args = next((obj[k] for k in _ARG_KEYS if k in obj), None)
    return name, _decode_arguments(args)


def _calls_in(value: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """All calls in a decoded JSON value (one object, a list of them, or {"tool_calls": [...]})."""
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _json_objects(text: str) -> list[tuple[int, int, Any]]:
    """(start, end, value) of each top-level JSON object or array embedded in `text`."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        found.append((start, end, value))
        pos = end


def parse_tool_calls_from_text(
    text: str, tool_names: set[str], *, first_id: int = 1
) -> tuple[list[ToolCall], str]:
    """Parse tool calls out of model text.

    Returns the calls (ids ``call_<n>`` counting from `first_id`) and the text with those calls removed.
    Calls naming a tool outside `tool_names` are not taken and stay in the text. Inside an explicit
    ``<tool_call>`` tag, JSON too broken to decode still yields a call when its name is recognisable,
    with arguments ``{"_raw": text}``, so the agent can tell the model what went wrong.
    """
    found: list[tuple[int, int, str, dict[str, Any]]] = []  # (start, end, name, arguments)
    taken: list[tuple[int, int]] = []

    def overlaps(start: int, end: int) -> bool:
        return any(start < t_end and t_start < end for t_start, t_end in taken)

    def take(start: int, end: int, calls: list[tuple[str, dict[str, Any]]]) -> None:
        # A block is taken only if every call in it names an offered tool; a partly unknown block is
        # more likely prose than a call.
        if calls and all(name in tool_names for name, _ in calls) and not overlaps(start, end):
            taken.append((start, end))
            found.extend((start, end, name, args) for name, args in calls)

    for match in _TAGGED.finditer(text):
        inner = match.group(1)
        try:
            calls = _calls_in(json.loads(inner))
        except ValueError:
            named = _NAME_FIELD.search(inner)
            calls = [(named.group(1), {"_raw": inner})] if named else None
        take(match.start(), match.end(), calls or [])

    for match in _FENCED.finditer(text):
        try:
            calls = _calls_in(json.loads(match.group(1)))
        except ValueError:
            continue
        take(match.start(), match.end(), calls or [])

    for start, end, value in _json_objects(text):
        if not overlaps(start, end):
            take(start, end, _calls_in(value) or [])

    found.sort(key=lambda item: item[0])
    tool_calls = [
        ToolCall(id=f"call_{first_id + n}", name=name, arguments=args)
        for n, (_, _, name, args) in enumerate(found)
    ]
    remaining = text
    for start, end in sorted(taken, reverse=True):
        remaining = remaining[:start] + remaining[end:]
    # Removing blocks leaves blank runs behind; collapse them so the content reads as written.
    remaining = re.sub(r"\n{3,}", "\n\n", remaining).strip()
    return tool_calls, remaining
