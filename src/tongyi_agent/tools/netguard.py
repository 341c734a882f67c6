"""The one checked way out to the network: every connection goes to an address that was checked.

Network tools fetch URLs that a model chose, often copied from a web page. Without a check, such a
URL could reach the cloud metadata service, a router's admin page or a service on this machine.
Checking the URL's host and then letting the HTTP library connect by name is not enough: the name
may resolve to a public address for the check and to 127.0.0.1 a moment later (DNS rebinding). So
the check lives in the connection itself: :class:`PinnedBackend` resolves the host once, refuses
the connection unless every address is public, and connects to exactly the address it checked. TLS
still verifies the certificate for the host name and sends it as SNI, and the Host header is the
URL's. Every redirect hop opens its own connection, so every hop is checked the same way.

Not public: private, loopback, link-local, shared (CGNAT), multicast, reserved and unspecified
ranges, and IPv6 addresses that carry one of those as an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo); the local-use
NAT64 prefix ``64:ff9b:1::/48`` is refused outright.

Two exceptions, both set by the user, never by a model or a researched folder: the origins of the
service base URLs in the trusted configuration (a SearXNG on localhost, test fakes), and
``TONGYI_ALLOW_PRIVATE_URLS=1`` in the environment, which lifts the address check (an intranet).
Proxies from the environment are not used: the check must see the real destination.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

from tongyi_agent.tools.base import ToolError

ALLOW_PRIVATE_ENV = "TONGYI_ALLOW_PRIVATE_URLS"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(ToolError):
    """A connection refused because its destination is not a public address."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which destinations one client may connect to."""

    allow_private: bool = False
    # (host, port) pairs the user configured as service base URLs; connections there are not checked.
    trusted_origins: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def trusts(self, host: str, port: int) -> bool:
        return (host.lower().strip("[]"), port) in self.trusted_origins


def origin(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, with the scheme's default port; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.hostname.lower(), port


def policy_for(env: typing.Mapping[str, str], trusted_urls: Iterable[str] = ()) -> AddressPolicy:
    origins = frozenset(o for o in (origin(u) for u in trusted_urls if u) if o is not None)
    return AddressPolicy(allow_private=env.get(ALLOW_PRIVATE_ENV, "").strip() == "1", trusted_origins=origins)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the translation formats."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None if it is."""
    shown = str(address)
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return f"{shown} is in the local-use NAT64 range"
        inner = embedded_ipv4(address)
        if inner is not None:
            address, shown = inner, f"{shown} (carrying {inner})"
    if address.is_loopback:
        return f"{shown} is a loopback address"
    if address.is_link_local:
        return f"{shown} is a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return f"{shown} is not a unicast address"
    if not address.is_global:
        return f"{shown} is a private address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (IP literals resolve to themselves)."""
    try:
        # Looked up on the module at call time, so tests can put a fake resolver at the network edge.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ToolError(f"cannot resolve host {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ToolError(f"cannot resolve host {host!r}: no addresses")
    return addresses


def checked_addresses(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """The addresses a connection to ``host:port`` may use; raises BlockedAddress if any is not public.

    All of them must pass, not just the first: otherwise a name with one public and one private
    address would depend on which one the connection happened to try."""
    addresses = resolve(host, port)
    if policy.allow_private or policy.trusts(host, port):
        return addresses
    for address in addresses:
        why = refusal(address)
        if why is not None:
            raise BlockedAddress(f"refusing to connect to {host}: {why} "
                                 f"(set {ALLOW_PRIVATE_ENV}=1 in your environment to allow private hosts)")
    return addresses


class PinnedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses that :func:`checked_addresses` allowed."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in checked_addresses(host, port, self.policy):
            try:
                # The literal address: connecting by name would resolve it again.
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport over a :class:`PinnedBackend`; no proxies (the check must see the destination)."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(trust_env=False)
        self.policy = policy
        # The pool httpx built is replaced before first use by one with the same TLS settings (system
        # CA bundle, SSL_CERT_FILE honoured) and our backend; httpx offers no other way to plug one in.
        self._pool.close()
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=True),
                                             network_backend=PinnedBackend(policy))


def checked_client(policy: AddressPolicy, **kwargs: typing.Any) -> httpx.Client:
    """An httpx client whose every connection (redirect hops included) is checked and pinned."""
    return httpx.Client(transport=CheckedTransport(policy), **kwargs)


__all__ = ["ALLOW_PRIVATE_ENV", "AddressPolicy", "BlockedAddress", "CheckedTransport", "PinnedBackend",
           "checked_addresses", "checked_client", "embedded_ipv4", "origin", "policy_for", "refusal", "resolve"]
