"""End to end on the real embedded model: an answer from memory is caught by the grounding check and
looked up in the files.

The setting is built so that the model's first answer is unsupported: the system prompt's worked
example is about a BOM bug fixed in "fastcsv 3.2.1" (released 2025-03-04), and this project's
changelog says the fix came in 4.0.2. The embedded model runs at temperature 0 with a fixed seed,
so one process asking the same two questions in the same order gets the same replies: the first
question is looked up and answered directly; on the second the model first answers from the prompt's
example (3.2.1, in no tool result of the run), the check names those values and a query to search
with, and the model's second answer is the release the files hold.
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

    first = agent.run_sync("Which release of fastcsv fixed the BOM handling bug?")
    assert "4.0.2" in first.answer and first.grounded is True

    result = agent.run_sync("Which fastcsv release fixed the handling of a UTF-8 BOM?")
    answers = [s.parsed.answer for s in result.steps if isinstance(s, ModelStep) and s.parsed.answer]
    notes = [s.text for s in result.steps if isinstance(s, NoteStep) and s.text.startswith("Not accepted yet")]
    # The first answer named a release and a date that no tool result of the run contained...
    assert "3.2.1" in answers[0] and "4.0.2" not in answers[0]
    assert len(notes) == 1 and '"3.2.1"' in notes[0]
    # ...so the model looked it up, and the accepted answer is the files' release, grounded.
    assert any(isinstance(s, ToolStep) and s.call.name == "search_files" and s.result.ok for s in result.steps)
    assert "4.0.2" in result.answer
    assert (result.grounded, result.unsupported) == (True, [])
