"""The date relation of "released in the same month as X" questions, on real-shaped search results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tongyi_agent.agent.dialects import NativeDialect
from tongyi_agent.agent.grounding import GroundingGate, check_answer
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.agent.periods import period_check, same_period
from tongyi_agent.agent.steps import ToolStep
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.search_files import search_files

QUESTION = "Which urllib3 version was released in the same month as requests 2.32.4?"
REQUESTS = """Release History
===============

2.32.5 (2025-08-18)
-------------------

**Bugfixes**

- The SSLContext caching feature was reverted.

2.32.4 (2025-06-10)
-------------------

**Security**
- CVE-2024-47081 Fixed an issue where a maliciously crafted URL leaked netrc credentials.

2.4.0 (2014-08-29)
------------------

- Updated bundled urllib3 version.
"""
URLLIB3 = """2.5.0 (2025-06-18)
==================

Features
--------

- Added support for the ``compression.zstd`` module.

2.4.0 (2025-04-10)
==================

Features
--------

- Applied PEP 639 by specifying the license fields.
"""
CLICK = """Version 8.2.1
-------------

Released 2025-05-20

-   Fix flag value handling for flag options.
"""


@pytest.fixture()
def docs(tmp_path: Path) -> ToolContext:
    files = {"requests/HISTORY.md": REQUESTS, "urllib3/CHANGES.rst": URLLIB3, "click/CHANGES.rst": CLICK}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return ToolContext(root=tmp_path)


def search(ctx: ToolContext, query: str, **args: str) -> str:
    return search_files(ctx, query, **args).output


def test_a_question_without_a_same_period_relation_has_none(docs: ToolContext) -> None:
    results = [search(docs, "requests 2.32.4")]
    assert period_check("When was requests 2.32.4 released?", ["2.32.4"], results) is None
    assert period_check("Which urllib3 version came in the same month?", ["2.5.0"], results) is None


def test_the_answer_holds_when_both_entries_are_dated_in_the_same_month(docs: ToolContext) -> None:
    results = [search(docs, "requests 2.32.4"), search(docs, "urllib3 2.5.0")]
    right = period_check(QUESTION, ["2.5.0"], results)
    assert right is not None and right.holds
    assert (right.subject, right.subject_date, right.period) == ("requests 2.32.4", "2025-06-10", "month")
    assert right.answered[0].date == "2025-06-18" and right.target == "urllib3/CHANGES.rst"
    wrong = period_check(QUESTION, ["2.4.0"], [search(docs, "requests 2.32.4"), search(docs, "urllib3 2.4.0")])
    assert wrong is not None and not wrong.holds and wrong.answered[0].date == "2025-04-10"


def test_the_subject_is_dated_from_its_own_file_not_another_packages_same_version(docs: ToolContext) -> None:
    # requests' history has a 2.4.0 of 2014; the question is about urllib3's 2.4.0 of 2025.
    results = [search(docs, "2.4.0")]
    assert "2014-08-29" in results[0] and "2025-04-10" in results[0]
    check = period_check("Which click version came out in the same year as urllib3 2.4.0?", ["8.2.1"],
                         [*results, search(docs, "click 8.2.1")])
    assert check is not None and check.subject_date == "2025-04-10"
    assert check.answered[0].date == "2025-05-20"  # click's date is on a "Released" line under the heading
    assert check.holds and check.period == "year"


def test_an_undated_subject_does_not_hold(docs: ToolContext) -> None:
    check = period_check(QUESTION, ["2.5.0"], [search(docs, "urllib3 2.5.0")])
    assert check is not None and check.subject_date is None and not check.holds


@pytest.mark.parametrize(("period", "inside", "outside"), [
    ("month", ["2025-06-01", "June 30, 2025", "3 June 2025"], ["2025-07-01", "2024-06-10", "May 31, 2025"]),
    ("year", ["2025-01-01", "December 31, 2025"], ["2024-12-31", "2026-01-01"]),
    ("day", ["2025-06-10", "June 10, 2025"], ["2025-06-11", "June 1, 2025"]),
    ("week", ["2025-06-09", "2025-06-15"], ["2025-06-08", "2025-06-16"]),  # Monday to Sunday
])
def test_the_search_pattern_finds_dates_of_the_period_only(docs: ToolContext, period: str, inside: list[str],
                                                           outside: list[str]) -> None:
    check = period_check(f"Which urllib3 version was released in the same {period} as requests 2.32.4?",
                         ["2.5.0"], [search(docs, "requests 2.32.4")])
    assert check is not None and check.subject_date == "2025-06-10"
    pattern = re.compile(check.search_pattern(), re.I)
    assert all(pattern.search(f"x.y ({text})") for text in inside)
    assert not any(pattern.search(f"x.y ({text})") for text in outside)


def test_same_period() -> None:
    assert same_period("2025-06-18", "2025-06-10", "month") and not same_period("2025-06-18", "2024-06-18", "month")
    assert same_period("2025-12-29", "2026-01-02", "week")  # one ISO week across the new year
    assert not same_period("2025-06-18", "2025-06-10", "day")


def test_a_wrong_month_is_not_accepted_and_the_look_up_searches_that_month(docs: ToolContext) -> None:
    results = [search(docs, "requests 2.32.4 urllib3 2.4.0")]
    gate = GroundingGate(QUESTION)
    note = gate.retry_note("urllib3 2.4.0", results, can_retry=True, tools=["search_files", "read_file"])
    assert note is not None and "requests 2.32.4 is dated 2025-06-10" in note and "dated 2025-04-10" in note
    assert gate.lookup is not None and gate.lookup.arguments["path"] == "urllib3/CHANGES.rst"
    shown = gate.results([search(docs, **gate.lookup.arguments)])
    assert "2.5.0 (2025-06-18)" in shown and "2.4.0" not in shown and "2.32.4" not in shown
    assert gate.follow_up(shown) is None  # the subject was dated already: nothing to follow up
    assert not check_answer("urllib3 2.4.0", results, QUESTION).grounded  # marked if it stays


def test_an_undated_subject_is_looked_up_then_its_month_is_searched(docs: ToolContext) -> None:
    results = [search(docs, "Features")]  # urllib3's file, but nothing of requests
    gate = GroundingGate(QUESTION)
    note = gate.retry_note("2.4.0", results, can_retry=True, tools=["search_files"])
    assert note is not None and "no tool result of this run dates it yet" in note
    assert gate.lookup is not None and gate.lookup.arguments == {"query": "requests 2.32.4"}
    first = search(docs, **gate.lookup.arguments)
    follow = gate.follow_up(first)
    assert follow is not None and follow.arguments["path"] == "urllib3/CHANGES.rst"
    shown = gate.results([first, search(docs, **follow.arguments)])
    assert ("requests 2.32.4 is dated 2025-06-10. Then I searched urllib3/CHANGES.rst for entries dated in 2025-06"
            in shown)
    assert "2.5.0 (2025-06-18)" in shown.split("Then")[1] and "2.4.0" not in shown.split("Then")[1]
    assert gate.follow_up(first) is None  # once


def test_the_right_version_is_accepted_and_an_answer_with_no_version_is_not(docs: ToolContext) -> None:
    results = [search(docs, "requests 2.32.4 urllib3 2.5.0")]
    assert check_answer("urllib3 2.5.0", results, QUESTION).grounded
    assert check_answer("It was not found in the files.", results, QUESTION).grounded
    dated = check_answer("2025-06-10", results, QUESTION)  # the subject's date instead of a version
    assert not dated.grounded and dated.period is not None
    gate = GroundingGate(QUESTION)
    assert gate.retry_note("2025-06-10", results, can_retry=True, tools=["search_files"]) is not None
    assert gate.lookup is not None and "2025-06" in gate.lookup.arguments["query"]


async def test_the_loop_runs_both_look_ups_and_accepts_the_corrected_answer(docs: ToolContext) -> None:
    search_call = ChatResponse(content="", tool_calls=[ToolCall("c1", "search_files", {"query": "urllib3 Features"})])
    model = ScriptedModel([search_call, "urllib3 2.4.0", "urllib3 2.5.0"])
    agent = Agent(model, default_registry(), NativeDialect(), docs.root, AgentSpec())
    result = await agent.run(QUESTION)
    lookups = [s.call.arguments for s in result.steps if isinstance(s, ToolStep)][1:]
    assert lookups[0] == {"query": "requests 2.32.4"} and lookups[1]["path"] == "urllib3/CHANGES.rst"
    note = model.calls[2].messages[-1].content or ""
    assert "Then I searched urllib3/CHANGES.rst for entries dated in 2025-06" in note and "2.5.0 (2025-06-18)" in note
    assert (result.answer, result.grounded, result.model_calls) == ("urllib3 2.5.0", True, 3)
