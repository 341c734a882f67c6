"""Grounding: an answer's key facts checked against what the tools returned in the run."""

from __future__ import annotations

from pathlib import Path

from tongyi_agent.agent.dialects import NativeDialect, ReactDialect
from tongyi_agent.agent.grounding import Corpus, Fact, GroundingGate, check_answer, key_facts
from tongyi_agent.agent.loop import Agent, AgentSpec
from tongyi_agent.agent.steps import ModelStep, NoteStep, ToolStep
from tongyi_agent.llm.base import ChatResponse, ToolCall
from tongyi_agent.llm.scripted import ScriptedModel
from tongyi_agent.tools import default_registry
from tongyi_agent.tools.base import ToolRegistry

CHANGELOG_HIT = (
    "docs/CHANGES.rst-1- 2.5.0 (2025-06-18)\n"
    "docs/CHANGES.rst:7: - Added support for ``compression.zstd``. See `PEP 784 <https://peps.python.org/pep-0784/>`_"
    " (`#3610 <https://github.com/urllib3/urllib3/issues/3610>`__)\n"
    "docs/CHANGES.rst:9: - Sponsored by LaunchDarkly; thanks to Hugo van Kemenade. Default VERIFY_X509_STRICT.\n"
    "docs/CHANGES.rst:10: - 1,250 requests per second."
)


def kinds_of(text: str, given: str = "") -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in key_facts(text, given)]


def test_key_facts_of_each_kind() -> None:
    facts = kinds_of('urllib3 2.5.0 was released on June 18, 2025; it fixed CVE-2025-50181 (issue #3615), '
                     'cites PEP 784 and 10.1145/3597503.3639187, set "retries" to 12 and was sponsored by '
                     'LaunchDarkly with help from Hugo van Kemenade and VERIFY_X509_STRICT.')
    assert ("version", "2.5.0") in facts and ("date", "June 18, 2025") in facts
    assert {("id", "CVE-2025-50181"), ("id", "issue #3615"), ("id", "PEP 784"),
            ("id", "10.1145/3597503.3639187")} <= set(facts)
    assert ("quote", "retries") in facts and ("number", "12") in facts
    assert {("name", "LaunchDarkly"), ("name", "Hugo van Kemenade"), ("name", "VERIFY_X509_STRICT")} <= set(facts)


def test_what_is_not_a_key_fact() -> None:
    # Single digits (derived counts), sentence-opening words, citations and what the question says.
    assert kinds_of("The Bugfixes section lists 4 entries (docs/CHANGES.rst:15).") == []
    assert kinds_of("According to the changelog, it was not found.") == []
    assert kinds_of("Version 2.5.0 added it.", given="What did version 2.5.0 add?") == []


def test_supported_facts_match_across_spellings() -> None:
    corpus = Corpus([CHANGELOG_HIT])
    for fact in (Fact("2.5.0", "version"), Fact("2.5", "version"), Fact("June 18, 2025", "date"),
                 Fact("18 June 2025", "date"), Fact("PEP 784", "id"), Fact("#3610", "id"), Fact("issue 3610", "id"),
                 Fact("1250", "number"), Fact("compression.zstd", "quote"), Fact("hugo van kemenade", "name"),
                 Fact("LaunchDarkly", "name"), Fact("VERIFY_X509_STRICT", "name")):
        assert corpus.contains(fact), fact
    for fact in (Fact("2.5.1", "version"), Fact("2.4.0", "version"), Fact("2025-06-19", "date"), Fact("PEP 785", "id"),
                 Fact("#361", "id"), Fact("CVE-2025-1234", "id"), Fact("125", "number"), Fact("Guido Vranken", "name")):
        assert not corpus.contains(fact), fact


def test_check_answer_lists_only_the_unsupported_facts() -> None:
    check = check_answer("urllib3 2.5.0 (June 18, 2025) added zstd support, see PEP 784; it fixed CVE-2021-44221.",
                         [CHANGELOG_HIT], question="Which urllib3 release added zstd support?")
    assert not check.grounded and check.unsupported_texts() == ["CVE-2021-44221"]
    assert check_answer("It is not in the files.", []).grounded  # nothing claimed, nothing to support


def test_gate_asks_once_then_never_again() -> None:
    gate = GroundingGate("Which release?")
    note = gate.retry_note("Release 7.68.1.", ["1.2.0 (2024-01-01)"], can_retry=True)
    assert note is not None and "the versions in it appear in no tool result" in note
    assert "not found in the files" in note
    assert "7.68.1" not in note  # a small model shown its rejected value answers it again
    assert gate.retry_note("Release 7.68.1.", ["1.2.0 (2024-01-01)"], can_retry=True) is None
    assert GroundingGate("q").retry_note("Release 7.68.1.", [], can_retry=False) is None  # no budget left
    assert GroundingGate("q", enabled=False).retry_note("Release 7.68.1.", [], can_retry=True) is None
    assert GroundingGate("q", enabled=False).final("Release 7.68.1.", []) is None


def search(query: str, call_id: str) -> ChatResponse:
    return ChatResponse(content="", tool_calls=[ToolCall(call_id, "search_files", {"query": query})])


def write_changelog(root: Path) -> None:
    (root / "CHANGES.rst").write_text("2.5.0 (2025-06-18)\n==================\n\n- Fixed redirects via retries.\n\n"
                                      "2.4.0 (2025-04-10)\n==================\n\n- Added verify_flags.\n")


async def test_unsupported_first_answer_is_looked_up_and_corrected(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    model = ScriptedModel([search("verify_flags", "c1"), "verify_flags came in release 2.3.0.",
                           "verify_flags came in release 2.4.0 (2025-04-10)."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run("Which release added verify_flags?")
    assert result.answer == "verify_flags came in release 2.4.0 (2025-04-10)."
    assert result.grounded is True and result.unsupported == []
    notes = [s.text for s in result.steps if isinstance(s, NoteStep)]
    assert len(notes) == 1 and "the versions in it appear in no tool result" in notes[0]
    # The loop ran the look-up itself (a query built from the question): the retry cost one model call.
    assert [type(s).__name__ for s in result.steps] == [
        "ModelStep", "ToolStep", "ModelStep", "ToolStep", "NoteStep", "ModelStep"]
    lookup = [s for s in result.steps if isinstance(s, ToolStep)][1]
    assert lookup.call.arguments == {"query": "added verify_flags"} and "2.4.0 (2025-04-10)" in lookup.result.output
    assert result.model_calls == 3 and model.remaining == 0
    # The rejected answer is gone from what the model reads next; the note names the rejected value.
    last = "\n".join(m.content or "" for m in model.calls[-1].messages)
    assert "2.3.0" not in last
    assert all(e.verified for e in result.evidence)


async def test_without_search_files_the_note_asks_the_model_to_search(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    tools = ToolRegistry([t for t in default_registry() if t.name == "read_file"])
    model = ScriptedModel(["Release 2.3.0.", "Release 2.3.0, surely."])
    result = await Agent(model, tools, NativeDialect(), tmp_path).run("Which release added verify_flags?")
    [note] = [s.text for s in result.steps if isinstance(s, NoteStep)]
    assert "Call search_files" in note and not any(isinstance(s, ToolStep) for s in result.steps)
    assert (result.grounded, result.unsupported) == (False, ["2.3.0"])


async def test_still_unsupported_answer_is_marked_and_the_loop_stops(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    model = ScriptedModel(["<answer>It was released on 2025-07-01.</answer>",
                           "<answer>On 2025-07-01, I am sure.</answer>"])
    result = await Agent(model, default_registry(), ReactDialect(), tmp_path).run("When was 2.5.0 released?")
    assert (result.grounded, result.unsupported) == (False, ["2025-07-01"])
    assert "On 2025-07-01, I am sure." in result.answer
    assert result.model_calls == 2 and model.remaining == 0
    assert [e.verified for e in result.evidence] == [False]


async def test_an_answer_that_is_only_an_id_no_result_names_becomes_not_found(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    model = ScriptedModel(["<answer>CVE-2021-44221</answer>", "<answer>CVE-2021-44221, I am sure.</answer>"])
    result = await Agent(model, default_registry(), ReactDialect(), tmp_path).run("Which CVE did 2.5.0 fix?")
    assert result.answer == "Not found in the files: the id the model answered is in no tool result of this run."
    assert (result.grounded, result.unsupported) == (True, [])
    assert result.model_calls == 2 and model.remaining == 0
    # The guess is kept where --verbose shows it.
    assert any("CVE-2021-44221, I am sure." in s.text for s in result.steps if isinstance(s, NoteStep))


def test_an_id_beside_a_supported_fact_is_marked_not_replaced() -> None:
    hits = '[CHANGES.rst, section "2.5.0 (2025-06-18)":]\nCHANGES.rst:4: - Fixed redirects via retries.\n'
    check = check_answer("2.5.0 fixed redirects on 2025-06-18 (CVE-2025-1111).", [hits], "Which CVE did 2.5.0 fix?")
    assert check.unsupported_texts() == ["CVE-2025-1111"] and check.absent_ids == []
    assert check_answer("CVE-2025-1111", [hits], "Which CVE did 2.5.0 fix?").absent_ids[0].text == "CVE-2025-1111"


async def test_an_answer_about_a_version_no_result_names_becomes_not_found(tmp_path: Path) -> None:
    write_changelog(tmp_path)  # 2.5.0 and 2.4.0 only
    model = ScriptedModel([search("2.6.0", "c1"), "2.6.0 was released on 2025-09-15.", "On 2025-09-15, I am sure."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run("When was release 2.6.0 out?")
    assert result.answer == "Not found in the files: no tool result of this run mentions 2.6.0."
    assert (result.grounded, result.unsupported) == (True, [])
    notes = [s.text for s in result.steps if isinstance(s, NoteStep)]
    assert len(notes) == 2 and "the model had answered: On 2025-09-15, I am sure." in notes[1]
    # A subject the results do name keeps the model's answer, marked when a fact is not supported.
    model = ScriptedModel([search("2.5.0", "c1"), "On 2025-09-15.", "On 2025-09-15, I am sure."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run("When was release 2.5.0 out?")
    assert result.answer == "On 2025-09-15, I am sure." and result.unsupported == ["2025-09-15"]


async def test_no_retry_when_the_budget_is_spent(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    model = ScriptedModel([search("release", "c1"), "Release 9.9.9."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path, AgentSpec(max_steps=2)).run("Which?")
    assert result.model_calls == 2 and not any(isinstance(s, NoteStep) for s in result.steps)
    assert (result.grounded, result.unsupported) == (False, ["9.9.9"])


async def test_run_python_output_counts_as_a_tool_result(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("region,revenue\nnorth,1200\nsouth,950\n")
    code = "import csv\nprint(sum(int(r['revenue']) for r in csv.DictReader(open('sales.csv'))))"
    model = ScriptedModel([ChatResponse(content="", tool_calls=[ToolCall("c1", "run_python", {"code": code})]),
                           "The total revenue is 2150."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run("Total revenue?")
    [ran] = [s for s in result.steps if isinstance(s, ToolStep)]
    assert "2150" in ran.result.output and "1200" not in ran.result.output
    assert result.grounded is True and result.model_calls == 2
    assert [type(s) for s in result.steps] == [ModelStep, ToolStep, ModelStep]


def test_the_retry_note_names_a_query_built_from_the_question() -> None:
    note = GroundingGate("Which port does the billing service listen on?").retry_note(
        "Port 9443.", [], can_retry=True)
    assert note is not None and 'search_files with the query "port billing service listen"' in note


def test_an_answer_about_a_subject_the_files_never_mention_is_unsupported() -> None:
    outputs = ["[click/CHANGES.rst, section \"Version 8.3.0\":]\nclick/CHANGES.rst-5- Released 2025-09-17"]
    check = check_answer("It was released on 2025-09-17.", outputs, question="When was click 8.4.0 released?")
    assert check.unsupported_texts() == ["2025-09-17", "8.4.0"]
    # Saying it is not there claims nothing, so nothing is missing; a subject that is there is fine.
    assert check_answer("It is not in the files.", outputs, question="When was click 8.4.0 released?").grounded
    assert check_answer("On 2025-09-17.", outputs, question="When was click 8.3.0 released?").grounded


async def test_an_error_result_supports_no_fact(tmp_path: Path) -> None:
    write_changelog(tmp_path)
    missing = ChatResponse(content="", tool_calls=[ToolCall("c1", "read_file", {"path": "CVE-2017-1199.txt"})])
    model = ScriptedModel([missing, "CVE-2017-1199.", "CVE-2017-1199, surely."])
    result = await Agent(model, default_registry(), NativeDialect(), tmp_path).run("Which CVE did 2.5.0 fix?")
    [failed] = [s for s in result.steps if isinstance(s, ToolStep) and not s.result.ok]
    assert "CVE-2017-1199" in failed.result.output  # the error names the path it could not read...
    # ...and grounds nothing: the answer, only that id, is replaced by "not found".
    assert result.answer.startswith("Not found in the files") and result.grounded is True


CHARSET_HITS = (
    '[charset_normalizer/CHANGELOG.md, section "[3.4.3](https://github.com/jawah/charset_normalizer) (2025-08-09)":]\n'
    "charset_normalizer/CHANGELOG.md:13: - Support for Python 3.14\n"
    "--\n"
    '[charset_normalizer/CHANGELOG.md, section "[3.4.2](https://github.com/jawah/charset_normalizer) (2025-05-02)":]\n'
    "charset_normalizer/CHANGELOG.md:31: - Upgraded mypyc to 1.15\n")


def test_a_fact_counts_only_beside_the_subject_the_question_names() -> None:
    question = "When was charset-normalizer 3.4.2 released?"
    # The date of the neighbouring entry is in the results, but not in any block about 3.4.2.
    wrong = check_answer("It was released on 2025-08-09.", [CHARSET_HITS], question)
    assert wrong.unsupported_texts() == ["2025-08-09"] and [f.text for f in wrong.subjects] == ["3.4.2"]
    assert check_answer("On 2025-05-02.", [CHARSET_HITS], question).grounded
    # read_file's whole output is one block: a section read from its header holds the subject.
    section = "24: ## [3.4.2](https://github.com/jawah/charset_normalizer) (2025-05-02)\n31: - Upgraded mypyc to 1.15"
    assert check_answer("mypyc 1.15.", [section], "Which mypyc does charset-normalizer 3.4.2 use?").grounded
    # A line that names the subject is about it, together with the name of its section.
    assert check_answer("On 2025-08-09.", [CHARSET_HITS], "When was Python 3.14 support added?").grounded


def test_a_subject_named_on_another_line_of_a_group_supports_nothing_beside_it() -> None:
    # idna's 2.9 entry mentions "Python 3.7" on the line after the one that thanks Julien Bernard.
    hits = ('[idna/HISTORY.rst, section "2.9 (2020-02-16)", 6 list items:]\n'
            "idna/HISTORY.rst-128- - Prohibit A-labels ending with a hyphen (Thanks, Julien Bernard!)\n"
            "idna/HISTORY.rst:129: - Future-proofing: Test on Python 3.7 and 3.8, don't immediately\n")
    question = "Who is thanked for reporting the issue fixed in idna 3.7?"
    assert check_answer("Julien Bernard.", [hits], question).unsupported_texts() == ["Julien Bernard"]
    assert check_answer("Julien Bernard.", [hits], "Who is thanked in idna 2.9?").grounded


def test_a_link_target_in_a_heading_does_not_name_its_subject() -> None:
    # Keep a Changelog headings link to a comparison with the previous version.
    heading = ('[charset_normalizer/CHANGELOG.md, section "3.4.3 (2025-08-09)":]\n'
               "charset_normalizer/CHANGELOG.md:5: ## [3.4.3](https://github.com/o/c/compare/3.4.2...3.4.3) "
               "(2025-08-09)\n")
    check = check_answer("On 2025-08-09.", [heading], "When was charset-normalizer 3.4.2 released?")
    assert check.unsupported_texts() == ["2025-08-09", "3.4.2"]


def test_the_note_says_which_subject_the_facts_were_missing_from() -> None:
    note = GroundingGate("When was charset-normalizer 3.4.2 released?").retry_note(
        "On 2025-08-09.", [CHARSET_HITS], can_retry=True)
    assert note is not None and 'the dates in it appear in no tool result of this run about "3.4.2"' in note


URLLIB3_FEATURES = (
    '[urllib3/CHANGES.rst, section "2.5.0 (2025-06-18) > Features", 2 list items:]\n'
    "urllib3/CHANGES.rst:4: Features\n"
    "urllib3/CHANGES.rst-7- - Added support for the ``compression.zstd`` module (#3610)\n"
    "--\n"
    '[urllib3/CHANGES.rst, section "2.4.0 (2025-04-10)", 9 list items:]\n'
    "urllib3/CHANGES.rst:24: 2.4.0 (2025-04-10)\n"
    "--\n"
    '[urllib3/CHANGES.rst, section "2.4.0 (2025-04-10) > Features", 3 list items:]\n'
    "urllib3/CHANGES.rst:27: Features\n"
    "urllib3/CHANGES.rst-30- - Applied PEP 639 by specifying the license fields in pyproject.toml. (#3522)\n"
    "urllib3/CHANGES.rst-31- - Updated exceptions to save more properties during pickling. (#3567)\n"
    "urllib3/CHANGES.rst-32- - Added verify_flags, for Python 3.13+ with 10 flags. (#3571)\n"
)


def test_a_count_must_be_one_the_search_results_show_for_the_subject() -> None:
    question = "How many items are listed under Features in urllib3 2.4.0?"
    # "10" is in the text of the right section, but it is not how many items the section lists.
    wrong = check_answer("10", [URLLIB3_FEATURES], question)
    assert [(f.kind, f.text) for f in wrong.unsupported] == [("count", "10")]
    # The sections about 2.4.0 only, the one sharing "Features" with the question first.
    assert wrong.counts == [("2.4.0 (2025-04-10) > Features", 3), ("2.4.0 (2025-04-10)", 9)]
    assert check_answer("3", [URLLIB3_FEATURES], question).grounded
    assert check_answer("Three items.", [URLLIB3_FEATURES], question).grounded
    assert not check_answer("two", [URLLIB3_FEATURES], question).grounded  # 2.5.0's count, not 2.4.0's
    # A result that opens with a note still has its first group's section read.
    noted = "Note: 'docs' does not exist; searched the whole project instead.\n" + URLLIB3_FEATURES
    assert check_answer("10", [noted], question).counts == wrong.counts
    # No count shown for the subject: nothing to compare with, the answer is judged as before.
    assert check_answer("3", ["CHANGES.rst:1: 2.6.0 (2025-12-01)"], "How many items does urllib3 2.6.0 list?").grounded
    # A count of a subject no result names yet comes from nowhere: the note asks to look it up.
    unseen = check_answer("1", ["docs/\nurllib3/CHANGES.rst"], "How many items does urllib3 2.6.0 list?")
    assert [(f.kind, f.text) for f in unseen.unsupported] == [("count", "1"), ("version", "2.6.0")]
    unseen_note = GroundingGate("How many items does urllib3 2.6.0 list?").retry_note(
        "1", ["docs/\nurllib3/CHANGES.rst"], can_retry=True, tools={"search_files"})
    assert unseen_note is not None and 'No tool result of this run names "2.6.0" yet.' in unseen_note
    note = GroundingGate(question).retry_note("10", [URLLIB3_FEATURES], can_retry=True)
    assert note is not None
    assert 'its count is not one the search results show about "2.4.0": they counted 3 list items in section ' \
           '"2.4.0 (2025-04-10) > Features"; 9 list items in section "2.4.0 (2025-04-10)".' in note


def test_a_wrong_count_is_looked_up_by_reading_the_counted_section() -> None:
    question = "How many items are listed under Features in urllib3 2.4.0?"
    shown = URLLIB3_FEATURES + '[whole section: read_file(path="urllib3/CHANGES.rst", start_line=27, end_line=33)]\n'
    gate = GroundingGate(question)
    note = gate.retry_note("10", [shown], can_retry=True, tools={"search_files", "read_file"})
    assert gate.lookup is not None and gate.lookup.name == "read_file"
    assert gate.lookup.arguments == {"path": "urllib3/CHANGES.rst", "start_line": 27, "end_line": 33}
    assert note is not None and 'I read section "2.4.0 (2025-04-10) > Features" (urllib3/CHANGES.rst, ' \
                                'lines 27-33), which lists 3 items:\n{results}' in note
    # A read page is shown whole; only a search is focused.
    assert gate.focus("27: Features\n--\n28: x") == "27: Features\n--\n28: x"
    # Without a range to read, the check searches.
    other = GroundingGate(question)
    other.retry_note("10", [URLLIB3_FEATURES], can_retry=True, tools={"search_files", "read_file"})
    assert other.lookup is not None and other.lookup.name == "search_files"


def test_a_search_look_up_shows_the_subjects_sections_first_and_few_groups() -> None:
    gate = GroundingGate("When was urllib3 2.4.0 released?")
    gate.retry_note("On 2025-01-01.", [], can_retry=True, tools={"search_files"})
    groups = [f'[CHANGES.rst, section "{v} (2025-0{i}-10)":]\nCHANGES.rst:{i}: x' for i, v in
              enumerate(["2.5.0", "2.3.0", "2.2.0", "2.1.0", "2.4.0", "2.0.0"], start=1)]
    focused = gate.focus("\n--\n".join(groups)).split("\n--\n")
    assert focused == [groups[4], *groups[:3]]


def test_a_count_on_a_read_page_is_checked_like_a_searched_one() -> None:
    # read_file names each section of a document with its list items; the check reads those too.
    page = ('[packaging/CHANGELOG.rst, section "25.0 - 2025-04-19", 2 list items:]\n'
            "4: 25.0 - 2025-04-19\n7: * PEP 751\n8: * Fix a crash\n"
            '[packaging/CHANGELOG.rst, section "24.2 - 2024-11-08", 4 list items:]\n'
            "10: 24.2 - 2024-11-08\n13: * Drop Python 3.7\n[showing lines 4-16 of 400]")
    question = "How many changes are listed for packaging 25.0?"
    check = check_answer("4", [page], question)
    assert [(f.kind, f.text) for f in check.unsupported] == [("count", "4")]
    assert check.counts == [("25.0 - 2025-04-19", 2)]
    assert check_answer("2", [page], question).grounded
    # A date under 24.2's heading on the same page is not about 25.0.
    assert check_answer("On 2024-11-08.", [page], "When was packaging 25.0 released?").unsupported_texts() == [
        "2024-11-08"]


def test_an_answer_that_only_repeats_the_question_is_not_accepted() -> None:
    hits = ('[requests/HISTORY.md, section "2.32.5 (2025-08-18)":]\n'
            "requests/HISTORY.md:13: - Reverted SSLContext caching (#7005)\n")
    question = "Which feature did requests 2.32.5 revert?"
    check = check_answer("The feature revert was in requests 2.32.5.", [hits], question)
    assert [f.kind for f in check.unsupported] == ["restated"]
    library = check_answer("The feature revert was in version 2.32.5 of the requests library.", [hits], question)
    assert [f.kind for f in library.unsupported] == ["restated"]
    assert check_answer("SSLContext caching.", [hits], question).grounded
    # A version the question names is no answer to "which other version".
    assert not check_answer("2.32.4", [hits], "Which urllib3 version came out with requests 2.32.4?").grounded
    # Yes/no and choices answer with words of the question; "not found" is an answer too.
    assert check_answer("Yes.", [hits], "Did requests 2.32.5 revert SSLContext caching?").grounded
    assert check_answer("SSLContext caching", [hits], "Was SSLContext caching or HTTP/2 reverted?").grounded
    assert check_answer("It is not found in the files.", [hits], question).grounded
    note = GroundingGate(question).retry_note("The feature revert was in requests 2.32.5.", [hits], can_retry=True)
    assert note is not None and "only repeats the question" in note


def test_a_question_asking_which_version_needs_a_version_or_not_found() -> None:
    hits = ('[urllib3/CHANGES.rst, section "2.4.0 (2025-04-10)":]\n'
            "urllib3/CHANGES.rst:24: 2.4.0 (2025-04-10)\n")
    question = "Which version of the packaging library was released in the same month as urllib3 2.4.0?"
    check = check_answer("2025-04-10", [hits], question)
    assert [(f.kind, f.text) for f in check.unsupported] == [("type", "a version")]
    note = GroundingGate(question).retry_note("2025-04-10", [hits], can_retry=True)
    assert note is not None and "asks which version, and the answer names none" in note
    assert check_answer("It is not found in the files.", [hits], question).grounded
    assert check_answer("Python 3.8", ["Dropped support for Python 3.8"], "Which Python version was dropped?").grounded
    assert check_answer("On 2025-04-10.", [hits], "When was urllib3 2.4.0 released?").grounded


def test_a_question_asking_which_file_needs_a_file_the_results_showed() -> None:
    question = "Which file records the supplier chosen for project Siskin?"
    seen = ["notes/2024-10-31-meeting.md:12: - Siskin: the team chose Nordlys Components as supplier."]
    for answer in ("notes/2024-10-31-meeting.md", "It is in `notes/2024-10-31-meeting.md:12`.",
                   "Not found in the files."):
        assert check_answer(answer, seen, question).grounded, answer
    made_up = check_answer("The file is `src/supplier_chosen.py`.", seen, question)
    assert made_up.unsupported == [Fact("src/supplier_chosen.py", "path")]
    assert check_answer("It is in the meeting notes.", seen, question).unsupported == [Fact("a file", "type")]
    gate = GroundingGate(question)
    note = gate.retry_note("It is in the meeting notes.", seen, can_retry=True)
    assert note is not None and "asks which file, and the answer names none" in note
    note = GroundingGate(question).retry_note("data/siskin.csv", seen, can_retry=True)
    assert note is not None and "the file paths in it appear in no tool result" in note
    # A path in an answer to another question is a citation, as before.
    assert check_answer("Nordlys Components (src/made_up.py)", seen, "Which supplier did Siskin choose?").grounded


def test_section_count_reads_the_group_header() -> None:
    from tongyi_agent.tools.search_results import section_count

    assert section_count('[a.md, section "2.4.0 > Features", 3 list items:]') == ("2.4.0 > Features", 3)
    assert section_count('[a.md, section "Intro", 1 list item:]') == ("Intro", 1)
    assert section_count('[a.md, section "Intro":]') is None


def test_a_protocol_version_is_a_subject_the_results_must_name() -> None:
    assert kinds_of("It supports HTTP/3 and TLS/1.3, see docs/http/3.md.") == [("id", "HTTP/3"), ("id", "TLS/1.3")]
    hits = ('[requests/HISTORY.md, section "2.32.0 (2024-05-20)":]\n'
            "requests/HISTORY.md:98: - Added support for CPython 3.12\n")
    check = check_answer("2.32.0", [hits], "Which version of requests added support for HTTP/3?")
    assert "HTTP/3" in check.unsupported_texts()
