"""Sources come only from what tools returned; the model's own source list is replaced."""

from __future__ import annotations

from tongyi_agent.agent.citations import MAX_SOURCES, select_sources, strip_model_sources
from tongyi_agent.tools.base import SourceRef

RETURNED = [
    SourceRef("README.md", 2, "A small shop with a billing service and a catalogue."),
    SourceRef("services/catalogue.md", 3, "The catalogue service listens on port 7000."),
    SourceRef("services/billing.md", 1, "# Billing"),
    SourceRef("services/billing.md", 3, "The billing service listens on port 8443."),
]


def labels(refs: list[SourceRef]) -> list[str]:
    return [r.label() for r in refs]


def test_picks_the_line_with_the_answers_number() -> None:
    chosen = select_sources("Billing uses port 8443.", "Which port does billing use?", RETURNED)
    assert labels(chosen) == ["services/billing.md:3"]


def test_picks_the_other_number_for_the_other_answer() -> None:
    chosen = select_sources("The catalogue listens on 7000.", "Which port does the catalogue use?", RETURNED)
    assert labels(chosen) == ["services/catalogue.md:3"]


def test_cited_line_is_kept_only_if_a_tool_returned_it() -> None:
    answer = "It is 8443 (services/billing.md:3; see also config/ports.ini:12 and README.md:2)."
    chosen = select_sources(answer, "Which port does billing use?", RETURNED)
    assert "config/ports.ini:12" not in labels(chosen)  # fabricated: no tool returned it
    # Cited and returned lines come first, in the order the answer cites them.
    assert labels(chosen)[:2] == ["services/billing.md:3", "README.md:2"]
    assert len(set(labels(chosen))) == len(chosen)


def test_fabricated_citation_alone_gives_no_sources() -> None:
    chosen = select_sources("See docs/setup.md:4 for the value.", "Where is the setup?", RETURNED)
    assert chosen == []


def test_answer_without_overlap_gets_no_sources() -> None:
    chosen = select_sources("It was not found in the files.", "Which database is used?", RETURNED)
    assert chosen == []


def test_words_of_the_question_alone_do_not_make_a_source() -> None:
    # "billing" and "service" come from the question; the answer adds nothing the lines contain.
    chosen = select_sources("The billing service: unknown.", "What does the billing service do?", RETURNED)
    assert chosen == []


def test_file_level_refs_are_sources_when_their_text_supports_the_answer() -> None:
    # e.g. a CSV that run_python computed from (text = the program's output) or a DOI with its title
    returned = [SourceRef("data/sales.csv", None, "total: 8443"), SourceRef("other.csv", None, "total: 12")]
    assert labels(select_sources("The total is 8443.", "What is the total?", returned)) == ["data/sales.csv"]


def test_at_most_max_sources() -> None:
    returned = [SourceRef(f"notes/{n}.md", 1, f"token 4242 seen in note {n}") for n in range(MAX_SOURCES + 3)]
    chosen = select_sources("The token is 4242.", "Which token?", returned)
    assert len(chosen) == MAX_SOURCES
    assert labels(chosen) == [f"notes/{n}.md:1" for n in range(MAX_SOURCES)]


def test_duplicate_returned_lines_count_once() -> None:
    chosen = select_sources("Port 8443.", "Which port?", [RETURNED[3], RETURNED[3]])
    assert labels(chosen) == ["services/billing.md:3"]


def test_strip_model_sources_removes_a_trailing_list() -> None:
    answer = "Billing listens on port 8443.\n\nSources:\n- services/billing.md:3\n- config/ports.ini:12\n"
    assert strip_model_sources(answer) == "Billing listens on port 8443."
    numbered = "Port 8443.\n**Sources**:\n1. services/billing.md:3\n2. made/up.md:1"
    assert strip_model_sources(numbered) == "Port 8443."


def test_strip_model_sources_leaves_other_text_alone() -> None:
    answer = "Sources: the billing docs say port 8443.\nNothing else."
    assert strip_model_sources(answer) == answer
    middle = "Port 8443.\n\nSources:\n- services/billing.md:3\n\nAsk again if you need more."
    assert strip_model_sources(middle) == middle
