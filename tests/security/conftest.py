"""Shared pieces of the attack suite: a fake resolver at the network edge, a recording HTTP server,
and the real CLI in a subprocess (so what a user sees on stderr is what the test sees)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import tongyi_agent

SRC = Path(tongyi_agent.__file__).resolve().parents[1]


@dataclass
class FakeDNS:
    """`socket.getaddrinfo` for made-up names, as a hostile DNS server would answer.

    `answers[name]` is a list of successive answers (each a list of IP strings); the last one repeats.
    `routes[ip]` says which local port stands in for a public address on the internet, so a
    connection to that address really reaches a loopback server. Everything else resolves for real.
    """

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def getaddrinfo(self, real: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.routes:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", self.routes[name]))]
        if name in self.answers:
            queue = self.answers[name]
            ips = queue.pop(0) if len(queue) > 1 else queue[0]
            out = []
            for ip in ips:
                if ipaddress.ip_address(ip).version == 6:
                    address: tuple[Any, ...] = (ip, int(port or 0), 0, 0)
                    out.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address))
                else:
                    out.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port or 0))))
            return out
        return real(host, port, *args, **kwargs)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: dns.getaddrinfo(real, *a, **k))
    return dns


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class RecordingServer:
    """A loopback HTTP server that records every request (headers included) and answers 200 text (its
    `pages`, or a fixed line), or a redirect for `/redirect?to=URL`. It stands for whatever an attacker
    wants reached, or serves a hostile page."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.pages: dict[str, str] = {}  # path (with query) -> text/plain body served there
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                server.requests.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"%PDF-1.4 stolen\n" if self.path.endswith(".pdf") else b"internal secret page\n"
                if self.path in server.pages:
                    body = server.pages[self.path].encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf" if self.path.endswith(".pdf") else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def victim() -> Iterator[RecordingServer]:
    """A private service (an intranet page, a metadata endpoint, an attacker's collector)."""
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture
def public_site() -> Iterator[RecordingServer]:
    """What a public host on the internet answers (reached through FakeDNS.routes)."""
    server = RecordingServer()
    yield server
    server.close()


def run_cli(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            stdin: bytes | None = None, module: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """`python -m tongyi_agent ARGS` as a user runs it, with this checkout's package first on the path.

    Args may be bytes (a non-UTF-8 argument). The user config dir is the test's isolated one."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "400", **(env or {})}
    command = [sys.executable, "-m", "tongyi_agent", *args] if module else args
    return subprocess.run(command, cwd=cwd, env=full_env, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout, check=False)


def one_line_error(done: subprocess.CompletedProcess[bytes]) -> str:
    """The stderr of a failed run, asserted to be exactly one line and no traceback."""
    text = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]
