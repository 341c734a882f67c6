"""Keep a conversation inside the model's context window.

Observations are the part that grows: each is cut to a per-observation cap, and when the whole
conversation still does not fit, the oldest observations are shortened first. The system prompt,
the question and the latest observation are kept whole. Sizes are estimated from characters; a
backend that can count its tokens (the embedded one) has the estimate checked and tightened, since
paths, numbers and JSON take fewer characters per token than prose (a run once asked for 4,204
tokens of a 4,096-token window).
"""

from __future__ import annotations

from collections.abc import Callable

from tongyi_agent.llm.base import ChatMessage

CHARS_PER_TOKEN = 3.5  # conservative for code and English with Qwen's tokenizer
MESSAGE_OVERHEAD_TOKENS = 8  # a chat template's role markers around each message
_SHORTENED = "\n[earlier output shortened to fit the context]"


def cap_observation(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return (text[:max_chars].rsplit("\n", 1)[0]
            + f"\n[output cut at {max_chars} characters to fit the context; ask for a smaller range]")


def fit_messages(messages: list[ChatMessage], context_tokens: int, reserve_tokens: int,
                 count_tokens: Callable[[str], int] | None = None) -> list[ChatMessage]:
    """A copy of `messages` whose size leaves `reserve_tokens` free for the reply: estimated, and
    measured with `count_tokens` when the backend offers it."""
    limit = context_tokens - reserve_tokens
    budget_chars = int(limit * CHARS_PER_TOKEN)
    fitted = _shorten(messages, budget_chars)
    if count_tokens is None:
        return fitted
    for _ in range(3):  # each pass scales the budget by the measured overshoot
        used = sum(count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in fitted)
        if used <= limit:
            break
        chars = sum(len(m.content) for m in fitted)
        budget_chars = min(budget_chars, chars) - int((used - limit) * chars / used) - 1
        fitted = _shorten(messages, budget_chars)
    return fitted


def _shorten(messages: list[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """Shorten the oldest observations until the conversation has at most `budget_chars` characters."""
    fitted = list(messages)
    total = sum(len(m.content) for m in fitted)
    observations = [i for i, m in enumerate(fitted) if m.role in ("tool", "user")][1:-1]  # skip question, latest
    for i in observations:
        if total <= budget_chars:
            break
        old = fitted[i]
        # The marker counts too, or the shortened message still overshoots and the next one is cut as well.
        keep = max(200, len(old.content) - (total - budget_chars) - len(_SHORTENED))
        if keep + len(_SHORTENED) >= len(old.content):
            continue
        short = old.content[:keep] + _SHORTENED
        fitted[i] = ChatMessage(role=old.role, content=short, tool_calls=old.tool_calls,
                                tool_call_id=old.tool_call_id, name=old.name)
        total -= len(old.content) - len(short)
    return fitted
