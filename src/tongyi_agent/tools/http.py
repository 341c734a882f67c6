"""The shared HTTP layer for network tools: rate limits, retries, time-outs and circuit breakers.

Every network tool goes through `client_for(ctx, service)`. Clients live in a module-level registry
keyed by service name, so the spacing between requests and the breaker state persist across tool
calls in one process (the agent may call `search_papers` ten times in a minute; Semantic Scholar
must still see one request per second). Failures come back as `ServiceError`s whose text is ready
to show the model ("crossref: HTTP 500 after 3 tries"); keys travel only in headers and are never
logged or put into messages.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from tongyi_agent import __version__
from tongyi_agent.tools.base import ToolContext, ToolError
from tongyi_agent.tools.netguard import AddressPolicy, checked_client, policy_for

log = logging.getLogger(__name__)

OFFLINE_MESSAGE = "network tools are off (--offline)"

# Service name -> (env var that overrides the base URL, real base URL). Tests point these at
# 127.0.0.1; a base URL may carry a path prefix (`http://127.0.0.1:5000/crossref`).
BASE_URLS: dict[str, tuple[str, str]] = {
    "semantic_scholar": ("TONGYI_S2_URL", "https://api.semanticscholar.org"),
    "crossref": ("TONGYI_CROSSREF_URL", "https://api.crossref.org"),
    "arxiv": ("TONGYI_ARXIV_URL", "https://export.arxiv.org"),
    "openalex": ("TONGYI_OPENALEX_URL", "https://api.openalex.org"),
}
# Search engines' base URLs (web.py reads them); their origins, like those above, are the user's choice.
ENGINE_URLS: dict[str, tuple[str, str]] = {
    "searxng": ("TONGYI_SEARXNG_URL", ""),
    "brave": ("TONGYI_BRAVE_URL", "https://api.search.brave.com"),
    "tavily": ("TONGYI_TAVILY_URL", "https://api.tavily.com"),
}


@dataclass(frozen=True)
class ServicePolicy:
    """How politely and how persistently one service is called.

    `retries` is the number of extra tries after the first; `budget` caps the whole call including
    waits, so a struggling service cannot eat the tool's own time limit (30 s in the registry).
    """

    min_interval: float = 0.0
    timeout: float = 10.0
    connect_timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 4.0
    max_retry_after: float = 5.0
    failure_threshold: int = 5
    cooldown: float = 60.0
    budget: float = 25.0


# Published limits: Semantic Scholar allows about 1 request/s per key (and throttles the shared
# key-less pool hard); arXiv asks for one request every 3 s; Crossref's and OpenAlex's polite pools
# allow ~10/s. Downloads go to many hosts, so they are only spaced lightly.
DEFAULT_POLICIES: dict[str, ServicePolicy] = {
    "semantic_scholar": ServicePolicy(min_interval=1.0),
    "crossref": ServicePolicy(min_interval=0.1),
    "arxiv": ServicePolicy(min_interval=3.0),
    "openalex": ServicePolicy(min_interval=0.1),
    "download": ServicePolicy(min_interval=0.2, timeout=20.0, retries=1),
}

_policies: dict[str, ServicePolicy] = dict(DEFAULT_POLICIES)


class NetworkUnavailable(ToolError):
    """The run is offline; network tools must say so instead of trying."""

    def __init__(self) -> None:
        super().__init__(OFFLINE_MESSAGE)


class ServiceError(ToolError):
    """A service could not answer. A ToolError so that, if a tool lets it escape, the registry still
    turns it into an observation; `str()` names the service first for per-service reports."""

    def __init__(self, service: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class CircuitOpen(ServiceError):
    """Raised without a request while a service's breaker is open."""


@dataclass
class Response:
    """A fully read response; the body is bytes so callers choose JSON, XML or a PDF."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str

    @property
    def text(self) -> str:
        charset = "utf-8"
        ctype = self.headers.get("content-type", "")
        if "charset=" in ctype:
            charset = ctype.split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class RateLimiter:
    """Keeps request starts at least `min_interval` apart, across threads.

    Each caller reserves the next free slot under the lock and sleeps outside it, so concurrent
    callers queue up in order instead of all waking at once."""

    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> float:
        """Wait for a slot; returns how long this caller waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.min_interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait


class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failed calls -> half-open after `cooldown`.

    Half-open lets exactly one trial call through; its success closes the breaker, its failure
    opens it for another cooldown. Calls refused meanwhile fail at once, costing no request."""

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def before_call(self, service: str) -> None:
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self._trial_running:
                self._trial_running = True
                return
            assert self._opened_at is not None
            left = max(0.0, self.cooldown - (self._clock() - self._opened_at))
            raise CircuitOpen(service, f"circuit open after {self.failures} consecutive failures; "
                                       f"not trying again for {left:.0f} s")

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial_running or self.failures >= self.threshold:
                self._opened_at = self._clock()
            self._trial_running = False

    def release(self) -> None:
        """End a call that neither succeeded nor failed (a 404): free the half-open trial slot."""
        with self._lock:
            self._trial_running = False


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


class ServiceClient:
    """One service: its base URL, default headers, limiter, breaker and connection pool."""

    def __init__(self, name: str, base_url: str, policy: ServicePolicy | None = None, *,
                 headers: Mapping[str, str] | None = None, addresses: AddressPolicy | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.policy = policy or _policies.get(name, ServicePolicy())
        self.limiter = RateLimiter(self.policy.min_interval)
        self.breaker = CircuitBreaker(self.policy.failure_threshold, self.policy.cooldown)
        self._headers = dict(headers or {})
        # Every connection, redirect hops included, goes to an address checked by tools.netguard; the
        # client's own base URL is its creator's choice, so its origin is trusted unless told otherwise.
        self.addresses = addresses or policy_for({}, [self.base_url])
        timeout = httpx.Timeout(self.policy.timeout, connect=min(self.policy.connect_timeout, self.policy.timeout))
        self._http = checked_client(self.addresses, headers=self._headers, timeout=timeout, follow_redirects=True)

    def __repr__(self) -> str:
        # Deliberately without headers: they may hold an API key.
        return f"ServiceClient({self.name!r}, {self.base_url!r})"

    @property
    def http(self) -> httpx.Client:
        """The checked connection pool, for requests `get` cannot make (POST, redirects one hop at a time)."""
        return self._http

    def config_key(self) -> tuple[Any, ...]:
        return (self.base_url, tuple(sorted(self._headers.items())), self.policy, self.addresses)

    def close(self) -> None:
        self._http.close()

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None, *,
            headers: Mapping[str, str] | None = None, max_bytes: int | None = None) -> Response:
        """GET with rate limiting, retries and the breaker.

        Returns 2xx responses and client errors other than 429 (a 404 is an answer, not an
        outage); raises ServiceError for everything that stays transient after the retries."""
        self.breaker.before_call(self.name)
        try:
            response = self._get_with_retries(self.url(path_or_url), params, headers, max_bytes)
        except ServiceError:
            self.breaker.record_failure()
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return response

    def _get_with_retries(self, url: str, params: Mapping[str, Any] | None,
                          headers: Mapping[str, str] | None, max_bytes: int | None) -> Response:
        policy = self.policy
        started = time.monotonic()
        tries = policy.retries + 1
        problem = ""
        status: int | None = None
        for attempt in range(tries):
            self.limiter.acquire()
            retry_after: float | None = None
            try:
                response = self._send(url, params, headers, max_bytes)
            except httpx.TimeoutException as exc:
                # A read time-out is not retried: a server that is this slow now will be slow on the
                # next try too, and three waits would exceed the tool's own time limit.
                if not isinstance(exc, httpx.ConnectTimeout):
                    raise ServiceError(self.name, f"timed out after {policy.timeout:g} s") from None
                problem, status = "could not connect (time-out)", None
            except httpx.TransportError as exc:
                problem, status = f"could not connect ({type(exc).__name__})", None
            else:
                if not _is_transient(response.status_code):
                    return response
                status = response.status_code
                problem = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("retry-after"))
                if retry_after is not None and retry_after > policy.max_retry_after:
                    # Waiting that long would blow the tool's time limit; say so instead.
                    raise ServiceError(self.name, f"HTTP {status} (rate limited; the service asks to wait "
                                                  f"{retry_after:.0f} s)", status=status)
            if attempt == tries - 1:
                break
            wait = retry_after if retry_after is not None else min(policy.max_backoff, policy.backoff * 2**attempt)
            if time.monotonic() - started + wait > policy.budget:
                break
            log.info("%s: %s, retrying in %.2f s (try %d of %d)", self.name, problem, wait, attempt + 2, tries)
            time.sleep(wait)
        done = attempt + 1
        raise ServiceError(self.name, f"{problem} after {done} {'try' if done == 1 else 'tries'}", status=status)

    def _send(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
              max_bytes: int | None) -> Response:
        # params=None, not {}: an empty mapping would wipe the query string of a URL that has one.
        with self._http.stream("GET", url, params=dict(params) if params else None, headers=dict(headers or {})) as raw:
            declared = raw.headers.get("content-length", "")
            if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ToolError(f"{self.name}: response is {_size(int(declared))}, over the {_size(max_bytes)} limit")
            chunks: list[bytes] = []
            size = 0
            for chunk in raw.iter_bytes():
                size += len(chunk)
                # Servers may omit or understate Content-Length; count what actually arrives.
                if max_bytes is not None and size > max_bytes:
                    raise ToolError(f"{self.name}: response is over the {_size(max_bytes)} limit")
                chunks.append(chunk)
            return Response(raw.status_code, raw.headers, b"".join(chunks), str(raw.url))


# -- registry ---------------------------------------------------------------------------------------

_clients: dict[str, ServiceClient] = {}
_clients_lock = threading.Lock()


def base_url(ctx: ToolContext, service: str) -> str:
    env_name, default = {**BASE_URLS, **ENGINE_URLS}[service]
    return (ctx.env.get(env_name) or default).rstrip("/")


def address_policy(ctx: ToolContext, service: str) -> AddressPolicy:
    """Where `service`'s client may connect: public addresses, plus the service's own configured origin."""
    configured = [base_url(ctx, service)] if service in BASE_URLS or service in ENGINE_URLS else []
    return policy_for(ctx.env, configured)


def user_agent(ctx: ToolContext) -> str:
    mailto = ctx.env.get("TONGYI_MAILTO")
    return f"tongyi-agent/{__version__}" + (f" (mailto:{mailto})" if mailto else "")


def service_headers(ctx: ToolContext, service: str) -> dict[str, str]:
    headers = {"User-Agent": user_agent(ctx)}
    if service == "semantic_scholar" and ctx.env.get("SEMANTIC_SCHOLAR_API_KEY"):
        headers["x-api-key"] = ctx.env["SEMANTIC_SCHOLAR_API_KEY"]
    return headers


def client_for(ctx: ToolContext, service: str) -> ServiceClient:
    """The shared client for a service; raises NetworkUnavailable when the run is offline.

    A client is rebuilt (fresh limiter and breaker) only when its base URL, headers or policy change,
    which in practice means a test pointed it at another server."""
    if ctx.offline:
        raise NetworkUnavailable()
    url = base_url(ctx, service) if service in BASE_URLS else ""
    policy = _policies.get(service, ServicePolicy())
    headers = service_headers(ctx, service)
    addresses = address_policy(ctx, service)
    with _clients_lock:
        client = _clients.get(service)
        wanted = (url.rstrip("/"), tuple(sorted(headers.items())), policy, addresses)
        if client is None or client.config_key() != wanted:
            if client is not None:
                client.close()
            client = ServiceClient(service, url, policy, headers=headers, addresses=addresses)
            _clients[service] = client
        return client


def set_policy(service: str, **changes: Any) -> ServicePolicy:
    """Change one service's policy for this process (tests use tiny intervals and cooldowns)."""
    with _clients_lock:
        _policies[service] = replace(_policies.get(service, ServicePolicy()), **changes)
        return _policies[service]


def reset_clients() -> None:
    """Close all clients and restore the default policies (test isolation)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _policies.clear()
        _policies.update(DEFAULT_POLICIES)


__all__ = [
    "BASE_URLS",
    "DEFAULT_POLICIES",
    "ENGINE_URLS",
    "OFFLINE_MESSAGE",
    "CircuitBreaker",
    "CircuitOpen",
    "NetworkUnavailable",
    "RateLimiter",
    "Response",
    "ServiceClient",
    "ServiceError",
    "ServicePolicy",
    "address_policy",
    "base_url",
    "client_for",
    "reset_clients",
    "service_headers",
    "set_policy",
    "user_agent",
]
