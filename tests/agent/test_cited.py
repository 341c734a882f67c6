"""Cited lines: an answer whose citation states none of its key facts is not accepted as it is."""

from __future__ import annotations

from pathlib import Path

from tongyi_agent.agent.cited import cited_lines, cited_texts, seen_lines
from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.grounding import GroundingGate, check_answer
from tongyi_agent.agent.loop import Agent
from tongyi_agent.agent.steps import NoteStep, ToolStep
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry

SEARCH_HITS = (
    '[projects/lapwing.md, section "Key facts", 4 list items:]\n'
    "projects/lapwing.md-9- - Start date: 2023-01-21\n"
    "projects/lapwing.md:10: - Budget: EUR 1,405,000\n"
    "projects/lapwing.md-11- - Lead: Tariq Oyelaran\n"
    "--\n"
    '[archive/register-2023.md, section "Budgets":]\n'
    "archive/register-2023.md:15: - Lapwing budget (2023, superseded): EUR 1,470,000\n"
)
READ_PAGE = '[notes/2024-09-09-meeting.md, section "Items", 8 list items:]\n' \
            "9: - Kestrel: the team chose Ferrow Instruments as supplier.\n" \
            "10: - Kestrel: Joost Osei presented the latest measurements.\n[showing lines 9-10 of 14]\n"
BUDGET = "What is the current budget of project Lapwing?"


def test_citations_and_the_lines_the_results_showed() -> None:
    assert cited_lines("EUR 1,405,000 (projects/lapwing.md:10), see also notes/a.md:3-5") == [
        ("projects/lapwing.md", 10, 10), ("notes/a.md", 3, 5)]
    assert cited_lines("projects/lapwing.md:10-90") == []  # a whole section is not a line
    seen = seen_lines([SEARCH_HITS, READ_PAGE, "12: a numbered line of a file whose path was not shown"])
    assert seen[("projects/lapwing.md", 9)] == "- Start date: 2023-01-21"  # context lines count too
    assert seen[("archive/register-2023.md", 15)].endswith("EUR 1,470,000")
    assert seen[("notes/2024-09-09-meeting.md", 10)].startswith("- Kestrel: Joost Osei")
    assert not any(line == 12 for _, line in seen)
    assert cited_texts("EUR 1,405,000 (projects/lapwing.md:10)", [SEARCH_HITS]) == (
        "projects/lapwing.md:10", ["- Budget: EUR 1,405,000"])
    assert cited_texts("EUR 1,405,000 (projects/lapwing.md:33)", [SEARCH_HITS]) is None  # a line not seen
    assert cited_texts("EUR 1,405,000", [SEARCH_HITS]) is None


def test_an_answer_its_cited_line_does_not_state_is_unsupported() -> None:
    wrong = check_answer("EUR 1,470,000 (projects/lapwing.md:10)", [SEARCH_HITS], BUDGET)
    assert [(f.text, f.kind) for f in wrong.unsupported] == [("projects/lapwing.md:10", "cited")]
    assert check_answer("EUR 1,405,000 (projects/lapwing.md:10)", [SEARCH_HITS], BUDGET).grounded
    # The archive's line does state the archive's value: the citation supports what it answers.
    assert check_answer("EUR 1,470,000 (archive/register-2023.md:15)", [SEARCH_HITS], BUDGET).grounded
    # No key fact (a one-word status) or a line the run never saw: nothing to judge.
    assert check_answer("active (projects/lapwing.md:10)", [SEARCH_HITS], "What is the status of Lapwing?").grounded
    assert check_answer("EUR 1,405,000 (projects/lapwing.md:44)", [SEARCH_HITS], BUDGET).grounded
    names = check_answer("Arcadia Optics (notes/2024-09-09-meeting.md:9)", [READ_PAGE, "Arcadia Optics"],
                         "Which supplier did the team choose for project Kestrel?")
    assert [f.kind for f in names.unsupported] == ["cited"]


def test_the_retry_reads_the_lines_around_the_cited_one() -> None:
    gate = GroundingGate(BUDGET)
    note = gate.retry_note("EUR 1,470,000 (projects/lapwing.md:10)", [SEARCH_HITS], can_retry=True,
                           tools={"search_files", "read_file"})
    assert gate.lookup is not None and gate.lookup.name == "read_file"
    assert gate.lookup.arguments == {"path": "projects/lapwing.md", "start_line": 8, "end_line": 12}
    assert note is not None and "the line it cites (projects/lapwing.md:10) does not state what it answers" in note
    assert "1,470,000" not in note  # the rejected value is not repeated
    # Without read_file the check searches, as for any unsupported fact.
    other = GroundingGate(BUDGET)
    other.retry_note("EUR 1,470,000 (projects/lapwing.md:10)", [SEARCH_HITS], can_retry=True, tools={"search_files"})
    assert other.lookup is not None and other.lookup.name == "search_files"


async def test_the_loop_shows_the_cited_lines_and_accepts_the_value_they_state(tmp_path: Path) -> None:
    (tmp_path / "projects").mkdir()
    (tmp_path / "archive").mkdir()
    (tmp_path / "projects" / "lapwing.md").write_text(
        "# Project Lapwing\n\n## Key facts\n\n- Status: active\n- Budget: EUR 1,405,000\n- Lead: Tariq Oyelaran\n")
    (tmp_path / "archive" / "register.md").write_text("# Register\n\n- Lapwing budget (superseded): EUR 1,470,000\n")
    model = ScriptedModel([
        ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": "Lapwing budget"})]),
        "EUR 1,470,000 (projects/lapwing.md:6)", "EUR 1,405,000 (projects/lapwing.md:6)"])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run(BUDGET)
    assert result.answer == "EUR 1,405,000 (projects/lapwing.md:6)" and result.grounded is True
    lookup = [s for s in result.steps if isinstance(s, ToolStep)][-1]
    assert lookup.call.name == "read_file" and lookup.call.arguments["start_line"] == 4
    [note] = [s.text for s in result.steps if isinstance(s, NoteStep)]
    assert "- Budget: EUR 1,405,000" in note  # the cited line itself, inside the note
    assert result.model_calls == 3 and model.remaining == 0


async def test_a_citation_still_off_after_the_retry_is_marked(tmp_path: Path) -> None:
    (tmp_path / "projects").mkdir()
    (tmp_path / "projects" / "lapwing.md").write_text("# Project Lapwing\n\n- Budget: EUR 1,405,000\n- Lead: Tariq\n")
    search = ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": "Lapwing"})])
    model = ScriptedModel([search, "Tariq Oyelaran leads it (projects/lapwing.md:3)",
                           "Tariq Oyelaran leads it (projects/lapwing.md:3)"])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run(BUDGET)
    assert result.grounded is False
    assert "projects/lapwing.md:3 (the cited line does not state the answer)" in result.unsupported
