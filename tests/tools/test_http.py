"""The shared HTTP layer against a real loopback server: retries, Retry-After, breaker, limiter, time-outs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.fakes.scholarly_server import Reply, ScholarlyServer
from tongyi_agent.tools import http
from tongyi_agent.tools.base import ToolContext, ToolError
from tongyi_agent.tools.http import CircuitOpen, NetworkUnavailable, ServiceClient, ServiceError, ServicePolicy

FAST = ServicePolicy(min_interval=0.0, timeout=2.0, connect_timeout=1.0, retries=2, backoff=0.01,
                     max_backoff=0.05, max_retry_after=1.0, failure_threshold=5, cooldown=0.3, budget=5.0)

# Arrival times are stamped by the server, after the request crossed the loopback; the first of two
# requests can take a fraction of a millisecond longer to arrive than the second, so spacing is
# checked with this much slack (the limiter itself spaces request starts by the full interval).
ARRIVAL_SLACK = 0.01


@pytest.fixture
def clients() -> Iterator[list[ServiceClient]]:
    made: list[ServiceClient] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def make_client(scholarly_server: ScholarlyServer,
                clients: list[ServiceClient]) -> Callable[..., ServiceClient]:
    """ServiceClients pointed at the fake, with FAST's policy plus `changes`."""

    def make(**changes: object) -> ServiceClient:
        client = ServiceClient("testsvc", scholarly_server.base_url, replace(FAST, **changes))  # type: ignore[arg-type]
        clients.append(client)
        return client

    return make


def test_returns_json_response(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(body={"hello": "world"}))
    response = make_client().get("/t", {"q": "x y"})
    assert response.status_code == 200
    assert response.json() == {"hello": "world"}
    assert scholarly_server.requests_to("/t")[0].param("q") == "x y"


def test_retries_500_then_succeeds(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=500), Reply(status=503), Reply(body={"ok": True}))
    response = make_client().get("/t")
    assert response.json() == {"ok": True}
    assert len(scholarly_server.requests_to("/t")) == 3


def test_gives_up_after_retries_with_named_error(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=500))
    with pytest.raises(ServiceError, match=r"^testsvc: HTTP 500 after 3 tries$") as info:
        make_client().get("/t")
    assert info.value.status == 500
    assert len(scholarly_server.requests_to("/t")) == 3


def test_client_error_is_an_answer_not_retried(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=404, body={"error": "Paper not found"}))
    client = make_client(failure_threshold=1)
    assert client.get("/t").status_code == 404
    assert len(scholarly_server.requests_to("/t")) == 1
    assert client.breaker.state == "closed"  # a 404 says nothing about the service's health


def test_429_waits_for_retry_after(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=429, headers={"Retry-After": "0.3"}), Reply(body={"ok": 1}))
    assert make_client().get("/t").json() == {"ok": 1}
    first, second = scholarly_server.requests_to("/t")
    assert second.at - first.at >= 0.3 - ARRIVAL_SLACK


def test_429_with_long_retry_after_fails_at_once(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=429, headers={"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(ServiceError, match="asks to wait 120 s"):
        make_client(max_retry_after=1.0).get("/t")
    assert time.monotonic() - started < 1.0
    assert len(scholarly_server.requests_to("/t")) == 1


def test_retry_after_parses_seconds_and_dates() -> None:
    assert http._retry_after("2") == 2.0
    assert http._retry_after("garbage") is None
    assert http._retry_after(None) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (http._retry_after(later) or 0) <= 31
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert http._retry_after(earlier) == 0.0


def test_timeout_is_reported_fast_and_not_retried(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/slow", Reply(body={"late": True}, delay=3.0))
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"testsvc: timed out after 0.3 s"):
        make_client(timeout=0.3).get("/slow")
    assert time.monotonic() - started < 2.0
    assert len(scholarly_server.requests_to("/slow")) == 1


def test_connection_refused_is_retried_then_reported(clients: list[ServiceClient]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ServiceClient("nowhere", f"http://127.0.0.1:{port}", FAST)
    clients.append(client)
    with pytest.raises(ServiceError, match=r"nowhere: could not connect \(ConnectError\) after 3 tries"):
        client.get("/x")


def test_breaker_opens_then_half_opens(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=500))
    client = make_client(retries=0, failure_threshold=2, cooldown=0.3)
    for _ in range(2):
        with pytest.raises(ServiceError, match="HTTP 500 after 1 try"):
            client.get("/t")
    assert client.breaker.state == "open"
    with pytest.raises(CircuitOpen, match="testsvc: circuit open after 2 consecutive failures"):
        client.get("/t")
    assert len(scholarly_server.requests_to("/t")) == 2  # the refused call sent nothing

    time.sleep(0.35)
    assert client.breaker.state == "half-open"
    scholarly_server.route("/t", Reply(body={"back": True}))
    assert client.get("/t").json() == {"back": True}
    assert client.breaker.state == "closed"
    assert client.breaker.failures == 0


def test_failed_half_open_trial_reopens(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/t", Reply(status=502))
    client = make_client(retries=0, failure_threshold=1, cooldown=0.2)
    with pytest.raises(ServiceError):
        client.get("/t")
    time.sleep(0.25)
    with pytest.raises(ServiceError, match="HTTP 502"):  # the one trial call goes through and fails
        client.get("/t")
    with pytest.raises(CircuitOpen):
        client.get("/t")
    assert len(scholarly_server.requests_to("/t")) == 2


def test_breaker_lets_one_trial_through_while_half_open() -> None:
    now = [0.0]
    breaker = http.CircuitBreaker(threshold=1, cooldown=10.0, clock=lambda: now[0])
    breaker.record_failure()
    with pytest.raises(CircuitOpen):
        breaker.before_call("svc")
    now[0] = 10.0
    breaker.before_call("svc")  # the trial
    with pytest.raises(CircuitOpen):  # a concurrent second caller is refused until the trial ends
        breaker.before_call("svc")
    breaker.record_success()
    breaker.before_call("svc")
    assert breaker.state == "closed"


def test_rate_limiter_spaces_requests(scholarly_server: ScholarlyServer, make_client,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The limiter spaces request starts. Arrival stamps cannot show that on a loaded machine: the
    # first request also opens the connection, so it may arrive later than its start by more than
    # the second does. So the clock stands still and sleeping is recorded, while every request still
    # crosses the loopback to the real server.
    scholarly_server.route("/t", Reply(body={}))
    client = make_client(min_interval=0.2)
    assert client.limiter.min_interval == 0.2
    slept: list[float] = []
    monkeypatch.setattr(http.time, "sleep", slept.append)
    client.limiter = http.RateLimiter(client.limiter.min_interval, clock=lambda: 100.0)
    for _ in range(3):
        client.get("/t")
    assert len(scholarly_server.requests_to("/t")) == 3
    assert slept == pytest.approx([0.2, 0.4])  # slots at 100.0, 100.2 and 100.4


def test_rate_limiter_spaces_concurrent_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Callers that arrive together each reserve their own slot, min_interval apart. The clock stands
    # still and sleeping is recorded, so scheduling delays on a loaded machine cannot blur the slots.
    slept: list[float] = []
    lock = threading.Lock()

    def record_sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    monkeypatch.setattr(http.time, "sleep", record_sleep)
    limiter = http.RateLimiter(0.1, clock=lambda: 100.0)
    waits: list[float] = []

    def call() -> None:
        wait = limiter.acquire()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert sorted(slept) == pytest.approx([0.1, 0.2, 0.3])


def test_size_cap(scholarly_server: ScholarlyServer, make_client) -> None:
    scholarly_server.route("/big", Reply(body=b"x" * 5000))
    with pytest.raises(ToolError, match="over the"):
        make_client().get("/big", max_bytes=1000)


def test_offline_raises_network_unavailable(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path, offline=True)
    with pytest.raises(NetworkUnavailable, match=r"network tools are off \(--offline\)"):
        http.client_for(ctx, "crossref")


def test_registry_urls_headers_and_reuse(scholarly_server: ScholarlyServer, tmp_path: Path) -> None:
    env = scholarly_server.env(TONGYI_MAILTO="me@example.org", SEMANTIC_SCHOLAR_API_KEY="s3cret")
    ctx = ToolContext(root=tmp_path, env=env)
    s2 = http.client_for(ctx, "semantic_scholar")
    assert http.client_for(ctx, "semantic_scholar") is s2  # limits persist across calls
    assert s2.base_url == scholarly_server.base_url + "/s2"
    scholarly_server.route("/s2/ping", Reply(body={}))
    scholarly_server.route("/crossref/ping", Reply(body={}))
    s2.get("/ping")
    http.client_for(ctx, "crossref").get("/ping")
    s2_req = scholarly_server.requests_to("/s2/ping")[0]
    cr_req = scholarly_server.requests_to("/crossref/ping")[0]
    assert s2_req.headers["x-api-key"] == "s3cret"
    assert "x-api-key" not in cr_req.headers  # the key goes to Semantic Scholar only
    assert cr_req.headers["user-agent"] == f"tongyi-agent/{http.__version__} (mailto:me@example.org)"

    moved = ToolContext(root=tmp_path, env={**env, "TONGYI_S2_URL": "http://127.0.0.1:9/s2"})
    assert http.client_for(moved, "semantic_scholar") is not s2


def test_default_base_urls_and_plain_user_agent(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path)
    assert http.base_url(ctx, "semantic_scholar") == "https://api.semanticscholar.org"
    assert http.base_url(ctx, "arxiv") == "https://export.arxiv.org"
    assert http.user_agent(ctx) == f"tongyi-agent/{http.__version__}"


def test_reset_clients_restores_default_policies() -> None:
    http.set_policy("arxiv", min_interval=0.0)
    assert http._policies["arxiv"].min_interval == 0.0
    http.reset_clients()
    assert http._policies["arxiv"] == http.DEFAULT_POLICIES["arxiv"]
    assert http.DEFAULT_POLICIES["arxiv"].min_interval >= 3.0  # arXiv's published request spacing


def test_keys_never_logged(scholarly_server: ScholarlyServer, tmp_path: Path,
                           caplog: pytest.LogCaptureFixture) -> None:
    ctx = ToolContext(root=tmp_path, env=scholarly_server.env(SEMANTIC_SCHOLAR_API_KEY="s3cret-key"))
    scholarly_server.route("/s2/t", Reply(status=500))
    client = http.client_for(ctx, "semantic_scholar")
    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceError) as info:
        client.get("/t")
    assert "retrying" in caplog.text
    for text in (caplog.text, str(info.value), repr(client)):
        assert "s3cret-key" not in text
