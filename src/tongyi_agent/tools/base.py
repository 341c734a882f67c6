"""Tools and their registry.

A tool is a plain Python function; its JSON schema comes from its signature, type hints and
docstring. The registry validates arguments against that schema, runs the function with a time
limit, and turns every failure into an observation for the model: tools never crash the run.

A call's time limit is the registry's per-tool limit or what is left of the run (`ToolContext.deadline`),
whichever ends first. A call that misses it is *abandoned*: the model is told so, and the call's
`ToolContext.cancel` event is set. A thread cannot be killed, so tools cooperate: run_python kills its
sandbox at once, the searches stop scanning, and tools that write check `ctx.check_cancelled()` right
before writing, so an abandoned call changes nothing afterwards.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SourceRef:
    """A place a tool result came from: `path:line` plus the text found there."""

    path: str
    line: int | None = None
    text: str = ""

    def label(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@dataclass
class ToolResult:
    """The observation handed back to the model, plus the sources it contains."""

    output: str
    ok: bool = True
    sources: list[SourceRef] = field(default_factory=list)
    untrusted: bool = False  # holds content from the web: data, never instructions

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(output=f"Error: {message}", ok=False)


class ToolError(Exception):
    """Raised inside a tool for a problem the model caused (bad path, no such file)."""


@dataclass
class ToolContext:
    """What every tool call may rely on.

    `root` confines file access; `cache_dir` holds downloads (papers, web pages); `offline` turns
    network tools off; `env` carries tool settings and keys (TONGYI_MAILTO, BRAVE_API_KEY, service
    base URLs for tests) without the tool reading os.environ itself.
    """

    root: Path
    cache_dir: Path | None = None
    offline: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    deadline: float | None = None  # time.monotonic() by which this call must be done; None: no deadline
    cancel: threading.Event | None = None  # set when the registry abandons this call
    index_dir: Path | None = None  # where search_files keeps its full-text indexes; None: always scan
    on_progress: Callable[[str, int, int], None] | None = None  # (what, done, total) of slow work

    def time_left(self, default: float) -> float:
        """Seconds this call may still take: `default`, or less when the deadline is nearer."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise instead of acting (writing a file) once the call has been abandoned."""
        if self.cancelled():
            raise ToolError("this call was abandoned at its deadline; nothing was written")


ToolFunction = Callable[..., ToolResult]

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(annotation: Any) -> tuple[str, bool]:
    """JSON type name of a hint and whether it admits None."""
    nullable = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        annotation = args[0]
    if annotation not in _JSON_TYPES:
        raise TypeError(f"unsupported tool parameter type: {annotation!r}")
    return _JSON_TYPES[annotation], nullable


def _param_docs(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its summary and `name: description` lines under `Args:`."""
    summary: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    for raw in doc.splitlines():
        line = raw.strip()
        if line.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args and ":" in line:
            name, _, text = line.partition(":")
            params[name.strip()] = text.strip()
        elif not in_args and line:
            summary.append(line)
    return " ".join(summary), params


@dataclass
class Tool:
    """One registered function with its schema. `writes` marks tools that change files; `fetches` names
    the argument holding a URL (or id) that the tool downloads, for the agent's untrusted-content rule."""

    name: str
    function: ToolFunction
    description: str
    parameters: dict[str, Any]
    writes: bool = False
    fetches: str | None = None

    @classmethod
    def from_function(cls, function: ToolFunction, *, name: str | None = None, writes: bool = False,
                      fetches: str | None = None) -> Tool:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
        summary, docs = _param_docs(inspect.getdoc(function) or "")
        properties: dict[str, Any] = {}
        required: list[str] = []
        for pname, param in signature.parameters.items():
            if pname == "ctx":
                continue
            jtype, nullable = _json_type(hints[pname])
            prop: dict[str, Any] = {"type": [jtype, "null"] if nullable else jtype}
            if pname in docs:
                prop["description"] = docs[pname]
            if param.default is inspect.Parameter.empty:
                required.append(pname)
            elif param.default is not None:
                prop["default"] = param.default
            properties[pname] = prop
        schema = {"type": "object", "properties": properties, "required": required,
                  "additionalProperties": False}
        if fetches is not None and fetches not in properties:
            raise TypeError(f"{function.__name__} has no argument {fetches!r} to fetch")
        return cls(name=name or function.__name__, function=function, description=summary,
                   parameters=schema, writes=writes, fetches=fetches)

    def openai_schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": self.parameters}}

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check arguments against the schema; return them coerced where the schema wants numbers."""
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments for {self.name} must be a JSON object, "
                            f"got {type(arguments).__name__}")
        props: dict[str, Any] = self.parameters["properties"]
        unknown = sorted(set(arguments) - set(props))
        if unknown:
            raise ToolError(f"{self.name} got unknown argument(s) {', '.join(unknown)}; "
                            f"it accepts {', '.join(props) or 'none'}")
        missing = [p for p in self.parameters["required"] if p not in arguments]
        if missing:
            raise ToolError(f"{self.name} is missing required argument(s) {', '.join(missing)}")
        checked: dict[str, Any] = {}
        for key, value in arguments.items():
            allowed = props[key]["type"]
            allowed = allowed if isinstance(allowed, list) else [allowed]
            checked[key] = _coerce(self.name, key, value, allowed)
        return checked


def _coerce(tool: str, key: str, value: Any, allowed: list[str]) -> Any:
    if value is None and "null" in allowed:
        return None
    if "integer" in allowed:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        elif isinstance(value, str) and value.strip().removeprefix("-").isdigit():
            return int(value.strip())
    if "number" in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if "string" in allowed and isinstance(value, str):
        return value
    if "string" in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if "boolean" in allowed and isinstance(value, bool):
        return value
    raise ToolError(f"{tool}: argument {key!r} must be {' or '.join(allowed)}, got {json.dumps(value)[:60]}")


class ToolRegistry:
    """The tools offered to the agent, by name."""

    def __init__(self, tools: list[Tool] | None = None, *, timeout: float = 30.0) -> None:
        self._tools: dict[str, Tool] = {}
        self.timeout = timeout
        for tool in tools or []:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self) -> typing.Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def openai_schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self]

    async def run(self, name: str, arguments: Any, ctx: ToolContext, call_id: str | None = None) -> ToolResult:
        """Run one call; `call_id` is the model's id for it, for recorders.

        Unknown tools, bad arguments, tool errors and missed deadlines become error results."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult.error(f"unknown tool {name!r}; available tools: {', '.join(self._tools)}")
        limit = ctx.time_left(self.timeout)
        which = "the tool time limit" if limit >= self.timeout else "the run's deadline"
        if limit <= 0:
            return ToolResult.error(f"{name} was not run: the run's deadline has passed")
        import asyncio  # here, not at the top: a process that only searches files need not load it

        cancel = threading.Event()
        call_ctx = dataclasses.replace(ctx, deadline=time.monotonic() + limit, cancel=cancel)
        try:
            checked = tool.validate(arguments)
            return await asyncio.wait_for(asyncio.to_thread(tool.function, call_ctx, **checked), limit)
        except ToolError as exc:
            return ToolResult.error(str(exc))
        except TimeoutError:
            return ToolResult.error(f"{name} was abandoned after {limit:.3g} s ({which}); it was told to stop "
                                    "and its result is discarded")
        except (OSError, UnicodeError, ValueError) as exc:
            return ToolResult.error(f"{name} failed: {exc}")
        finally:
            cancel.set()  # whatever happened, a thread still running must stop acting
