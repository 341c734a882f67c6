"""search_papers and fetch_paper: scholarly search across four services, and open-access PDF downloads.

`search_papers` asks Semantic Scholar, OpenAlex, Crossref and arXiv at once, merges what they return
into one ranked list, and reports each service's failure by name. Every DOI it shows also comes back
as a `doi:<doi>` source, which is what the citation verifier checks answers against.

`fetch_paper` stores PDFs content-addressed under `<cache>/papers/<sha256>.pdf` and hands back the
handle `cache:papers/<sha256>.pdf`, which the PDF tools accept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tongyi_agent.tools.base import SourceRef, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.http import NetworkUnavailable, ServiceError, base_url, client_for
from tongyi_agent.tools.papers_sources import SERVICES, Paper, normalize_arxiv_id, normalize_doi, title_key

MAX_LIMIT = 25
MAX_PDF_BYTES = 30 * 1024 * 1024
ABSTRACT_LINE_CHARS = 240
# Reciprocal-rank fusion constant: damps the difference between rank 1 and rank 2 in one service so
# agreement between services counts for more than one service's ordering.
RRF_K = 10

_index_lock = threading.Lock()


# -- merging ----------------------------------------------------------------------------------------

def _absorb(into: Paper, other: Paper) -> None:
    """Union of fields: keep what `into` has, fill the gaps from `other`."""
    for name in ("year", "doi", "arxiv_id", "url", "pdf_url", "venue"):
        if getattr(into, name) is None and getattr(other, name) is not None:
            setattr(into, name, getattr(other, name))
    if len(other.authors) > len(into.authors):
        into.authors = list(other.authors)
    if other.abstract and len(other.abstract) > len(into.abstract or ""):
        into.abstract = other.abstract
    if other.citations is not None:
        into.citations = max(into.citations or 0, other.citations)
    into.sources |= other.sources


def merge_papers(results: dict[str, list[Paper]]) -> list[Paper]:
    """Merge per-service results: the same DOI, arXiv id or normalised title is one paper.

    Two records with the same title but different DOIs stay apart (generic titles such as
    "Introduction" are shared by unrelated works). The list is ordered by reciprocal-rank fusion:
    papers several services rank high come first."""
    merged: list[Paper] = []
    scores: list[float] = []
    by_doi: dict[str, int] = {}
    by_arxiv: dict[str, int] = {}
    by_title: dict[str, int] = {}
    for service in [s for s in SERVICES if s in results] + [s for s in results if s not in SERVICES]:
        for rank, paper in enumerate(results[service]):
            key = title_key(paper.title)
            slot = by_doi.get(paper.doi or "")
            if slot is None:
                slot = by_arxiv.get(paper.arxiv_id or "")
            if slot is None and key in by_title:
                candidate = merged[by_title[key]]
                if not (paper.doi and candidate.doi and paper.doi != candidate.doi):
                    slot = by_title[key]
            if slot is None:
                slot = len(merged)
                merged.append(Paper(title=paper.title, authors=list(paper.authors), sources=set()))
                scores.append(0.0)
            _absorb(merged[slot], paper)
            scores[slot] += 1.0 / (RRF_K + rank + 1)
            record = merged[slot]
            if record.doi:
                by_doi.setdefault(record.doi, slot)
            if record.arxiv_id:
                by_arxiv.setdefault(record.arxiv_id, slot)
            by_title.setdefault(key, slot)
    order = sorted(range(len(merged)), key=lambda i: -scores[i])  # stable: ties keep service order
    return [merged[i] for i in order]


def in_years(paper: Paper, year_from: int | None, year_to: int | None) -> bool:
    """Services apply year filters loosely (arXiv by submission date, Crossref by any date), so the
    range is checked again here; a paper without a year cannot be shown to be in range."""
    if year_from is None and year_to is None:
        return True
    if paper.year is None:
        return False
    return (year_from is None or paper.year >= year_from) and (year_to is None or paper.year <= year_to)


# -- output -----------------------------------------------------------------------------------------

def _authors(names: list[str]) -> str:
    if not names:
        return "unknown authors"
    return ", ".join(names[:3]) + (" et al." if len(names) > 3 else "")


def format_paper(number: int, paper: Paper) -> str:
    lines = [f"{number}. {paper.title} ({paper.year or 'year unknown'})", f"   Authors: {_authors(paper.authors)}"]
    facts = []
    if paper.venue:
        facts.append(f"Venue: {paper.venue}")
    if paper.citations is not None:
        facts.append(f"Citations: {paper.citations}")
    if facts:
        lines.append("   " + " | ".join(facts))
    ids = []
    if paper.doi:
        ids.append(f"DOI: {paper.doi}")
    if paper.arxiv_id:
        ids.append(f"arXiv: {paper.arxiv_id}")
    if not ids and paper.url:
        ids.append(f"URL: {paper.url}")
    if ids:
        lines.append("   " + " | ".join(ids))
    if paper.pdf_url:
        lines.append(f"   Open-access PDF: {paper.pdf_url}")
    if paper.abstract:
        text = paper.abstract
        if len(text) > ABSTRACT_LINE_CHARS:
            text = text[:ABSTRACT_LINE_CHARS].rsplit(" ", 1)[0] + " …"
        lines.append(f"   Abstract: {text}")
    lines.append(f"   Found by: {', '.join(s for s in SERVICES if s in paper.sources)}")
    return "\n".join(lines)


def paper_source(paper: Paper) -> SourceRef:
    if paper.doi:
        path = f"doi:{paper.doi}"
    elif paper.arxiv_id:
        path = f"arxiv:{paper.arxiv_id}"
    else:
        path = paper.url or f"title:{paper.title}"
    return SourceRef(path=path, line=None, text=paper.title)


def _services(ctx: ToolContext) -> list[str]:
    """All services, or the comma-separated subset in TONGYI_PAPER_SERVICES."""
    chosen = [s.strip() for s in ctx.env.get("TONGYI_PAPER_SERVICES", "").split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SERVICES]
    if unknown:
        raise ToolError(f"TONGYI_PAPER_SERVICES names unknown service(s) {', '.join(unknown)}; "
                        f"known: {', '.join(SERVICES)}")
    return chosen or list(SERVICES)


def _ask(ctx: ToolContext, service: str, query: str, year_from: int | None, year_to: int | None,
         limit: int) -> list[Paper] | str:
    """One service's papers, or the line that explains its failure."""
    try:
        return SERVICES[service](ctx, query, year_from, year_to, limit)
    except ServiceError as exc:
        return str(exc)
    except ToolError as exc:
        return f"{service}: {exc}"
    except Exception as exc:  # a malformed answer must not hide the other services' results
        return f"{service}: unexpected answer ({type(exc).__name__}: {exc})"


# -- tools ------------------------------------------------------------------------------------------

def search_papers(ctx: ToolContext, query: str, year_from: int | None = None, year_to: int | None = None,
                  limit: int = 10) -> ToolResult:
    """Search scholarly papers (Semantic Scholar, OpenAlex, Crossref, arXiv) by topic, title or author.

    Args:
        query: words to search for, e.g. "retrieval augmented generation evaluation"
        year_from: earliest publication year to include
        year_to: latest publication year to include
        limit: how many papers to list (1-25)
    """
    query = query.strip()
    if not query:
        raise ToolError("query is empty; give a few words describing the papers you want")
    if limit < 1:
        raise ToolError(f"limit must be 1 or more, got {limit}")
    limit = min(limit, MAX_LIMIT)
    if year_from is not None and year_to is not None and year_from > year_to:
        raise ToolError(f"year_from {year_from} is after year_to {year_to}")
    if ctx.offline:
        return ToolResult.error(NetworkUnavailable().args[0])
    services = _services(ctx)

    with ThreadPoolExecutor(max_workers=len(services), thread_name_prefix="papers") as pool:
        futures = {s: pool.submit(_ask, ctx, s, query, year_from, year_to, limit) for s in services}
        answers = {s: f.result() for s, f in futures.items()}
    results = {s: a for s, a in answers.items() if isinstance(a, list)}
    errors = [a for a in answers.values() if isinstance(a, str)]
    if not results:
        return ToolResult(output="Error: every paper service failed:\n" + "\n".join(f"- {e}" for e in errors),
                          ok=False)

    papers = [p for p in merge_papers(results) if in_years(p, year_from, year_to)][:limit]
    years = ""
    if year_from is not None or year_to is not None:
        years = f", {year_from or '…'}-{year_to or '…'}"
    counts = ", ".join(f"{s}: {len(r)}" for s, r in results.items())
    out = [f'{len(papers)} paper(s) for "{query}"{years} ({counts})']
    if errors:
        out.append("Services that failed: " + "; ".join(errors))
    if not papers:
        out.append("No papers matched; try other words or a wider year range.")
    out.extend(format_paper(n, p) for n, p in enumerate(papers, 1))
    if papers:
        out.append("Use fetch_paper with a DOI, arXiv id or PDF URL to download an open-access PDF.")
    # Titles and abstracts are third-party text: the loop treats them as data, never instructions.
    return ToolResult(output="\n".join(out), sources=[paper_source(p) for p in papers], untrusted=True)


_ARXIV_NEW = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")
_ARXIV_OLD = re.compile(r"^[a-z\-]+(\.[A-Z]{2})?/\d{7}(v\d+)?$")
_DOI = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)


def _classify(value: str) -> tuple[str, str]:
    """("doi" | "arxiv" | "url", normalised value) for what the model passed."""
    doi_match = _DOI.match(value)
    if doi_match:
        return "doi", normalize_doi(doi_match.group(1)) or doi_match.group(1).lower()
    bare = value[6:].strip() if value.lower().startswith("arxiv:") else value
    if _ARXIV_NEW.match(bare) or _ARXIV_OLD.match(bare) or re.match(r"^https?://(export\.)?arxiv\.org/(abs|pdf)/",
                                                                      value):
        arxiv_id = normalize_arxiv_id(bare)
        if arxiv_id:
            return "arxiv", arxiv_id
    if value.startswith(("http://", "https://")):
        return "url", value
    raise ToolError(f"{value!r} is not a DOI (10.xxxx/...), an arXiv id (2101.00001) or an http(s) URL")


def _pdf_url_for_doi(ctx: ToolContext, doi: str) -> tuple[str, str]:
    """(PDF URL, service that knew it) for a DOI: Semantic Scholar first, then OpenAlex."""
    problems = []
    try:
        response = client_for(ctx, "semantic_scholar").get(
            f"/graph/v1/paper/DOI:{doi}", {"fields": "title,openAccessPdf,externalIds"})
        if response.status_code < 400:
            data = response.json()
            url = (data.get("openAccessPdf") or {}).get("url")
            if url:
                return url, "semantic_scholar"
            arxiv_id = normalize_arxiv_id((data.get("externalIds") or {}).get("ArXiv"))
            if arxiv_id:
                return f"{base_url(ctx, 'arxiv')}/pdf/{arxiv_id}", "arxiv"
            problems.append("semantic_scholar: no open-access PDF listed")
        else:
            problems.append(f"semantic_scholar: HTTP {response.status_code}")
    except (ToolError, ValueError) as exc:  # ServiceError, or a link refused by tools.netguard
        problems.append(str(exc))
    try:
        params = {"mailto": ctx.env["TONGYI_MAILTO"]} if ctx.env.get("TONGYI_MAILTO") else {}
        response = client_for(ctx, "openalex").get(f"/works/doi:{doi}", params)
        if response.status_code < 400:
            data = response.json()
            best = data.get("best_oa_location") or {}
            url = best.get("pdf_url") or (data.get("primary_location") or {}).get("pdf_url")
            if url:
                return url, "openalex"
            problems.append("openalex: no open-access PDF listed")
        else:
            problems.append(f"openalex: HTTP {response.status_code}")
    except (ToolError, ValueError) as exc:  # ServiceError, or a link refused by tools.netguard
        problems.append(str(exc))
    raise ToolError(f"no open-access PDF found for DOI {doi} ({'; '.join(problems)}); "
                    "search_papers may list an arXiv version")


def _load_index(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a PDF under its hash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remember(index_path: Path, keys: list[str], sha: str) -> None:
    with _index_lock:
        index = _load_index(index_path)
        index.update(dict.fromkeys(keys, sha))
        _write_atomic(index_path, json.dumps(index, indent=1, sort_keys=True).encode())


def _result(handle: str, size: int, origin: str, cached: bool, source: str) -> ToolResult:
    how = "Already in the cache" if cached else "Downloaded"
    output = (f"{how}: PDF, {size / 1024:.0f} KB, from {origin}\n"
              f"Handle: {handle}\n"
              f'Read it with pdf_text(path="{handle}").')
    return ToolResult(output=output, sources=[SourceRef(path=source, line=None, text=handle)])


def fetch_paper(ctx: ToolContext, url_or_doi: str) -> ToolResult:
    """Download an open-access PDF of a paper into the cache, for reading with pdf_text.

    Args:
        url_or_doi: a DOI (10.1234/abc), an arXiv id or URL (2101.00001), or a direct PDF URL
    """
    if ctx.cache_dir is None:
        raise ToolError("no cache directory configured")
    value = url_or_doi.strip()
    kind, ident = _classify(value)
    key = f"{kind}:{ident}" if kind != "url" else ident
    source = key  # doi:<doi>, arxiv:<id> or the URL: what the citation verifier matches
    papers_dir = ctx.cache_dir / "papers"
    index_path = papers_dir / "index.json"

    # The index maps what the model asked for (and the URL it resolved to) to a content hash, so a
    # repeated request costs no network at all, not even the DOI lookup.
    with _index_lock:
        sha = _load_index(index_path).get(key)
    if sha and (papers_dir / f"{sha}.pdf").is_file():
        pdf = papers_dir / f"{sha}.pdf"
        return _result(f"cache:papers/{sha}.pdf", pdf.stat().st_size, "the cache", True, source)
    if ctx.offline:
        return ToolResult.error(NetworkUnavailable().args[0])

    try:
        if kind == "doi":
            url, _ = _pdf_url_for_doi(ctx, ident)
            # arXiv copies go through arXiv's limiter (one request per 3 s), whoever listed them.
            service = "arxiv" if url.startswith(base_url(ctx, "arxiv")) or "arxiv.org/" in url else "download"
        elif kind == "arxiv":
            url, service = f"{base_url(ctx, 'arxiv')}/pdf/{ident}", "arxiv"
        else:
            url, service = ident, "download"
        with _index_lock:
            sha = _load_index(index_path).get(url)
        if sha and (papers_dir / f"{sha}.pdf").is_file():
            _remember(index_path, [key], sha)
            pdf = papers_dir / f"{sha}.pdf"
            return _result(f"cache:papers/{sha}.pdf", pdf.stat().st_size, "the cache", True, source)
    except ServiceError as exc:
        return ToolResult.error(f"could not find the PDF: {exc}")
    try:
        response = client_for(ctx, service).get(
            url, headers={"Accept": "application/pdf,*/*;q=0.5"}, max_bytes=MAX_PDF_BYTES)
    except ToolError as exc:  # service failures and the size cap alike
        return ToolResult.error(f"could not download the PDF: {exc}")
    if response.status_code >= 400:
        return ToolResult.error(f"could not download the PDF: HTTP {response.status_code} from {url}")
    data = response.content
    # The magic number decides, not Content-Type: repositories often serve PDFs as
    # application/octet-stream, and paywalls serve HTML login pages under .pdf URLs.
    if not data.startswith(b"%PDF-"):
        ctype = response.headers.get("content-type", "unknown").split(";")[0]
        return ToolResult.error(f"{url} did not return a PDF (got {ctype}, {len(data)} bytes); it is "
                                "probably a landing page or a paywall. Try another link from search_papers.")
    sha = hashlib.sha256(data).hexdigest()
    papers_dir.mkdir(parents=True, exist_ok=True)
    pdf = papers_dir / f"{sha}.pdf"
    if not pdf.is_file():
        _write_atomic(pdf, data)
    _remember(index_path, [key, url, response.url], sha)
    return _result(f"cache:papers/{sha}.pdf", len(data), response.url, False, source)


__all__ = ["MAX_PDF_BYTES", "Paper", "fetch_paper", "format_paper", "in_years", "merge_papers", "search_papers"]

