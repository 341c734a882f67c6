"""Keep a conversation inside the model's context window.

Observations are the part that grows: each is cut to a per-observation cap, and when the whole
conversation still does not fit, the oldest observations are shortened first. The system prompt,
the question and the latest observation are kept whole.
"""

from __future__ import annotations

from tongyi_agent.llm.base import ChatMessage

CHARS_PER_TOKEN = 3.5  # conservative for code and English with Qwen's tokenizer
_SHORTENED = "\n[earlier output shortened to fit the context]"


def cap_observation(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return (text[:max_chars].rsplit("\n", 1)[0]
            + f"\n[output cut at {max_chars} characters to fit the context; ask for a smaller range]")


def fit_messages(messages: list[ChatMessage], context_tokens: int, reserve_tokens: int) -> list[ChatMessage]:
    """A copy of `messages` whose estimated size leaves `reserve_tokens` free for the reply."""
    budget_chars = int((context_tokens - reserve_tokens) * CHARS_PER_TOKEN)
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
