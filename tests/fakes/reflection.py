"""A scripted reflection model for prompt-search tests whose candidates never win."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def never_better(proposals: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A fake-server reply: agent runs (a system prompt first) never know the answer, so every proposed
    prompt is as bad as the seed and the search stops only at its limit of proposals. Each proposal is a
    new text, appended to `proposals` so a test can count them."""

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if request["messages"][0]["role"] == "system":
            return {"content": "I am not sure."}
        proposals.append(f"You are a research assistant, variant {len(proposals) + 1}.")
        return {"content": f"```\n{proposals[-1]}\n```"}

    return reply
