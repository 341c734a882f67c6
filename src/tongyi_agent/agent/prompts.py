"""Prompt texts are data files beside this module, so they can be read, diffed and versioned."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_prompt(name: str) -> str:
    return resources.files("tongyi_agent.agent").joinpath("prompts", f"{name}.txt").read_text().strip()
