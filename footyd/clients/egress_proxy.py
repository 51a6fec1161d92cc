"""A loopback forward proxy for one yt-dlp run: every connection it makes passes netguard.

yt-dlp follows redirects and fetches pages, manifests and segments on its own; pointed at this
proxy (`--proxy`), each of those connections is resolved here, checked against the address
policy, and opened to the checked address (so a DNS answer cannot change in between).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit

import structlog

from footyd.clients.netguard import (
    AddressPolicy,
    BlockedAddressError,
    IPAddress,
    check_addresses,
    parse_ip,
    resolve,
)
from footyd.errors import DownloadFailed

log = structlog.get_logger(__name__)

MAX_HEAD_BYTES = 64 * 1024
PIPE_CHUNK_BYTES = 64 * 1024
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                          "proxy-authenticate", "te", "trailer", "upgrade"})
_REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_UNREACHABLE = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _BadRequest(Exception):
    """The client's request head cannot be understood."""


def _split_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The first line and the header fields of an HTTP head."""
    first, *lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("header without colon")
            fields.append((name.strip(), value.strip()))
    return first, fields


def _end_to_end(first: str, fields: list[tuple[str, str]]) -> bytes:
    """The head with hop-by-hop fields dropped and `Connection: close` added."""
    kept = [f"{n}: {v}" for n, v in fields if n.lower() not in _HOP_HEADERS]
    return ("\r\n".join([first, *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def _host_port(authority: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(f"//{authority}")
    try:
        port = parts.port or default_port
    except ValueError:
        raise _BadRequest("bad port") from None
    if not parts.hostname:
        raise _BadRequest("no host")
    return parts.hostname, port


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side."""
    try:
        while data := await reader.read(PIPE_CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass  # either side hung up: the other pump ends too


class GuardProxy:
    """`async with GuardProxy(policy) as proxy:` serves on `proxy.url` until the block ends."""

    def __init__(self, policy: AddressPolicy, *, connect_timeout_s: float) -> None:
        self._policy = policy
        self._connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()  # owned: cancelled on exit
        self.refused: list[str] = []  # why each refused connection was refused
        self.url = ""

    async def __aenter__(self) -> GuardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                  limit=MAX_HEAD_BYTES)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
        literal = parse_ip(host)
        addresses: list[IPAddress] = [literal] if literal is not None else await resolve(host, port)
        check_addresses(host, addresses, self._policy)
        # connect to the address just checked, never to a fresh lookup of the name
        return await asyncio.wait_for(asyncio.open_connection(str(addresses[0]), port),
                                      self._connect_timeout_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._connect_timeout_s)
            first, fields = _split_head(head)
            method, target, version = first.split(" ", 2)
            if method == "CONNECT":
                up_reader, upstream = await self._open(*_host_port(target, 443))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.netloc:
                    raise _BadRequest("only absolute http:// targets are proxied")
                up_reader, upstream = await self._open(*_host_port(url.netloc, 80))
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                upstream.write(_end_to_end(f"{method} {path} {version}", fields))
                answer = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"),
                                                self._connect_timeout_s)
                writer.write(_end_to_end(*_split_head(answer)))  # the client must not reuse us
            await asyncio.gather(_pump(reader, upstream), _pump(up_reader, writer))
        except BlockedAddressError as exc:
            self.refused.append(str(exc))
            log.info("egress_refused", host=exc.host, ip=str(exc.ip), why=exc.why)
            writer.write(_REFUSED)
        except (_BadRequest, ValueError, UnicodeError, asyncio.LimitOverrunError,
                asyncio.IncompleteReadError):
            writer.write(_BAD)
        except (DownloadFailed, OSError, TimeoutError):
            writer.write(_UNREACHABLE)
        finally:
            self._handlers.discard(task)
            ends = [w for w in (upstream, writer) if w is not None]
            for w in ends:
                w.close()
            for w in ends:
                with contextlib.suppress(Exception):
                    await w.wait_closed()
