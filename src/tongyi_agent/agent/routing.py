"""Per-run model routing: a run starts on the primary; when the primary fails for good (after its
own retries), the same question runs again on the fallback and the switch is recorded on the result.

Per run rather than per call, because a conversation cannot change dialect halfway through.
"""

from __future__ import annotations

from collections.abc import Callable

from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.steps import RunResult
from tongyi_agent.llm.base import ChatMessage, ModelError


def _same(agent: Agent) -> Agent:
    return agent


async def run_with_fallback(primary: Agent, question: str, history: list[ChatMessage] | None = None, *,
                            fallback: Callable[[], Agent] | None = None,
                            wrap: Callable[[Agent], Agent] = _same) -> RunResult:
    """Run on `primary`; on ModelError run on `fallback()` if given. `wrap` decorates each agent
    before it runs (the recorder uses it to capture both attempts in one trajectory)."""
    try:
        return await wrap(primary).run(question, history)
    except ModelError as exc:
        if fallback is None:
            raise
        reason = str(exc)
    agent = fallback()
    result = await wrap(agent).run(question, history)
    result.routing = {"from": primary.model.name, "to": agent.model.name, "reason": reason}
    return result
