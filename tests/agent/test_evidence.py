"""Citation verification: claims checked against the tool results they cite."""

from __future__ import annotations

from tongyi_agent.agent.evidence import verify
from tongyi_agent.tools.base import SourceRef

RETURNED = [
    SourceRef("notes/retro.md", 3, "- Invoice latency dropped from 420 ms to 180 ms after caching tax tables."),
    SourceRef("notes/retro.md", 4, "- The new on-call rotation starts on 3 November."),
    SourceRef("services/billing.md", 7, "- Listens on port 8443 (HTTPS only)."),
    SourceRef("doi:10.1000/xyz123", None, "Attention Is All You Need"),
]


def test_true_quote_verifies() -> None:
    answer = 'The retro says "Invoice latency dropped from 420 ms to 180 ms" (notes/retro.md:3).'
    [item] = verify(answer, [], RETURNED)
    assert item.verified and item.source == "notes/retro.md:3"
    assert "180 ms" in item.snippet


def test_altered_number_does_not_verify() -> None:
    answer = "Invoice latency dropped to 150 ms after caching (notes/retro.md:3)."
    [item] = verify(answer, [], RETURNED)
    assert not item.verified and item.source == "notes/retro.md:3"


def test_altered_quote_does_not_verify() -> None:
    answer = 'The notes say "latency dropped from 420 ms to 18 ms" in notes/retro.md:3.'
    assert [e.verified for e in verify(answer, [], RETURNED)] == [False]


def test_citation_of_a_line_no_tool_returned_fails() -> None:
    [item] = verify("Billing listens on port 8443 (services/billing.md:40).", [], RETURNED)
    assert not item.verified  # line 40 was never returned; lines 38-42 hold nothing


def test_doi_must_come_from_a_scholarly_tool() -> None:
    good, bad = verify("See doi 10.1000/xyz123 for the model. Also 10.9999/made.up claims it.", [], RETURNED)
    assert good.verified and good.source == "doi:10.1000/xyz123"
    assert not bad.verified and bad.source == "doi:10.9999/made.up"


def test_uncited_claims_checked_against_selected_sources() -> None:
    sources = [RETURNED[2]]
    evidence = verify("The billing service listens on port 8443. It was written by 7 people.", sources, RETURNED)
    assert [(e.verified, e.source) for e in evidence] == [(True, "services/billing.md:7"), (False, None)]


def test_claims_without_facts_or_citations_are_not_listed() -> None:
    assert verify("I looked at the files.", [], RETURNED) == []


def test_path_citation_without_line_uses_whole_file() -> None:
    [item] = verify("The rotation starts on 3 November according to notes/retro.md.", [], RETURNED)
    assert item.verified and item.source == "notes/retro.md"
    assert item.snippet == "- The new on-call rotation starts on 3 November."


def test_statements_of_absence_are_not_claims_to_verify() -> None:
    assert verify("The total revenue is not found in data/sales.csv.", [], RETURNED) == []


def test_unsupported_claims_without_numbers_count_as_unverified() -> None:
    # These used to be left out, which made verification_rate look better than it was.
    sources = [RETURNED[2]]
    evidence = verify("The billing service listens on port 8443. It is owned by Maria Okafor. "
                      "Deployments happen through the blue green pipeline.", sources, RETURNED)
    assert [(e.verified, e.source) for e in evidence] == [
        (True, "services/billing.md:7"), (False, None), (False, None)]


def test_facts_are_checked_against_every_tool_output_of_the_run() -> None:
    # A context line of a search result names the owner; it is no SourceRef, but it was returned.
    outputs = ["services/billing.md-6- Owner: Maria Okafor\n"
               "services/billing.md:7: - Listens on port 8443 (HTTPS only)."]
    [owner] = verify("It is owned by Maria Okafor.", [], RETURNED, outputs)
    assert owner.verified and owner.source == "tool output"


def test_the_in_loop_check_and_the_evidence_list_agree() -> None:
    from tongyi_agent.agent.grounding import check_answer

    outputs = [r.text for r in RETURNED]
    for answer in ("Invoice latency dropped to 180 ms.", "Invoice latency dropped to 150 ms.",
                   "The rotation starts on 3 November and billing uses port 9443."):
        evidence = verify(answer, [], RETURNED, outputs)
        assert check_answer(answer, outputs).grounded == all(e.verified for e in evidence), answer
