"""The tools the agent may call: read-only access to the files under the project root."""

from __future__ import annotations

# The submodules share their function's name; importing the modules (not the functions) keeps
# `tongyi_agent.tools.read_file` the module, so tests and callers can reach its constants.
from tongyi_agent.tools import list_files, read_file, search_files
from tongyi_agent.tools.base import Tool, ToolRegistry


def default_registry(timeout: float = 30.0) -> ToolRegistry:
    """The read-only file tools: list_files, read_file and search_files."""
    functions = (list_files.list_files, read_file.read_file, search_files.search_files)
    return ToolRegistry([Tool.from_function(fn) for fn in functions], timeout=timeout)


__all__ = ["default_registry"]
