"""A loopback server that answers like Semantic Scholar, Crossref, arXiv and OpenAlex, for tests.

It is a real HTTP server on 127.0.0.1 (ephemeral port, one thread per connection) so the whole
network stack (httpx, time-outs, retries, Retry-After, redirects) runs as it does against the real
services. Each service lives under its own path prefix, because Crossref and OpenAlex both serve
`/works`; `server.env()` gives the `TONGYI_*_URL` settings pointing at those prefixes.

Routes are scripted by exact path (query ignored): `server.route(path, *replies)` queues replies
that are served in order, the last one repeating. By default the search endpoints replay the
recorded-format samples in tests/fakes/data/ and `/files/paper.pdf` serves `minimal_pdf()`.
Every request is recorded with its path, parsed query, headers and arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.fakes.http_fixture import LoopbackFake, QuietServer
from tongyi_agent.tools import http

DATA = Path(__file__).parent / "data"

PREFIXES = {"semantic_scholar": "/s2", "crossref": "/crossref", "arxiv": "/arxiv", "openalex": "/openalex"}
ENV_NAMES = {service: env for service, (env, _) in http.BASE_URLS.items()}

S2_SEARCH = "/s2/graph/v1/paper/search"
CROSSREF_WORKS = "/crossref/works"
ARXIV_QUERY = "/arxiv/api/query"
OPENALEX_WORKS = "/openalex/works"
PDF_PATH = "/files/paper.pdf"


def minimal_pdf(text: str = "Hello from the fake scholarly server") -> bytes:
    """A valid one-page PDF with one line of text, built by hand (xref offsets computed)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@dataclass
class Reply:
    """One scripted answer. A dict/list body is sent as JSON; `delay` holds the answer back."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return self.body, self.content_type or "application/octet-stream"


def sample(name: str) -> Any:
    """A recorded-format sample from tests/fakes/data: parsed JSON, or the XML text."""
    text = (DATA / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


def default_routes() -> dict[str, list[Reply]]:
    return {
        S2_SEARCH: [Reply(body=sample("s2_search.json"))],
        CROSSREF_WORKS: [Reply(body=sample("crossref_works.json"))],
        ARXIV_QUERY: [Reply(body=sample("arxiv_query.xml"), content_type="application/atom+xml; charset=utf-8")],
        OPENALEX_WORKS: [Reply(body=sample("openalex_works.json"))],
        PDF_PATH: [Reply(body=minimal_pdf(), content_type="application/pdf")],
    }


@dataclass
class RecordedRequest:
    path: str  # percent-decoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() on arrival

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        owner._record(RecordedRequest(path=path, query=parse_qs(parts.query),
                                      headers={k.lower(): v for k, v in self.headers.items()},
                                      at=time.monotonic()))
        reply = owner._next_reply(path)
        # An Event wait, not time.sleep, so closing the server cuts a delayed reply short.
        if reply.delay and owner._closing.wait(reply.delay):
            return
        body, ctype = reply.encoded()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left


class _Server(QuietServer):
    owner: ScholarlyServer


class ScholarlyServer(LoopbackFake):
    """Start with `start()` or use as a context manager; see the module docstring for scripting."""

    _thread_name = "fake-scholarly"

    def __init__(self) -> None:
        self._routes = default_routes()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(self._closing)

    # -- scripting and inspection -------------------------------------------------------------------
    def route(self, path: str, *replies: Reply) -> None:
        """Replace a path's script; replies are served in order and the last one repeats."""
        if not replies:
            raise ValueError("route() needs at least one reply")
        with self._lock:
            self._routes[path] = list(replies)

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            queue = self._routes.get(path)
            if not queue:
                return Reply(status=404, body={"error": f"no route for {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def base_url(self) -> str:
        return self._root_url

    def url(self, path: str) -> str:
        return self.base_url + path

    def env(self, **extra: str) -> dict[str, str]:
        """`TONGYI_*_URL` settings pointing every service here, plus `extra`."""
        urls = {ENV_NAMES[service]: self.base_url + prefix for service, prefix in PREFIXES.items()}
        return {**urls, **extra}

    # -- lifecycle -----------------------------------------------------------------------------------
    def _make_server(self) -> _Server:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        return httpd


def fast_http_policies() -> None:
    """Policies for tests: no spacing, short waits and cooldowns, so scripted failures stay fast."""
    for service in http.DEFAULT_POLICIES:
        http.set_policy(service, min_interval=0.0, timeout=2.0, connect_timeout=1.0, backoff=0.01,
                        max_backoff=0.05, max_retry_after=1.0, cooldown=0.3, budget=5.0)


@pytest.fixture
def scholarly_server() -> Iterator[ScholarlyServer]:
    """A started fake with the recorded samples; HTTP clients and policies are reset around it
    (each fake has a new port, and breaker state must not leak from one test into the next)."""
    http.reset_clients()
    fast_http_policies()
    with ScholarlyServer() as server:
        yield server
    http.reset_clients()
