"""web_search and web_fetch against the loopback fake in tests.fakes.web_server (no real network)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.fakes.web_server import LARGE_BYTES, WebServer, running_web_server
from tongyi_agent.tools import http
from tongyi_agent.tools import web as web_module
from tongyi_agent.tools.base import SourceRef, Tool, ToolContext, ToolError, ToolResult
from tongyi_agent.tools.pdf import pdf_text
from tongyi_agent.tools.web import (
    UNTRUSTED_END,
    UNTRUSTED_MARKER,
    choose_engine,
    is_untrusted,
    web_fetch,
    web_search,
)


@pytest.fixture
def site() -> Iterator[WebServer]:
    with running_web_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fast_http() -> Iterator[None]:
    """Fresh shared clients per test, with back-offs and time-outs short enough for a test suite."""
    http.reset_clients()
    for service in ("web", "searxng", "brave", "tavily", "ddgs"):
        http.set_policy(service, backoff=0.01, max_backoff=0.02, timeout=2.0)
    yield
    http.reset_clients()


@pytest.fixture
def wctx(project: Path, tmp_path: Path) -> ToolContext:
    return ToolContext(root=project, cache_dir=tmp_path / "cache", env={"TONGYI_ALLOW_PRIVATE_URLS": "1"})


def _body(result: ToolResult) -> list[str]:
    """Output lines between the untrusted markers, checking that the markers are there."""
    lines = result.output.splitlines()
    assert lines[0] == UNTRUSTED_MARKER and lines[-1] == UNTRUSTED_END
    return lines[1:-1]


# -- web_fetch --------------------------------------------------------------------------------------


def test_fetch_html_keeps_the_article_and_drops_boilerplate(site: WebServer, wctx: ToolContext) -> None:
    url = site.url("/article")
    result = web_fetch(wctx, url)
    assert result.ok and result.untrusted and is_untrusted(result)
    body = _body(result)
    assert body[:2] == [f"URL: {url}", "Title: Tidal Energy Report"]
    text = "\n".join(body)
    assert "Pentland Firth produced 45 gigawatt hours" in text
    for boilerplate in ("cookies", "Copyright", "Shop our merchandise", "newsletter"):
        assert boilerplate not in text
    assert all(s.path == url and s.line is not None for s in result.sources)
    first_fact = next(s for s in result.sources if "Pentland" in s.text)
    assert f"{first_fact.line}: {first_fact.text}" in body


def test_fetch_plain_json_and_markdown_as_is(site: WebServer, wctx: ToolContext) -> None:
    plain = web_fetch(wctx, site.url("/plain"))
    assert _body(plain)[2:] == ["1: First line of notes.", "2: ", "3: Second line after a blank."]
    assert [s.line for s in plain.sources] == [1, 3]  # blank lines are not citable

    data = "\n".join(line.split(": ", 1)[1] for line in _body(web_fetch(wctx, site.url("/data.json")))[2:])
    assert json.loads(data) == {"name": "tidal", "turbines": 4, "output_gwh": 45}

    markdown = web_fetch(wctx, site.url("/notes.md"))
    assert "1: # Notes" in _body(markdown)


def test_fetch_truncates_to_max_chars(site: WebServer, wctx: ToolContext) -> None:
    result = web_fetch(wctx, site.url("/article"), max_chars=250)
    assert "[truncated: showing lines 1-" in result.output
    assert "larger max_chars" in result.output
    assert len(result.output) < 250 + 400  # header, markers and note on top of the cap


def test_fetch_refuses_downloads_over_the_cap(site: WebServer, wctx: ToolContext,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_module, "MAX_DOWNLOAD_BYTES", LARGE_BYTES // 3)
    # The fake streams /large without Content-Length, so only counting received bytes catches it.
    with pytest.raises(ToolError, match=r"over the 0\.1 MB download limit"):
        web_fetch(wctx, site.url("/large"))
    assert site.count("/large") == 1  # a size refusal is final, not retried


def test_fetch_refuses_unreadable_content_types(site: WebServer, wctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="image/png"):
        web_fetch(wctx, site.url("/image.png"))
    assert site.count("/image.png") == 1  # refused on the headers, not retried
    with pytest.raises(ToolError, match="no content type"):
        web_fetch(wctx, site.url("/no-type"))


def test_fetch_gives_up_on_slow_pages(site: WebServer, wctx: ToolContext) -> None:
    http.set_policy("web", timeout=0.3, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(http.ServiceError, match="timed out"):
        web_fetch(wctx, site.url("/slow"))
    assert time.monotonic() - started < 2.0
    assert site.count("/slow") == 1


def test_fetch_retries_a_server_error(site: WebServer, wctx: ToolContext) -> None:
    result = web_fetch(wctx, site.url("/flaky"))
    assert "1: Recovered after a retry." in result.output
    assert site.count("/flaky") == 2


def test_fetch_cache_hit_makes_no_request(site: WebServer, wctx: ToolContext) -> None:
    first = web_fetch(wctx, site.url("/article"))
    second = web_fetch(wctx, site.url("/article#section-2"))  # the fragment is not part of the key
    assert second.output == first.output and second.sources == first.sources
    assert site.count("/article") == 1

    assert wctx.cache_dir is not None
    entry = next((wctx.cache_dir / "web").glob("*.json"))
    stale = time.time() - web_module.CACHE_TTL_S - 60
    os.utime(entry, (stale, stale))
    web_fetch(wctx, site.url("/article"))
    assert site.count("/article") == 2  # expired entries are fetched again


def test_fetch_without_a_cache_folder_still_works(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project, env={"TONGYI_ALLOW_PRIVATE_URLS": "1"})
    web_fetch(ctx, site.url("/plain"))
    web_fetch(ctx, site.url("/plain"))
    assert site.count("/plain") == 2


def test_fetch_refuses_private_addresses_without_the_flag(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project)
    for url in (site.url("/plain"), "http://localhost:9/x", "http://[::1]/", "http://169.254.169.254/latest"):
        with pytest.raises(ToolError, match=r"refusing to (fetch|connect to) .*(loopback|link-local) address"):
            web_fetch(ctx, url)
    assert site.requests == []


def test_fetch_refuses_other_schemes_also_after_redirects(site: WebServer, wctx: ToolContext) -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/file.txt", "/etc/passwd"):
        with pytest.raises(ToolError, match="only http and https"):
            web_fetch(wctx, url)
    # Every redirect hop is vetted, so a page cannot bounce the fetcher to a local file.
    with pytest.raises(ToolError, match="only http and https"):
        web_fetch(wctx, site.url("/redirect?to=file:///etc/passwd"))
    followed = _body(web_fetch(wctx, site.url("/redirect?to=/plain")))
    assert followed[0] == f"URL: {site.url('/plain')}"  # the header names where the text really came from
    assert followed[2] == "1: First line of notes."


def test_fetch_offline_makes_no_request(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project, offline=True, env={"TONGYI_ALLOW_PRIVATE_URLS": "1"})
    result = web_fetch(ctx, site.url("/article"))
    assert not result.ok and "network tools are off" in result.output
    search = web_search(ctx, "tides")
    assert not search.ok and "network tools are off" in search.output
    assert site.requests == []


def test_fetch_pdf_is_cached_as_a_handle_for_the_pdf_tools(site: WebServer, wctx: ToolContext) -> None:
    result = web_fetch(wctx, site.url("/paper.pdf"))
    assert is_untrusted(result)
    handle = next(word.strip("'.,") for word in result.output.split() if word.startswith("cache:web/"))
    assert handle.endswith(".pdf")
    text = pdf_text(wctx, handle)
    assert "Tidal turbines paper" in text.output and is_untrusted(text)
    assert text.sources[0] == SourceRef(path=f"{handle}#page=1", line=1, text="Tidal turbines paper")
    web_fetch(wctx, site.url("/paper.pdf"))
    assert site.count("/paper.pdf") == 1  # the second fetch is served from the cache


def test_page_text_cannot_close_the_untrusted_block(site: WebServer, wctx: ToolContext) -> None:
    result = web_fetch(wctx, site.url("/injection"))
    assert result.output.count(UNTRUSTED_END) == 1
    assert result.output.endswith(UNTRUSTED_END)
    assert "Ignore all previous instructions" in result.output  # kept as data, inside the block


# -- web_search -------------------------------------------------------------------------------------


def test_engine_selection_order() -> None:
    assert choose_engine({}) == "ddgs"
    assert choose_engine({"TAVILY_API_KEY": "t"}) == "tavily"
    assert choose_engine({"TAVILY_API_KEY": "t", "BRAVE_API_KEY": "b"}) == "brave"
    assert choose_engine({"TAVILY_API_KEY": "t", "BRAVE_API_KEY": "b", "TONGYI_SEARXNG_URL": "http://s"}) == "searxng"
    assert choose_engine({"BRAVE_API_KEY": "b", "TONGYI_SEARCH_ENGINE": "DDGS"}) == "ddgs"
    with pytest.raises(ToolError, match="not one of"):
        choose_engine({"TONGYI_SEARCH_ENGINE": "altavista"})


def _assert_results(result: ToolResult, engine: str, count: int) -> None:
    body = _body(result)
    assert body[0] == f'Search results for "tidal power" (engine: {engine}):'
    assert body[1:3] == ["1. Tidal power - Wikipedia", "   URL: https://en.wikipedia.org/wiki/Tidal_power"]
    assert len(result.sources) == count
    assert result.sources[1] == SourceRef(path="https://example.org/pentland",
                                          text="Four turbines in the Pentland Firth produced 45 GWh.")
    assert result.untrusted


def test_search_searxng(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project, env={"TONGYI_SEARXNG_URL": site.url("/"), "BRAVE_API_KEY": "ignored"})
    _assert_results(web_search(ctx, "tidal power", max_results=2), "searxng", 2)
    assert site.paths() == ["/search?q=tidal+power&format=json"]


def test_search_brave(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project, env={"BRAVE_API_KEY": "brave-test", "TONGYI_BRAVE_URL": site.base_url})
    _assert_results(web_search(ctx, "tidal power", max_results=3), "brave", 3)
    request = site.requests[0]
    assert request.path == "/res/v1/web/search?q=tidal+power&count=3"
    assert request.headers["x-subscription-token"] == "brave-test"

    bad = ToolContext(root=project, env={"BRAVE_API_KEY": "wrong", "TONGYI_BRAVE_URL": site.base_url})
    with pytest.raises(ToolError, match="brave: HTTP 422"):
        web_search(bad, "tidal power")


def test_search_tavily(site: WebServer, project: Path) -> None:
    ctx = ToolContext(root=project, env={"TAVILY_API_KEY": "tvly-test", "TONGYI_TAVILY_URL": site.base_url})
    _assert_results(web_search(ctx, "tidal power", max_results=2), "tavily", 2)
    request = site.requests[0]
    assert (request.method, request.path) == ("POST", "/search")
    assert json.loads(request.body) == {"query": "tidal power", "max_results": 2}
    assert request.headers["authorization"] == "Bearer tvly-test"

    bad = ToolContext(root=project, env={"TAVILY_API_KEY": "nope", "TONGYI_TAVILY_URL": site.base_url})
    with pytest.raises(ToolError, match="tavily: HTTP 401"):
        web_search(bad, "tidal power")


class FakeDDGS:
    """Stands in for ddgs.DDGS: records calls, returns rows shaped like ddgs' text results."""

    calls: ClassVar[list[tuple[str, int | None]]] = []
    fail: ClassVar[bool] = False

    def __init__(self, proxy: str | None = None, timeout: int | None = 5) -> None:
        self.timeout = timeout

    def text(self, query: str, max_results: int | None = 10, **kwargs: Any) -> list[dict[str, str]]:
        FakeDDGS.calls.append((query, max_results))
        if FakeDDGS.fail:
            from ddgs.exceptions import RatelimitException

            raise RatelimitException("202 Ratelimit")
        rows = [{"title": "Tidal power - Wikipedia", "href": "https://en.wikipedia.org/wiki/Tidal_power",
                 "body": "Tidal power or tidal energy is harnessed by converting energy from tides."},
                {"title": "Pentland  Firth\nturbines", "href": "https://example.org/pentland",
                 "body": "Four turbines in the Pentland Firth produced 45 GWh."},
                {"title": "No URL", "href": "", "body": "dropped"}]
        return rows[: max_results or 10]


def test_search_ddgs_by_default(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ddgs.DDGS", FakeDDGS)  # web.py imports it when it searches
    monkeypatch.setattr(FakeDDGS, "calls", [])
    monkeypatch.setattr(FakeDDGS, "fail", False)
    ctx = ToolContext(root=project)
    _assert_results(web_search(ctx, "tidal power", max_results=50), "ddgs", 2)
    assert FakeDDGS.calls == [("tidal power", 20)]  # clamped to MAX_SEARCH_RESULTS
    assert "2. Pentland Firth turbines" in web_search(ctx, "tidal power", max_results=2).output

    FakeDDGS.fail = True
    with pytest.raises(http.ServiceError, match="ddgs: search failed"):
        web_search(ctx, "tidal power")
    with pytest.raises(ToolError, match="must not be empty"):
        web_search(ctx, "   ")


def test_tool_schemas() -> None:
    fetch = Tool.from_function(web_fetch).parameters
    assert fetch["required"] == ["url"] and fetch["properties"]["max_chars"]["default"] == 8000
    search = Tool.from_function(web_search).parameters
    assert search["properties"]["max_results"]["type"] == "integer"
