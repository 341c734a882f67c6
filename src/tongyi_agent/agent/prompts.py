"""Prompt texts are data files beside this module, so they can be read, diffed and versioned."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_prompt(name: str) -> str:
    return resources.files("tongyi_agent.agent").joinpath("prompts", f"{name}.txt").read_text().strip()


PROMPT_COMPONENTS = ("system", "forced_answer")  # the texts a prompt version holds


def default_components() -> dict[str, str]:
    """The packaged prompt texts: what a project without prompt versions runs with."""
    return {name: load_prompt(name) for name in PROMPT_COMPONENTS}
