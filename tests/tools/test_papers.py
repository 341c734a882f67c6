"""search_papers and fetch_paper against the recorded-format fake of the four scholarly services."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.fakes.scholarly_server import (
    ARXIV_QUERY,
    CROSSREF_WORKS,
    OPENALEX_WORKS,
    PDF_PATH,
    S2_SEARCH,
    Reply,
    ScholarlyServer,
    minimal_pdf,
    sample,
)
from tongyi_agent.tools import http, papers
from tongyi_agent.tools.base import Tool, ToolContext, ToolError
from tongyi_agent.tools.papers import fetch_paper, merge_papers, search_papers
from tongyi_agent.tools.papers_sources import (
    Paper,
    abstract_from_inverted_index,
    arxiv_search_query,
    normalize_arxiv_id,
    normalize_doi,
    parse_arxiv,
    parse_crossref,
    parse_openalex,
    parse_semantic_scholar,
    title_key,
)

RESNET_DOI = "10.1109/cvpr.2016.90"
BERT_DOI = "10.18653/v1/n19-1423"


@pytest.fixture
def ctx(scholarly_server: ScholarlyServer, tmp_path: Path) -> ToolContext:
    # PDFs are downloaded from links the services return; the fake serves them on 127.0.0.1, which only
    # the user's TONGYI_ALLOW_PRIVATE_URLS=1 admits (tests/security/test_ssrf.py checks the refusal).
    return ToolContext(root=tmp_path, cache_dir=tmp_path / "cache",
                       env=scholarly_server.env(TONGYI_ALLOW_PRIVATE_URLS="1"))


def _by_title(found: list[Paper], words: str) -> Paper:
    return next(p for p in found if words.casefold() in p.title.casefold())


# -- parsers ----------------------------------------------------------------------------------------

def test_parse_semantic_scholar() -> None:
    found = parse_semantic_scholar(sample("s2_search.json"))
    resnet, attention, bert = found
    assert resnet.title == "Deep Residual Learning for Image Recognition"
    assert resnet.doi == RESNET_DOI and resnet.arxiv_id == "1512.03385"
    assert resnet.pdf_url == "http://arxiv.org/pdf/1512.03385"
    assert resnet.authors[:2] == ["Kaiming He", "X. Zhang"]
    assert resnet.citations == 201345 and resnet.year == 2016
    assert attention.doi is None and attention.pdf_url is None  # S2 sends "" for "no PDF"
    assert attention.abstract is None
    assert bert.doi == BERT_DOI and bert.sources == {"semantic_scholar"}


def test_parse_crossref() -> None:
    resnet, rag, bert = parse_crossref(sample("crossref_works.json"))
    assert resnet.doi == RESNET_DOI
    assert resnet.authors == ["Kaiming He", "Xiangyu Zhang", "Shaoqing Ren", "Jian Sun"]
    assert resnet.venue == "2016 IEEE Conference on Computer Vision and Pattern Recognition (CVPR)"
    assert resnet.pdf_url is None  # Crossref's similarity-checking links are not open access
    assert rag.title == "Evaluating Retrieval-Augmented Generation & Its Pitfalls"  # markup and entities gone
    assert rag.authors == ["Ada Example", "The RAG Evaluation Consortium"]
    assert rag.abstract == "Abstract We measure how often retrieval-augmented generators cite what they retrieved."
    assert rag.year == 2021 and rag.citations == 12
    assert bert.year == 2019  # issued is [[null]]; published-online fills in


def test_parse_crossref_rejects_error_status() -> None:
    with pytest.raises(ValueError, match="failed"):
        parse_crossref({"status": "failed", "message": [{"type": "validation-failure"}]})


def test_parse_arxiv() -> None:
    attention, resnet, bert = parse_arxiv(sample("arxiv_query.xml"))
    assert attention.title == "Attention Is All You Need"  # the feed's line break is folded
    assert attention.arxiv_id == "1706.03762"  # version dropped so it matches other services
    assert attention.year == 2017
    assert attention.pdf_url == "http://arxiv.org/pdf/1706.03762v7"
    assert len(attention.authors) == 5 and attention.authors[0] == "Ashish Vaswani"
    assert attention.abstract and attention.abstract.startswith("The dominant sequence")
    assert resnet.doi is None
    assert bert.doi == BERT_DOI and bert.venue == "NAACL 2019"


def test_parse_arxiv_error_feed() -> None:
    feed = ('<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id</id>'
            '<title>Error</title><summary>incorrect id format for 1234</summary></entry></feed>')
    with pytest.raises(ValueError, match="incorrect id format"):
        parse_arxiv(feed)


def test_parse_openalex() -> None:
    resnet, attention, imagenet = parse_openalex(sample("openalex_works.json"))
    assert resnet.doi == RESNET_DOI
    assert resnet.arxiv_id == "1512.03385"  # found through its arXiv location
    assert resnet.pdf_url == "https://arxiv.org/pdf/1512.03385"
    assert resnet.abstract == "Deeper neural networks are more difficult to train."
    assert resnet.venue == "2016 IEEE Conference on Computer Vision and Pattern Recognition (CVPR)"
    assert attention.abstract == "The dominant models attention use and attention use more"
    assert imagenet.doi is None and imagenet.url == "https://openalex.org/W2163605009"
    assert imagenet.abstract is None and imagenet.year == 2012


def test_normalisers() -> None:
    assert normalize_doi("https://doi.org/10.1109/CVPR.2016.90") == RESNET_DOI
    assert normalize_doi("http://dx.doi.org/10.1/X") == "10.1/x"
    assert normalize_doi("doi: 10.5/Y") == "10.5/y"
    assert normalize_doi("not a doi") is None
    assert normalize_arxiv_id("https://arxiv.org/pdf/1706.03762v5.pdf") == "1706.03762"
    assert normalize_arxiv_id("arXiv:hep-th/9901001v2") == "hep-th/9901001"
    assert title_key("Attention is All you Need!") == title_key("attention  IS all-you need")
    assert abstract_from_inverted_index({"b": [1], "a": [0]}) == "a b"


def test_arxiv_query_ands_terms_and_adds_dates() -> None:
    assert arxiv_search_query("graph neural nets", None, None) == "all:graph AND all:neural AND all:nets"
    assert arxiv_search_query("x AND y", 2019, None) == (
        "all:x AND all:y AND submittedDate:[201901010000 TO 299912312359]")


# -- merging ----------------------------------------------------------------------------------------

def test_merge_by_doi_title_and_arxiv_id() -> None:
    results = {
        "semantic_scholar": parse_semantic_scholar(sample("s2_search.json")),
        "crossref": parse_crossref(sample("crossref_works.json")),
        "arxiv": parse_arxiv(sample("arxiv_query.xml")),
        "openalex": parse_openalex(sample("openalex_works.json")),
    }
    merged = merge_papers(results)
    assert len(merged) == 5
    resnet = _by_title(merged, "deep residual")
    assert resnet.sources == {"semantic_scholar", "crossref", "arxiv", "openalex"}
    assert resnet.doi == RESNET_DOI
    # Union of fields: the longest author list, the highest citation count.
    assert len(resnet.authors) == 4 and resnet.citations == 201345
    attention = _by_title(merged, "attention is all")
    assert attention.sources == {"semantic_scholar", "arxiv", "openalex"}  # no DOI anywhere: title + arXiv id
    assert attention.pdf_url == "http://arxiv.org/pdf/1706.03762v7"  # S2 had none, arXiv filled it
    assert attention.abstract and attention.abstract.startswith("The dominant sequence")
    # The paper all four services agree on ranks first.
    assert merged[0] is resnet


def test_same_title_without_doi_merges_but_conflicting_dois_do_not() -> None:
    a = Paper(title="Introduction", doi="10.1/a", sources={"crossref"})
    b = Paper(title="INTRODUCTION.", doi="10.1/b", sources={"openalex"})
    c = Paper(title="introduction", year=2020, sources={"arxiv"})
    merged = merge_papers({"crossref": [a], "openalex": [b], "arxiv": [c]})
    assert sorted(p.doi or "" for p in merged) == ["10.1/a", "10.1/b"]
    # The DOI-less record joins the first same-titled one in service order (OpenAlex before Crossref).
    first = next(p for p in merged if p.doi == "10.1/b")
    assert first.sources == {"openalex", "arxiv"} and first.year == 2020


# -- search_papers ----------------------------------------------------------------------------------

def test_search_merges_all_services(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    result = search_papers(ctx, "deep learning")
    assert result.ok, result.output
    assert result.untrusted  # abstracts are third-party text
    out = result.output
    assert out.startswith('5 paper(s) for "deep learning"')
    assert out.count("Deep Residual Learning for Image Recognition") == 1
    assert f"DOI: {RESNET_DOI} | arXiv: 1512.03385" in out
    assert "Found by: semantic_scholar, openalex, crossref, arxiv" in out
    assert "Authors: Ashish Vaswani, Noam Shazeer, Niki Parmar et al." in out
    assert "Services that failed" not in out
    paths = [s.path for s in result.sources]
    assert f"doi:{RESNET_DOI}" in paths and f"doi:{BERT_DOI}" in paths
    assert "arxiv:1706.03762" in paths
    assert "https://openalex.org/W2163605009" in paths
    # Every DOI the model can see appears exactly as a source path.
    for source in result.sources:
        if source.path.startswith("doi:"):
            assert f"DOI: {source.path[4:]}" in out
    # The queries each service received.
    s2 = scholarly_server.requests_to(S2_SEARCH)[0]
    assert s2.param("query") == "deep learning" and s2.param("limit") == "10"
    assert "externalIds" in (s2.param("fields") or "")
    assert scholarly_server.requests_to(CROSSREF_WORKS)[0].param("rows") == "10"
    assert scholarly_server.requests_to(OPENALEX_WORKS)[0].param("per-page") == "10"
    arxiv = scholarly_server.requests_to(ARXIV_QUERY)[0]
    assert arxiv.param("search_query") == "all:deep AND all:learning" and arxiv.param("max_results") == "10"


def test_limit_cuts_the_merged_list(ctx: ToolContext) -> None:
    result = search_papers(ctx, "deep learning", limit=2)
    assert result.output.startswith("2 paper(s)")
    assert len(result.sources) == 2


def test_year_filter_sent_and_applied(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    result = search_papers(ctx, "deep learning", year_from=2016, year_to=2018)
    assert result.ok
    # The fake ignores filters, so only the client-side check can have removed 2012, 2019 and 2021.
    assert "Deep Residual" in result.output and "attention is all you need" in result.output.casefold()
    for gone in ("BERT", "ImageNet", "Retrieval-Augmented"):
        assert gone not in result.output
    assert scholarly_server.requests_to(S2_SEARCH)[0].param("year") == "2016-2018"
    assert scholarly_server.requests_to(CROSSREF_WORKS)[0].param("filter") == (
        "from-pub-date:2016,until-pub-date:2018")
    assert scholarly_server.requests_to(OPENALEX_WORKS)[0].param("filter") == "publication_year:2016-2018"
    assert "submittedDate:[201601010000 TO 201812312359]" in (
        scholarly_server.requests_to(ARXIV_QUERY)[0].param("search_query") or "")


def test_open_ended_year_filter(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    result = search_papers(ctx, "deep learning", year_from=2019)
    assert "BERT" in result.output and "Retrieval-Augmented" in result.output
    assert "Deep Residual" not in result.output
    assert scholarly_server.requests_to(S2_SEARCH)[0].param("year") == "2019-"
    assert scholarly_server.requests_to(OPENALEX_WORKS)[0].param("filter") == "publication_year:>2018"


def test_failed_service_reported_while_others_return(scholarly_server: ScholarlyServer,
                                                     ctx: ToolContext) -> None:
    scholarly_server.route(CROSSREF_WORKS, Reply(status=500, body={"status": "error"}))
    result = search_papers(ctx, "deep learning")
    assert result.ok
    assert "Services that failed: crossref: HTTP 500 after 3 tries" in result.output
    assert "Deep Residual" in result.output
    assert "Retrieval-Augmented" not in result.output  # only Crossref knew that one
    assert len(scholarly_server.requests_to(CROSSREF_WORKS)) == 3


def test_malformed_answer_is_reported_not_raised(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route(OPENALEX_WORKS, Reply(body="<html>maintenance</html>", content_type="text/html"))
    scholarly_server.route(ARXIV_QUERY, Reply(status=400, body=(
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#x</id>'
        "<summary>malformed query</summary></entry></feed>"), content_type="application/atom+xml"))
    result = search_papers(ctx, "deep learning")
    assert result.ok
    assert "openalex: answered with something that is not JSON" in result.output
    assert "arxiv: malformed query" in result.output


def test_all_services_failing_is_not_ok(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    for path in (S2_SEARCH, CROSSREF_WORKS, ARXIV_QUERY, OPENALEX_WORKS):
        scholarly_server.route(path, Reply(status=503))
    result = search_papers(ctx, "deep learning")
    assert not result.ok
    assert result.sources == []
    for service in ("semantic_scholar", "crossref", "arxiv", "openalex"):
        assert f"{service}: HTTP 503 after 3 tries" in result.output


def test_open_circuit_is_reported_without_a_request(scholarly_server: ScholarlyServer,
                                                    ctx: ToolContext) -> None:
    http.set_policy("semantic_scholar", retries=0, failure_threshold=1, cooldown=30.0)
    scholarly_server.route(S2_SEARCH, Reply(status=500))
    search_papers(ctx, "deep learning")
    result = search_papers(ctx, "deep learning")
    assert "semantic_scholar: circuit open" in result.output
    assert result.ok and "Deep Residual" in result.output
    assert len(scholarly_server.requests_to(S2_SEARCH)) == 1


def test_slow_service_times_out_fast(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    http.set_policy("semantic_scholar", timeout=0.3)
    scholarly_server.route(S2_SEARCH, Reply(body=sample("s2_search.json"), delay=3.0))
    started = time.monotonic()
    result = search_papers(ctx, "deep learning")
    assert time.monotonic() - started < 2.0
    assert "semantic_scholar: timed out after 0.3 s" in result.output
    assert result.ok


def test_offline_makes_no_request(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    ctx.offline = True
    result = search_papers(ctx, "deep learning")
    assert not result.ok
    assert "network tools are off (--offline)" in result.output
    assert scholarly_server.requests == []


def test_mailto_and_api_key(scholarly_server: ScholarlyServer, tmp_path: Path) -> None:
    env = scholarly_server.env(TONGYI_MAILTO="me@example.org", SEMANTIC_SCHOLAR_API_KEY="k-123")
    search_papers(ToolContext(root=tmp_path, env=env), "deep learning")
    assert scholarly_server.requests_to(CROSSREF_WORKS)[0].param("mailto") == "me@example.org"
    assert scholarly_server.requests_to(OPENALEX_WORKS)[0].param("mailto") == "me@example.org"
    assert scholarly_server.requests_to(S2_SEARCH)[0].headers["x-api-key"] == "k-123"
    for request in scholarly_server.requests:
        assert request.headers["user-agent"].endswith("(mailto:me@example.org)")
        if not request.path.startswith("/s2/"):
            assert "x-api-key" not in request.headers


def test_no_mailto_param_without_setting(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    search_papers(ctx, "deep learning")
    assert scholarly_server.requests_to(CROSSREF_WORKS)[0].param("mailto") is None


def test_service_subset_from_env(scholarly_server: ScholarlyServer, tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, env=scholarly_server.env(TONGYI_PAPER_SERVICES="crossref"))
    result = search_papers(ctx, "deep learning")
    assert result.output.startswith('3 paper(s) for "deep learning" (crossref: 3)')
    assert {r.path for r in scholarly_server.requests} == {CROSSREF_WORKS}


def test_bad_arguments(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="empty"):
        search_papers(ctx, "  ")
    with pytest.raises(ToolError, match="after year_to"):
        search_papers(ctx, "x", year_from=2020, year_to=2010)
    with pytest.raises(ToolError, match="limit"):
        search_papers(ctx, "x", limit=0)


def test_tool_schemas() -> None:
    search = Tool.from_function(search_papers)
    assert search.parameters["required"] == ["query"]
    assert search.parameters["properties"]["year_from"]["type"] == ["integer", "null"]
    assert search.parameters["properties"]["limit"]["default"] == 10
    fetch = Tool.from_function(fetch_paper)
    assert fetch.parameters["required"] == ["url_or_doi"]
    assert "DOI" in fetch.parameters["properties"]["url_or_doi"]["description"]


# -- fetch_paper ------------------------------------------------------------------------------------

def test_fetch_caches_by_content_hash(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    url = scholarly_server.url(PDF_PATH)
    result = fetch_paper(ctx, url)
    assert result.ok, result.output
    sha = hashlib.sha256(minimal_pdf()).hexdigest()
    handle = f"cache:papers/{sha}.pdf"
    assert f"Handle: {handle}" in result.output
    assert f'pdf_text(path="{handle}")' in result.output
    assert ctx.cache_dir is not None
    assert (ctx.cache_dir / "papers" / f"{sha}.pdf").read_bytes() == minimal_pdf()
    assert result.sources[0].path == url

    again = fetch_paper(ctx, url)
    assert again.ok and handle in again.output and "Already in the cache" in again.output
    assert len(scholarly_server.requests_to(PDF_PATH)) == 1  # the second call sent nothing


def test_fetched_handle_opens_with_pdf_text(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    from tongyi_agent.tools.pdf import pdf_text

    scholarly_server.route("/hello.pdf", Reply(body=minimal_pdf("Residual blocks help"),
                                               content_type="application/pdf"))
    result = fetch_paper(ctx, scholarly_server.url("/hello.pdf"))
    handle = result.sources[0].text
    assert handle.startswith("cache:papers/") and handle.endswith(".pdf")
    assert "Residual blocks help" in pdf_text(ctx, handle).output


def test_fetch_rejects_non_pdf(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route("/landing.pdf", Reply(body="<html>Sign in</html>", content_type="text/html"))
    result = fetch_paper(ctx, scholarly_server.url("/landing.pdf"))
    assert not result.ok
    assert "did not return a PDF (got text/html" in result.output
    assert ctx.cache_dir is not None and not list(ctx.cache_dir.glob("papers/*.pdf"))


def test_fetch_accepts_pdf_served_as_octet_stream(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route("/blob", Reply(body=minimal_pdf("other"), content_type="application/octet-stream"))
    assert fetch_paper(ctx, scholarly_server.url("/blob")).ok


def test_fetch_size_cap(scholarly_server: ScholarlyServer, ctx: ToolContext,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(papers, "MAX_PDF_BYTES", 100)
    result = fetch_paper(ctx, scholarly_server.url(PDF_PATH))
    assert not result.ok
    assert "could not download the PDF: download: response is" in result.output
    assert "over the 100 bytes limit" in result.output
    assert ctx.cache_dir is not None and not list(ctx.cache_dir.glob("papers/*.pdf"))


def test_fetch_resolves_doi_through_semantic_scholar(scholarly_server: ScholarlyServer,
                                                     ctx: ToolContext) -> None:
    lookup = f"/s2/graph/v1/paper/DOI:{RESNET_DOI}"
    scholarly_server.route(lookup, Reply(body={"paperId": "2c03", "title": "Deep Residual Learning",
                                               "openAccessPdf": {"url": scholarly_server.url(PDF_PATH),
                                                                 "status": "GREEN"},
                                               "externalIds": {"DOI": "10.1109/CVPR.2016.90"}}))
    result = fetch_paper(ctx, "https://doi.org/10.1109/CVPR.2016.90")
    assert result.ok, result.output
    assert result.sources[0].path == f"doi:{RESNET_DOI}"
    assert scholarly_server.requests_to(lookup)[0].param("fields") == "title,openAccessPdf,externalIds"
    # Asked again by DOI: neither the lookup nor the download is repeated.
    assert fetch_paper(ctx, f"doi:{RESNET_DOI}").ok
    assert len(scholarly_server.requests_to(lookup)) == 1
    assert len(scholarly_server.requests_to(PDF_PATH)) == 1


def test_fetch_doi_falls_back_to_openalex(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route(f"/s2/graph/v1/paper/DOI:{BERT_DOI}", Reply(status=404, body={"error": "Paper not found"}))
    scholarly_server.route(f"/openalex/works/doi:{BERT_DOI}", Reply(body={
        "best_oa_location": {"pdf_url": scholarly_server.url(PDF_PATH)}}))
    result = fetch_paper(ctx, BERT_DOI)
    assert result.ok, result.output
    assert len(scholarly_server.requests_to(PDF_PATH)) == 1


def test_fetch_doi_without_open_access(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route(f"/s2/graph/v1/paper/DOI:{BERT_DOI}", Reply(body={"openAccessPdf": None,
                                                                               "externalIds": {}}))
    scholarly_server.route(f"/openalex/works/doi:{BERT_DOI}", Reply(status=404, body={"error": "not found"}))
    with pytest.raises(ToolError, match=r"no open-access PDF found for DOI 10\.18653/v1/n19-1423"):
        fetch_paper(ctx, BERT_DOI)


def test_fetch_arxiv_id_uses_arxiv_pdf_url(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    scholarly_server.route("/arxiv/pdf/1706.03762", Reply(body=minimal_pdf("attention"),
                                                          content_type="application/pdf"))
    result = fetch_paper(ctx, "https://arxiv.org/abs/1706.03762v7")
    assert result.ok, result.output
    assert result.sources[0].path == "arxiv:1706.03762"
    assert fetch_paper(ctx, "arXiv:1706.03762").ok  # same id, other spelling: served from the cache
    assert len(scholarly_server.requests_to("/arxiv/pdf/1706.03762")) == 1


def test_fetch_needs_cache_dir_and_valid_input(scholarly_server: ScholarlyServer, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="no cache directory configured"):
        fetch_paper(ToolContext(root=tmp_path), "10.1/x")
    ctx = ToolContext(root=tmp_path, cache_dir=tmp_path / "c", env=scholarly_server.env())
    with pytest.raises(ToolError, match="not a DOI"):
        fetch_paper(ctx, "file:///etc/passwd")


def test_fetch_offline(scholarly_server: ScholarlyServer, ctx: ToolContext) -> None:
    ctx.offline = True
    result = fetch_paper(ctx, scholarly_server.url(PDF_PATH))
    assert not result.ok and "network tools are off (--offline)" in result.output
    assert scholarly_server.requests == []
