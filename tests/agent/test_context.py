"""Keeping the conversation inside the context window."""

from __future__ import annotations

from tongyi_agent.agent.context import CHARS_PER_TOKEN, cap_observation, fit_messages
from tongyi_agent.llm.base import ChatMessage, ToolCall


def lines(n: int, width: int = 49) -> str:
    return "\n".join(f"{i:04d} " + "x" * (width - 5) for i in range(n))  # each line `width` chars


def test_cap_observation_leaves_short_text_alone() -> None:
    text = lines(3)
    assert cap_observation(text, len(text)) == text


def test_cap_observation_cuts_at_a_line_with_a_marker() -> None:
    text = lines(100)  # 100 lines of 49 chars + newlines
    capped = cap_observation(text, 1000)
    kept, marker = capped.rsplit("\n", 1)
    assert marker == "[output cut at 1000 characters to fit the context; ask for a smaller range]"
    assert len(kept) <= 1000 and text.startswith(kept)
    assert kept.endswith("x") and len(kept.splitlines()) == 1000 // 50  # only whole lines


def _conversation(obs_chars: int) -> list[ChatMessage]:
    def call(n: int) -> ToolCall:
        return ToolCall(f"c{n}", "read_file", {"path": f"f{n}.txt"})

    return [
        ChatMessage("system", "You are careful. " * 5),
        ChatMessage("user", "Which port does billing use?"),
        ChatMessage("assistant", "", tool_calls=[call(1)]),
        ChatMessage("tool", "A" * obs_chars, tool_call_id="c1", name="read_file"),
        ChatMessage("assistant", "", tool_calls=[call(2)]),
        ChatMessage("tool", "B" * obs_chars, tool_call_id="c2", name="read_file"),
        ChatMessage("assistant", "", tool_calls=[call(3)]),
        ChatMessage("tool", "C" * obs_chars, tool_call_id="c3", name="read_file"),
    ]


def _size(messages: list[ChatMessage]) -> int:
    return sum(len(m.content) for m in messages)


def test_fit_messages_changes_nothing_when_it_fits() -> None:
    messages = _conversation(1000)
    assert fit_messages(messages, context_tokens=4096, reserve_tokens=512) == messages


def test_fit_messages_shortens_the_oldest_observation_first() -> None:
    messages = _conversation(3000)
    over = 1000
    budget_chars = _size(messages) - over
    context_tokens = 1000
    reserve = context_tokens - int(budget_chars / CHARS_PER_TOKEN)
    budget_chars = int((context_tokens - reserve) * CHARS_PER_TOKEN)  # as fit_messages computes it

    fitted = fit_messages(messages, context_tokens, reserve)

    assert _size(fitted) <= budget_chars
    assert fitted[:3] == messages[:3]  # system, question, assistant untouched
    oldest = fitted[3]
    assert oldest.content.startswith("A" * 1000) and oldest.content.endswith(
        "[earlier output shortened to fit the context]")
    assert (oldest.role, oldest.tool_call_id, oldest.name) == ("tool", "c1", "read_file")
    assert fitted[5] == messages[5]  # the middle one was not needed
    assert fitted[7] == messages[7]  # the latest observation stays whole
    assert messages[3].content == "A" * 3000  # the input is not mutated


def test_fit_messages_keeps_system_question_and_latest_whole_when_squeezed() -> None:
    messages = _conversation(3000)
    fitted = fit_messages(messages, context_tokens=1000, reserve_tokens=900)  # room for ~350 chars only
    assert fitted[0] == messages[0] and fitted[1] == messages[1]
    assert fitted[7].content == "C" * 3000
    for i in (3, 5):
        assert len(fitted[i].content) < 300 and fitted[i].content.startswith(messages[i].content[:200])


def test_fit_messages_trusts_the_backends_own_token_count() -> None:
    # Paths and numbers: two characters a token, where the estimate assumes 3.5.
    def dense(text: str) -> int:
        return len(text) // 2

    messages = _conversation(3000)
    estimated = fit_messages(messages, context_tokens=4096, reserve_tokens=512)
    assert estimated == messages  # by characters it fits...
    limit = 4096 - 512
    assert sum(dense(m.content) + 8 for m in messages) > limit  # ...but not by the backend's count
    fitted = fit_messages(messages, context_tokens=4096, reserve_tokens=512, count_tokens=dense)
    assert sum(dense(m.content) + 8 for m in fitted) <= limit
    assert fitted[:3] == messages[:3] and fitted[-1] == messages[-1]
    assert fitted[3].content.endswith("[earlier output shortened to fit the context]")
