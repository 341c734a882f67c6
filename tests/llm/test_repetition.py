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


def test_a_second_action_line_ends_the_reply_before_it() -> None:
    # The loop seen on the real model: the same call with another path, line after line.
    text = ('Thought: I will search.\nAction: search_files\nAction Input: {"query": "lead", "path": "projects"}\n'
            'Action Input: {"query": "lead", "path": "orgs"}\nAction Input: {"query": "lead", "path": "people"}\n')
    guard = RepetitionGuard(once=("Action:", "Action Input:", "Final Answer:"))
    assert guard.feed(text)
    assert guard.result() == ('Thought: I will search.\nAction: search_files\n'
                              'Action Input: {"query": "lead", "path": "projects"}')
    # A made-up next turn after the action is cut too; one action alone is left whole.
    made_up = "Action: list_files\nAction Input: {}\nThought: now read it\nAction: read_file\n"
    guard = RepetitionGuard(once=("Action:", "Action Input:"))
    guard.feed(made_up)
    assert guard.result() == "Action: list_files\nAction Input: {}\nThought: now read it"
    single = RepetitionGuard(once=("Action:", "Action Input:"))
    assert not single.feed('Thought: x\nAction: list_files\nAction Input: {}') and single.result().endswith("{}")
