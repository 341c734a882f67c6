"""What the loopback fakes share.

`LoopbackFake`: the threaded-server lifecycle (start on an ephemeral port of 127.0.0.1, serve from a daemon
thread, close cutting delayed replies short, use as a context manager). `ScriptedFake` and `JSONHandler`:
the scripted-reply queue, request recording and JSON replies of the fakes that stand in for model APIs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck in a delay must never block interpreter exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that disconnect mid-reply are expected in time-out tests


class LoopbackFake:
    """Start with `start()` or `with Fake(...) as server:`. Subclasses build their server in `_make_server`
    and pass the Event their handlers wait on, which `close()` sets so that delayed replies end at once."""

    _thread_name = "fake-http"

    def __init__(self, closing: threading.Event) -> None:
        self._closing_event = closing
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        """A server bound to ``("127.0.0.1", 0)`` with whatever state its handler reads attached."""
        raise NotImplementedError

    @property
    def _root_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        httpd = self._make_server()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self._thread_name, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is None:
            return
        self._closing_event.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- scripted JSON APIs (the OpenAI and Anthropic fakes) -------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None for GET / undecodable bodies


@dataclass
class Script:
    """State the handler threads and the test thread share, guarded by `lock`."""

    replies: list[Any] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)


class ScriptedServer(QuietServer):
    shared: Script


class JSONHandler(BaseHTTPRequestHandler):
    """Request recording, JSON replies and the scripted-reply queue; subclasses route and validate."""

    server: ScriptedServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _extra_headers(self) -> dict[str, str]:
        """Headers every JSON reply carries, sent before the reply's own."""
        return {}

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers)

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        """A body sent exactly as given, labelled JSON (also for bodies that are not: malformed-reply tests)."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in [*self._extra_headers().items(), *(headers or {}).items()]:
                self.send_header(name, str(value))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out tests); nothing to report

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _record(self, body: Any) -> dict[str, str]:
        headers = {k.lower(): v for k, v in self.headers.items()}
        shared = self.server.shared
        with shared.lock:
            shared.requests.append(RecordedRequest(self.command, self.path, headers, body))
        return headers

    def _next_reply(self, body: Any, out_of_replies: Any) -> tuple[dict[str, Any], int] | None:
        """The next scripted reply and its serial number; None when it has been answered already (the
        script ran out: HTTP 500 with `out_of_replies`) or the server closed during the reply's delay."""
        shared = self.server.shared
        with shared.lock:
            scripted = shared.replies.pop(0) if shared.replies else None
            shared.served += 1
            serial = shared.served
        if scripted is None:
            self._send_json(500, out_of_replies)
            return None
        reply = scripted(body) if callable(scripted) else scripted
        delay = float(reply.get("delay", 0))
        # An Event wait, not time.sleep, so closing the server cuts a delayed reply short.
        if delay and shared.closing.wait(delay):
            return None
        return reply, serial


class ScriptedFake(LoopbackFake):
    """A fake API that answers from a script of replies; see each fake's docstring for the reply shapes."""

    def __init__(
        self, shared: Script, handler: type[JSONHandler], server: type[ScriptedServer] = ScriptedServer
    ) -> None:
        self._shared = shared
        self._handler = handler
        self._server_class = server
        super().__init__(shared.closing)

    def _make_server(self) -> ScriptedServer:
        httpd = self._server_class(("127.0.0.1", 0), self._handler)
        httpd.shared = self._shared
        return httpd

    def add(self, *replies: Any) -> None:
        """Append replies to the script."""
        with self._shared.lock:
            self._shared.replies.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._shared.lock:
            return list(self._shared.requests)

    @property
    def remaining(self) -> int:
        with self._shared.lock:
            return len(self._shared.replies)
