"""The guard that stops a generation stuck repeating one line."""

from __future__ import annotations

from tongyi_agent.llm.repetition import RepetitionGuard


def feed_all(pieces: list[str]) -> RepetitionGuard:
    guard = RepetitionGuard()
    for piece in pieces:
        if guard.feed(piece):
            break
    return guard


def test_a_line_repeated_three_times_stops_and_is_cut_after_its_first_occurrence() -> None:
    line = 'Action Input: {"query": "Project Avocet"}\n'
    text = 'Thought: I will search.\nAction: search_files\n' + line * 40
    # Streamed in small pieces, as tokens arrive; the loop is seen at the third copy.
    guard = feed_all([text[i:i + 3] for i in range(0, len(text), 3)])
    assert guard.stuck
    assert guard.result() == 'Thought: I will search.\nAction: search_files\nAction Input: {"query": "Project Avocet"}'
    assert guard.text.count("Action Input") == 3  # nothing after the third copy was asked for


def test_ordinary_text_is_left_whole() -> None:
    text = "Thought: I know it.\nFinal Answer: the rows are\n- a\n- a b\n- a\n\n\n\n----\n----\n----\nend"
    guard = feed_all([text])
    assert not guard.stuck and guard.result() == text
    # Two copies are not a loop yet, and a repeat that is interrupted starts counting again.
    assert not feed_all(["x = 1\nx = 1\ny\nx = 1\nx = 1\n"]).stuck
