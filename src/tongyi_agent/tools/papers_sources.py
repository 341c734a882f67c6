"""The scholarly services behind `search_papers`: one query builder and one parser per service.

Parsers take the service's own response format (Semantic Scholar and OpenAlex JSON, Crossref's
`message.items`, arXiv's Atom feed) and return `Paper`s; they tolerate missing and null fields,
which all four services produce routinely.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tongyi_agent.tools.base import ToolContext
from tongyi_agent.tools.http import ServiceClient, ServiceError, client_for

ABSTRACT_CHARS = 600
S2_FIELDS = "title,year,authors,externalIds,abstract,openAccessPdf,url,venue,citationCount"

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_ARXIV_VERSION = re.compile(r"v\d+$")
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass
class Paper:
    """One work as the services describe it; `sources` names the services that returned it."""

    title: str
    year: int | None = None
    authors: list[str] = field(default_factory=list)
    doi: str | None = None
    arxiv_id: str | None = None
    url: str | None = None
    pdf_url: str | None = None
    abstract: str | None = None
    venue: str | None = None
    citations: int | None = None
    sources: set[str] = field(default_factory=set)


def normalize_doi(value: str | None) -> str | None:
    """`https://doi.org/10.1109/CVPR.2016.90` -> `10.1109/cvpr.2016.90` (DOIs are case-insensitive)."""
    if not value:
        return None
    doi = _DOI_PREFIX.sub("", value.strip()).strip().lower()
    return doi if doi.startswith("10.") else None


def normalize_arxiv_id(value: str | None) -> str | None:
    """`http://arxiv.org/abs/1706.03762v5` or `arXiv:1706.03762` -> `1706.03762`."""
    if not value:
        return None
    ident = value.strip()
    for marker in ("arxiv.org/abs/", "arxiv.org/pdf/"):
        if marker in ident:
            ident = ident.split(marker, 1)[1]
    ident = ident.removesuffix(".pdf")
    if ident.lower().startswith("arxiv:"):
        ident = ident[6:]
    return _ARXIV_VERSION.sub("", ident.strip()) or None


def title_key(title: str) -> str:
    """Case, punctuation and spacing differ between services; the letters and digits do not."""
    return _NOT_WORD.sub("", title.casefold())


def clean_text(value: str | None) -> str:
    """Strip markup (Crossref titles carry <i>, abstracts JATS <jats:p>) and collapse whitespace."""
    if not value:
        return ""
    return _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", value))).strip()


def shorten(text: str | None, limit: int = ABSTRACT_CHARS) -> str | None:
    text = clean_text(text)
    if not text:
        return None
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _first(values: Any) -> str | None:
    if isinstance(values, list):
        return next((str(v) for v in values if v), None)
    return str(values) if values else None


# -- parsers ----------------------------------------------------------------------------------------

def parse_semantic_scholar(payload: Any) -> list[Paper]:
    papers = []
    for item in (payload or {}).get("data") or []:
        ids = item.get("externalIds") or {}
        title = clean_text(item.get("title"))
        if not title:
            continue
        papers.append(Paper(
            title=title,
            year=_int(item.get("year")),
            authors=[a["name"] for a in item.get("authors") or [] if a.get("name")],
            doi=normalize_doi(ids.get("DOI")),
            arxiv_id=normalize_arxiv_id(ids.get("ArXiv")),
            url=item.get("url"),
            pdf_url=(item.get("openAccessPdf") or {}).get("url") or None,
            abstract=shorten(item.get("abstract")),
            venue=item.get("venue") or None,
            citations=_int(item.get("citationCount")),
            sources={"semantic_scholar"},
        ))
    return papers


def _crossref_year(item: dict[str, Any]) -> int | None:
    for key in ("issued", "published", "published-print", "published-online", "created"):
        parts = (item.get(key) or {}).get("date-parts") or [[None]]
        year = _int(parts[0][0] if parts and parts[0] else None)
        if year:
            return year
    return None


def _crossref_author(author: dict[str, Any]) -> str:
    if author.get("family"):
        return " ".join(p for p in (author.get("given"), author["family"]) if p)
    return str(author.get("name") or "")


def parse_crossref(payload: Any) -> list[Paper]:
    if (payload or {}).get("status") not in (None, "ok"):
        raise ValueError(f"crossref answered status {payload.get('status')!r}")
    papers = []
    for item in ((payload or {}).get("message") or {}).get("items") or []:
        title = clean_text(_first(item.get("title")))
        if not title:
            continue
        doi = normalize_doi(item.get("DOI"))
        # Crossref's `link` entries are mostly publisher text-mining links behind paywalls, not
        # open-access copies, so they are not offered as PDFs.
        papers.append(Paper(
            title=title,
            year=_crossref_year(item),
            authors=[name for name in map(_crossref_author, item.get("author") or []) if name],
            doi=doi,
            url=item.get("URL") or (f"https://doi.org/{doi}" if doi else None),
            abstract=shorten(item.get("abstract")),
            venue=clean_text(_first(item.get("container-title"))) or None,
            citations=_int(item.get("is-referenced-by-count")),
            sources={"crossref"},
        ))
    return papers


ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"


def parse_arxiv(xml_text: str | bytes) -> list[Paper]:
    # xml.etree does not fetch external entities, so a hostile feed cannot read local files.
    root = ET.fromstring(xml_text)
    papers = []
    for entry in root.findall(f"{ATOM}entry"):
        entry_id = entry.findtext(f"{ATOM}id", "")
        if "/api/errors" in entry_id:
            # arXiv reports a bad query as a feed with one "Error" entry and HTTP 200/400.
            raise ValueError(clean_text(entry.findtext(f"{ATOM}summary")) or "arXiv rejected the query")
        title = clean_text(entry.findtext(f"{ATOM}title"))
        if not title:
            continue
        pdf_url = doi_link = None
        for link in entry.findall(f"{ATOM}link"):
            if link.get("title") == "pdf" or link.get("type") == "application/pdf":
                pdf_url = link.get("href")
            elif link.get("title") == "doi":
                doi_link = link.get("href")
        published = entry.findtext(f"{ATOM}published", "")
        papers.append(Paper(
            title=title,
            year=_int(published[:4]) if published[:4].isdigit() else None,
            authors=[clean_text(a.findtext(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author")
                     if a.findtext(f"{ATOM}name")],
            doi=normalize_doi(entry.findtext(f"{ARXIV}doi") or doi_link),
            arxiv_id=normalize_arxiv_id(entry_id),
            url=entry_id or None,
            pdf_url=pdf_url,
            abstract=shorten(entry.findtext(f"{ATOM}summary")),
            venue=clean_text(entry.findtext(f"{ARXIV}journal_ref")) or None,
            sources={"arxiv"},
        ))
    return papers


def abstract_from_inverted_index(index: dict[str, list[int]] | None) -> str | None:
    """OpenAlex ships abstracts as {word: [positions]} for licensing reasons; put the words back."""
    if not index:
        return None
    slots: dict[int, str] = {}
    for word, positions in index.items():
        for pos in positions:
            slots[pos] = word
    return " ".join(slots[p] for p in sorted(slots))


def _openalex_arxiv_id(item: dict[str, Any]) -> str | None:
    for location in item.get("locations") or []:
        page = (location or {}).get("landing_page_url") or ""
        if "arxiv.org/abs/" in page:
            return normalize_arxiv_id(page)
    return None


def parse_openalex(payload: Any) -> list[Paper]:
    papers = []
    for item in (payload or {}).get("results") or []:
        title = clean_text(item.get("title") or item.get("display_name"))
        if not title:
            continue
        best = item.get("best_oa_location") or {}
        primary = item.get("primary_location") or {}
        doi = normalize_doi(item.get("doi"))
        papers.append(Paper(
            title=title,
            year=_int(item.get("publication_year")),
            authors=[a["author"]["display_name"] for a in item.get("authorships") or []
                     if (a.get("author") or {}).get("display_name")],
            doi=doi,
            arxiv_id=_openalex_arxiv_id(item),
            url=item.get("doi") or item.get("id"),
            # A location's pdf_url is a file; oa_url may be a landing page, so it comes last.
            pdf_url=best.get("pdf_url") or primary.get("pdf_url") or (item.get("open_access") or {}).get("oa_url"),
            abstract=shorten(abstract_from_inverted_index(item.get("abstract_inverted_index"))),
            venue=((primary.get("source") or {}).get("display_name")) or None,
            citations=_int(item.get("cited_by_count")),
            sources={"openalex"},
        ))
    return papers


# -- queries ----------------------------------------------------------------------------------------

def _year_range(year_from: int | None, year_to: int | None) -> str:
    return f"{year_from or ''}-{year_to or ''}"


def _json(client: ServiceClient, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params, headers={"Accept": "application/json"})
    if response.status_code >= 400:
        raise ServiceError(client.name, f"HTTP {response.status_code}", status=response.status_code)
    try:
        return response.json()
    except ValueError:
        raise ServiceError(client.name, "answered with something that is not JSON") from None


def query_semantic_scholar(ctx: ToolContext, query: str, year_from: int | None, year_to: int | None,
                           limit: int) -> list[Paper]:
    params: dict[str, Any] = {"query": query, "limit": limit, "fields": S2_FIELDS}
    if year_from or year_to:
        params["year"] = _year_range(year_from, year_to)
    return parse_semantic_scholar(_json(client_for(ctx, "semantic_scholar"), "/graph/v1/paper/search", params))


def query_crossref(ctx: ToolContext, query: str, year_from: int | None, year_to: int | None,
                   limit: int) -> list[Paper]:
    params: dict[str, Any] = {"query": query, "rows": limit}
    filters = []
    if year_from:
        filters.append(f"from-pub-date:{year_from}")
    if year_to:
        filters.append(f"until-pub-date:{year_to}")
    if filters:
        params["filter"] = ",".join(filters)
    if ctx.env.get("TONGYI_MAILTO"):
        params["mailto"] = ctx.env["TONGYI_MAILTO"]  # puts us in Crossref's faster "polite" pool
    return parse_crossref(_json(client_for(ctx, "crossref"), "/works", params))


def arxiv_search_query(query: str, year_from: int | None, year_to: int | None) -> str:
    """arXiv wants field-prefixed terms joined by AND; a bare multi-word query would be an OR."""
    words = [w for w in re.findall(r"[\w\-]+", query) if w.upper() not in ("AND", "OR", "ANDNOT")]
    terms = [f"all:{w}" for w in words[:12]] or ["all:*"]
    if year_from or year_to:
        terms.append(f"submittedDate:[{year_from or 1990}01010000 TO {year_to or 2999}12312359]")
    return " AND ".join(terms)


def query_arxiv(ctx: ToolContext, query: str, year_from: int | None, year_to: int | None,
                limit: int) -> list[Paper]:
    client = client_for(ctx, "arxiv")
    params = {"search_query": arxiv_search_query(query, year_from, year_to), "max_results": limit,
              "sortBy": "relevance"}
    response = client.get("/api/query", params)
    try:
        papers = parse_arxiv(response.content)
    except ET.ParseError:
        raise ServiceError("arxiv", f"HTTP {response.status_code}, not an Atom feed") from None
    except ValueError as exc:
        raise ServiceError("arxiv", str(exc), status=response.status_code) from None
    if response.status_code >= 400:
        raise ServiceError("arxiv", f"HTTP {response.status_code}", status=response.status_code)
    return papers


def query_openalex(ctx: ToolContext, query: str, year_from: int | None, year_to: int | None,
                   limit: int) -> list[Paper]:
    params: dict[str, Any] = {"search": query, "per-page": limit}
    if year_from and year_to:
        params["filter"] = f"publication_year:{year_from}-{year_to}"
    elif year_from:
        params["filter"] = f"publication_year:>{year_from - 1}"
    elif year_to:
        params["filter"] = f"publication_year:<{year_to + 1}"
    if ctx.env.get("TONGYI_MAILTO"):
        params["mailto"] = ctx.env["TONGYI_MAILTO"]
    return parse_openalex(_json(client_for(ctx, "openalex"), "/works", params))


Query = Callable[[ToolContext, str, int | None, int | None, int], list[Paper]]

# Order matters: it is the tie-break when ranking and the order fields are taken in when merging
# (Semantic Scholar's records are the most complete, arXiv's the sparsest).
SERVICES: dict[str, Query] = {
    "semantic_scholar": query_semantic_scholar,
    "openalex": query_openalex,
    "crossref": query_crossref,
    "arxiv": query_arxiv,
}
