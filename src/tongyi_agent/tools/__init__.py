"""The tools the agent may call, by name.

Files (read-only, confined to the root), sandboxed Python, PDFs, scholarly search, the web, and two
cleaning tools that may write inside the root. A profile chooses which of them a model is offered
(`tools` in models.ini): small embedded models do best with a short list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The submodules share their function's name; importing the modules (not the functions) keeps
# `tongyi_agent.tools.read_file` the module, so tests and callers can reach its constants.
from tongyi_agent.tools import (
    clean_csv,
    clean_markdown,
    list_files,
    papers,
    pdf,
    read_file,
    run_python,
    search_files,
    web,
)
from tongyi_agent.tools.base import Tool, ToolRegistry
from tongyi_agent.tools.sandbox import Limits

DEFAULT_TOOL_TIMEOUT = 30.0
# Starting a sandbox (namespaces, mounts, the interpreter) before the program's own clock starts.
SANDBOX_STARTUP_S = 10.0

# name -> (function, writes files)
CATALOGUE = {
    "list_files": (list_files.list_files, False),
    "read_file": (read_file.read_file, False),
    "search_files": (search_files.search_files, False),
    "run_python": (run_python.run_python, False),
    "pdf_info": (pdf.pdf_info, False),
    "pdf_text": (pdf.pdf_text, False),
    "pdf_search": (pdf.pdf_search, False),
    "search_papers": (papers.search_papers, False),
    "fetch_paper": (papers.fetch_paper, False),
    "web_search": (web.web_search, False),
    "web_fetch": (web.web_fetch, False),
    "clean_csv": (clean_csv.clean_csv, True),
    "clean_markdown": (clean_markdown.clean_markdown, True),
}
FILE_TOOLS = ("list_files", "read_file", "search_files")
# name -> the argument holding what the tool downloads (agent/taint.py limits it after untrusted content)
FETCH_ARGUMENTS = {"web_fetch": "url", "fetch_paper": "url_or_doi"}


def tool_names() -> list[str]:
    return list(CATALOGUE)


def tool_time_limit(env: Mapping[str, str]) -> float:
    """The registry's per-tool limit: 30 s, or longer when TONGYI_SANDBOX_TIMEOUT gives run_python more."""
    return max(DEFAULT_TOOL_TIMEOUT, Limits.from_env(env).timeout_s + SANDBOX_STARTUP_S)


def default_registry(names: Iterable[str] | None = None, timeout: float = DEFAULT_TOOL_TIMEOUT) -> ToolRegistry:
    """A registry of the named tools (all of them by default), in catalogue order.

    Raises ValueError naming any unknown tool."""
    wanted = list(CATALOGUE) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in CATALOGUE]
    if unknown:
        raise ValueError(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
    return ToolRegistry([Tool.from_function(CATALOGUE[n][0], writes=CATALOGUE[n][1], fetches=FETCH_ARGUMENTS.get(n))
                         for n in wanted], timeout=timeout)


__all__ = ["CATALOGUE", "FETCH_ARGUMENTS", "FILE_TOOLS", "default_registry", "tool_names", "tool_time_limit"]
