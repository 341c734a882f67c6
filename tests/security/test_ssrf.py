"""SSRF: a model-chosen URL must never reach a private address, however it is dressed up.

`victim` is a loopback server standing for an intranet page or a cloud metadata service; each test
asserts it received nothing. Public hosts are simulated with a fake resolver (FakeDNS) whose public
addresses are routed to `public_site`, another loopback server: so a test that expects the public
request to happen checks that it really arrived there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.scholarly_server import Reply, ScholarlyServer, fast_http_policies
from tests.security.conftest import FakeDNS, RecordingServer
from tongyi_agent.tools.base import ToolContext, ToolError
from tongyi_agent.tools.http import reset_clients
from tongyi_agent.tools.netguard import refusal
from tongyi_agent.tools.papers import fetch_paper
from tongyi_agent.tools.web import web_fetch

PUBLIC_IP = "93.184.216.34"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """Pooled connections must not carry over between tests (each test's fakes have new ports)."""
    reset_clients()
    fast_http_policies()
    yield
    reset_clients()


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path, cache_dir=tmp_path / "cache")


def _route_public(fake_dns: FakeDNS, public_site: RecordingServer) -> None:
    fake_dns.routes[PUBLIC_IP] = public_site.port


# -- fetch_paper --------------------------------------------------------------------------------------


def test_fetch_paper_refuses_a_loopback_url(ctx: ToolContext, victim: RecordingServer) -> None:
    result = fetch_paper(ctx, victim.url("/paper.pdf"))
    assert not result.ok and "loopback" in result.output
    assert victim.requests == []


def test_fetch_paper_refuses_a_redirect_to_a_private_address(ctx: ToolContext, fake_dns: FakeDNS,
                                                           public_site: RecordingServer,
                                                           victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["papers.example"] = [[PUBLIC_IP]]
    result = fetch_paper(ctx, f"http://papers.example:{victim.port}/redirect?to={victim.url('/x.pdf')}")
    assert [r.path for r in public_site.requests] == [f"/redirect?to={victim.url('/x.pdf')}"]
    assert victim.requests == []
    assert not result.ok and "loopback" in result.output


def test_fetch_paper_rebinding_connects_only_to_the_checked_address(ctx: ToolContext, fake_dns: FakeDNS,
                                                                   public_site: RecordingServer,
                                                                   victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["rebind.example"] = [[PUBLIC_IP], ["127.0.0.1"]]  # public for the check, then loopback
    fetch_paper(ctx, f"http://rebind.example:{victim.port}/paper.pdf")
    assert victim.requests == []
    assert [r.path for r in public_site.requests] == ["/paper.pdf"]
    assert fake_dns.lookups.count("rebind.example") == 1  # resolved once: that answer is the one used


def test_fetch_paper_refuses_a_private_pdf_link_from_a_service(ctx: ToolContext, scholarly_server: ScholarlyServer,
                                                             victim: RecordingServer, tmp_path: Path) -> None:
    """A DOI resolves through Semantic Scholar (the user's configured service, allowed); the PDF link it
    returns is just another untrusted URL."""
    scholarly_server.route("/s2/graph/v1/paper/DOI:10.1234/evil",
                           Reply(body={"openAccessPdf": {"url": victim.url("/a.pdf")}}))
    ctx = ToolContext(root=tmp_path, cache_dir=tmp_path / "cache", env=scholarly_server.env())
    result = fetch_paper(ctx, "10.1234/evil")
    assert not result.ok and "loopback" in result.output
    assert victim.requests == []


# -- web_fetch ----------------------------------------------------------------------------------------


def test_web_fetch_refuses_a_redirect_to_a_private_address(ctx: ToolContext, fake_dns: FakeDNS,
                                                          public_site: RecordingServer,
                                                          victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["blog.example"] = [[PUBLIC_IP]]
    with pytest.raises(ToolError, match="loopback"):
        web_fetch(ctx, f"http://blog.example:{victim.port}/redirect?to={victim.url('/admin')}")
    assert len(public_site.requests) == 1 and victim.requests == []


def test_web_fetch_refuses_a_redirect_to_a_name_that_resolves_private(ctx: ToolContext, fake_dns: FakeDNS,
                                                                     public_site: RecordingServer,
                                                                     victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["blog.example"] = [[PUBLIC_IP]]
    fake_dns.answers["metadata.internal"] = [["169.254.169.254"]]
    with pytest.raises(ToolError, match="link-local"):
        web_fetch(ctx, f"http://blog.example:{victim.port}/redirect?to=http://metadata.internal/latest/meta-data")
    assert victim.requests == []


def test_web_fetch_rebinding_connects_only_to_the_checked_address(ctx: ToolContext, fake_dns: FakeDNS,
                                                                 public_site: RecordingServer,
                                                                 victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["rebind.example"] = [[PUBLIC_IP], ["127.0.0.1"]]
    result = web_fetch(ctx, f"http://rebind.example:{victim.port}/page")
    assert victim.requests == []
    assert [r.path for r in public_site.requests] == ["/page"]
    assert "internal secret page" in result.output  # what the public site served
    assert public_site.requests[0].headers["host"] == f"rebind.example:{victim.port}"  # Host header kept


def test_web_fetch_refuses_mixed_public_and_private_answers(ctx: ToolContext, fake_dns: FakeDNS,
                                                           public_site: RecordingServer,
                                                           victim: RecordingServer) -> None:
    _route_public(fake_dns, public_site)
    fake_dns.answers["both.example"] = [[PUBLIC_IP, "127.0.0.1"]]
    with pytest.raises(ToolError, match="loopback"):
        web_fetch(ctx, f"http://both.example:{victim.port}/")
    assert victim.requests == [] and public_site.requests == []


@pytest.mark.parametrize("address,why", [
    ("64:ff9b::7f00:1", "carrying 127.0.0.1"),  # NAT64 of loopback
    ("64:ff9b::a9fe:a9fe", "carrying 169.254.169.254"),  # NAT64 of the metadata service
    ("::ffff:127.0.0.1", "carrying 127.0.0.1"),  # IPv4-mapped
    ("::ffff:10.0.0.5", "carrying 10.0.0.5"),
    ("2002:7f00:1::", "carrying 127.0.0.1"),  # 6to4 of loopback
    ("64:ff9b:1::1", "local-use NAT64"),
    ("fd00::1", "private"),
    ("::", "not a unicast"),
])
def test_web_fetch_refuses_translated_and_private_ipv6_from_dns(ctx: ToolContext, fake_dns: FakeDNS,
                                                               address: str, why: str) -> None:
    fake_dns.answers["v6.example"] = [[address]]
    with pytest.raises(ToolError, match=why):
        web_fetch(ctx, "http://v6.example/")


@pytest.mark.parametrize("url", [
    "http://[64:ff9b::7f00:1]:{port}/", "http://[::ffff:127.0.0.1]:{port}/", "http://[::ffff:7f00:1]:{port}/",
    "http://0.0.0.0:{port}/", "http://2130706433:{port}/", "http://127.1:{port}/", "http://localhost:{port}/",
])
def test_web_fetch_refuses_disguised_loopback_literals(ctx: ToolContext, victim: RecordingServer, url: str) -> None:
    with pytest.raises(ToolError, match="refusing"):
        web_fetch(ctx, url.format(port=victim.port))
    assert victim.requests == []


def test_a_configured_service_origin_cannot_redirect_elsewhere(scholarly_server: ScholarlyServer,
                                                              victim: RecordingServer, tmp_path: Path) -> None:
    """The user's Semantic Scholar URL may be on 127.0.0.1; a redirect from it to another private port may not."""
    for path, target in (("/s2/graph/v1/paper/DOI:10.1234/hop", "/s"), ("/openalex/works/doi:10.1234/hop", "/o")):
        scholarly_server.route(path, Reply(status=302, headers={"Location": victim.url(target)}))
    ctx = ToolContext(root=tmp_path, cache_dir=tmp_path / "cache", env=scholarly_server.env())
    with pytest.raises(ToolError, match="loopback"):
        fetch_paper(ctx, "10.1234/hop")
    assert victim.requests == []


def test_allow_private_urls_from_the_environment_still_works(victim: RecordingServer, tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, env={"TONGYI_ALLOW_PRIVATE_URLS": "1"})
    assert "internal secret page" in web_fetch(ctx, victim.url("/intranet")).output
    assert [r.path for r in victim.requests] == ["/intranet"]


def test_public_addresses_pass_the_check() -> None:
    import ipaddress

    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"):
        assert refusal(ipaddress.ip_address(address)) is None, address
