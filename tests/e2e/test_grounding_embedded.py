"""End to end on the real embedded model: an answer from memory is caught by the grounding check,
looked up, and corrected.

Asked when the streaming reader was added to fastcsv, the 1.5B model searches for "fastcsv" (a word
no line of the changelog contains), finds nothing, and answers from memory with a version and a date
that no tool result of the run holds. The check runs its own look-up with the question's words,
puts what it found in its note, and the answer that is accepted is the changelog's own entry. The
embedded model runs at temperature 0 with a fixed seed, so the same question gets the same replies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tongyi_agent.agent.factory import build_agent
from tongyi_agent.agent.steps import ModelStep, NoteStep, ToolStep
from tongyi_agent.config import load_settings

pytestmark = pytest.mark.embedded

CHANGES = (
    "4.1.0 (2025-09-02)\n==================\n\n- Added a streaming reader.\n- Faster quoting.\n\n"
    "4.0.2 (2025-07-21)\n==================\n\n- Fixed handling of a UTF-8 BOM at the start of a file.\n"
    "- Fixed a crash on empty rows.\n\n"
    "4.0.1 (2025-06-30)\n==================\n\n- Documentation fixes.\n"
)


def test_unsupported_first_answer_is_corrected_by_the_check(tmp_path: Path) -> None:
    root = tmp_path / "fastcsv"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "CHANGES.rst").write_text(CHANGES)
    agent = build_agent(load_settings(root))

    result = agent.run_sync("When was the streaming reader added to fastcsv?")
    answers = [s.parsed.answer for s in result.steps if isinstance(s, ModelStep) and s.parsed.answer]
    notes = [s.text for s in result.steps if isinstance(s, NoteStep) and "not accepted" in s.text]
    # The first answer named a release or date that no tool result of the run contained...
    assert "4.1.0" not in answers[0] and "2025-09-02" not in answers[0]
    assert len(notes) == 1 and "appear in no tool result" in notes[0]
    # ...so the check looked the question up itself and showed the model the changelog's entry...
    lookups = [s for s in result.steps if isinstance(s, ToolStep) and s.call.id == "grounding_lookup"]
    assert len(lookups) == 1 and "4.1.0 (2025-09-02)" in lookups[0].result.output
    assert "4.1.0 (2025-09-02)" in notes[0]
    # ...and the accepted answer is the files' release or its date, grounded. (Which of the two the
    # model names depends on whether the prompt prefix came from the prompt cache: seen both ways.)
    assert "4.1.0" in result.answer or "2025-09-02" in result.answer
    assert (result.grounded, result.unsupported) == (True, [])
