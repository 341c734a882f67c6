"""The tools the agent may call, by name.

Files (read-only, confined to the root), sandboxed Python, PDFs, scholarly search, the web, and two
cleaning tools that may write inside the root. A profile chooses which of them a model is offered
(`tools` in models.ini): small embedded models do best with a short list.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from tongyi_agent.tools.base import Tool, ToolRegistry

if TYPE_CHECKING:
    from tongyi_agent.tools.base import ToolFunction

DEFAULT_TOOL_TIMEOUT = 30.0
# Starting a sandbox (namespaces, mounts, the interpreter) before the program's own clock starts.
SANDBOX_STARTUP_S = 10.0

# name -> (the submodule defining the function of that name, writes files). The submodules are
# imported only when a registry is built: a process that only searches files (a search-index
# probe, `tongyi-cli --tools`) does not pay for the network, PDF and sandbox stacks.
TOOL_MODULES = {
    "list_files": ("list_files", False),
    "read_file": ("read_file", False),
    "search_files": ("search_files", False),
    "run_python": ("run_python", False),
    "pdf_info": ("pdf", False),
    "pdf_text": ("pdf", False),
    "pdf_search": ("pdf", False),
    "search_papers": ("papers", False),
    "fetch_paper": ("papers", False),
    "web_search": ("web", False),
    "web_fetch": ("web", False),
    "clean_csv": ("clean_csv", True),
    "clean_markdown": ("clean_markdown", True),
}
FILE_TOOLS = ("list_files", "read_file", "search_files")
# name -> the argument holding what the tool downloads (agent/taint.py limits it after untrusted content)
FETCH_ARGUMENTS = {"web_fetch": "url", "fetch_paper": "url_or_doi"}


def tool_names() -> list[str]:
    return list(TOOL_MODULES)


def tool_function(name: str) -> ToolFunction:
    """The function of the tool `name` (importing its module now)."""
    module = importlib.import_module(f"{__name__}.{TOOL_MODULES[name][0]}")
    function: ToolFunction = getattr(module, name)
    return function


def tool_time_limit(env: Mapping[str, str]) -> float:
    """The registry's per-tool limit: 30 s, or longer when TONGYI_SANDBOX_TIMEOUT gives run_python more."""
    from tongyi_agent.tools.sandbox import Limits

    return max(DEFAULT_TOOL_TIMEOUT, Limits.from_env(env).timeout_s + SANDBOX_STARTUP_S)


def default_registry(names: Iterable[str] | None = None, timeout: float = DEFAULT_TOOL_TIMEOUT) -> ToolRegistry:
    """A registry of the named tools (all of them by default), in catalogue order.

    Raises ValueError naming any unknown tool."""
    wanted = list(TOOL_MODULES) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in TOOL_MODULES]
    if unknown:
        raise ValueError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOL_MODULES)}")
    return ToolRegistry([Tool.from_function(tool_function(n), writes=TOOL_MODULES[n][1],
                                            fetches=FETCH_ARGUMENTS.get(n)) for n in wanted], timeout=timeout)


__all__ = ["FETCH_ARGUMENTS", "FILE_TOOLS", "TOOL_MODULES", "default_registry", "tool_function", "tool_names",
           "tool_time_limit"]
