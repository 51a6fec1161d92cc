"""Which addresses footyd may fetch media from: public unicast only, unless the operator allows more."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from footyd.errors import DownloadFailed, FailKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_KIND = FailKind.BLOCKED_ADDRESS  # terminal: the clip is rejected
FLAG = "download.allow_private_addresses"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _why_v4(ip: ipaddress.IPv4Address) -> str | None:
    checks = (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
              ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved), ("private", ip.is_private),
              ("not globally routable", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address (None when it is)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _why_v4(ip)
    # v6 forms that carry a v4 address reach that v4 host: judge the embedded address too
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and ip in _NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        inner = _why_v4(embedded)
        return None if inner is None else f"{inner} (embedded {embedded})"
    checks = (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
              ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
              ("site-local", ip.is_site_local), ("private", ip.is_private),
              ("reserved", ip.is_reserved), ("not globally routable", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


@dataclass(frozen=True)
class AddressPolicy:
    """What may be fetched: public addresses, plus everything when `allow_private` is on,
    plus the `allowed_networks` an operator trusts (a LAN media server)."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_private: bool, networks: Iterable[str] = ()) -> AddressPolicy:
        """From config values (networks as CIDR strings, already validated)."""
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def problem(self, ip: IPAddress) -> str | None:
        """Why `ip` must not be fetched under this policy (None: it may)."""
        if self.allow_private:
            return None
        plain = (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip
        if any(plain in net for net in self.allowed_networks):
            return None
        return address_problem(ip)


class BlockedAddressError(OSError):
    """A host resolved to an address the policy refuses (an OSError so aiohttp wraps it)."""

    def __init__(self, host: str, ip: IPAddress, why: str) -> None:
        self.host, self.ip, self.why = host, ip, why
        super().__init__(f"{host} resolves to {ip} ({why}); refused unless {FLAG} = true")

    def failure(self) -> DownloadFailed:
        """The terminal download failure this refusal means."""
        return DownloadFailed(BLOCKED_KIND, str(self))


def parse_ip(text: str) -> IPAddress | None:
    """The address when `text` is a literal IP (brackets and a zone id allowed), else None."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for host (what a connect may pick)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DownloadFailed("network", f"cannot resolve {host}: {type(exc).__name__}") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = parse_ip(str(sockaddr[0]))
        if ip is not None and ip not in found:
            found.append(ip)
    if not found:
        raise DownloadFailed("network", f"cannot resolve {host}: no addresses")
    return found


def check_addresses(host: str, addresses: Iterable[IPAddress], policy: AddressPolicy) -> None:
    """Raise BlockedAddressError if any address is refused (a connect could pick any of them)."""
    for ip in addresses:
        why = policy.problem(ip)
        if why is not None:
            raise BlockedAddressError(host, ip, why)


async def check_url(url: str, policy: AddressPolicy) -> None:
    """Refuse (DownloadFailed) a URL that is not http(s) or whose host resolves to a refused address."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DownloadFailed("unsupported_url", "malformed URL") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise DownloadFailed("unsupported_url", "only http/https URLs are fetched")
    if policy.allow_private:
        return
    literal = parse_ip(host)
    addresses = [literal] if literal is not None else await resolve(host, port)
    try:
        check_addresses(host, addresses, policy)
    except BlockedAddressError as exc:
        raise exc.failure() from None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to addresses the current policy refuses.

    It runs on every connection aiohttp opens, so a DNS answer that changes between the
    check and the connect (rebinding) is still caught.
    """

    def __init__(self, policy: Callable[[], AddressPolicy]) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        addresses = [ip for r in results if (ip := parse_ip(r["host"])) is not None]
        check_addresses(host, addresses, self._policy())
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(policy: Callable[[], AddressPolicy], **kwargs: Any) -> aiohttp.ClientSession:
    """A ClientSession whose every connection goes through GuardedResolver (no env proxies)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy))
    return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)
