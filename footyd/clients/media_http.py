"""Direct download of a media URL (streamed, size- and time-capped, nothing left on failure)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog

from footyd.clients.netguard import BLOCKED_KIND, AddressPolicy, BlockedAddressError, check_url
from footyd.errors import DownloadFailed

log = structlog.get_logger(__name__)

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".ts"})
_CONTENT_TYPES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/mp2t": ".ts",
}


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def redact_url(url: str) -> str:
    """scheme://host/path without the query string (signed CDN URLs carry tokens there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def status_failure(status: int) -> DownloadFailed | None:
    """Map a non-success HTTP status to a typed failure (None for 2xx)."""
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status}"
    if status in (404, 410):
        return DownloadFailed("not_found", reason)
    if status in (401, 403, 451):
        return DownloadFailed("forbidden", reason)
    if status == 429:
        return DownloadFailed("rate_limited", reason)
    if status >= 500:
        return DownloadFailed("server_error", reason)
    return DownloadFailed("not_found", reason)


def _extension(url: str, content_type: str) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in _EXTENSIONS:
        return suffix
    return _CONTENT_TYPES.get(content_type.lower(), ".mp4")


def _blocked(exc: aiohttp.ClientError) -> BlockedAddressError | None:
    """The netguard refusal behind an aiohttp connect error, if that is what it was."""
    os_error = getattr(exc, "os_error", None)
    return os_error if isinstance(os_error, BlockedAddressError) else None


@asynccontextmanager
async def _follow(session: aiohttp.ClientSession, url: str, policy: AddressPolicy,
                  limits: aiohttp.ClientTimeout) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET url, following at most MAX_REDIRECTS redirects, each hop checked before it is fetched."""
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(url, policy)
        async with session.get(url, timeout=limits, allow_redirects=False) as resp:
            location = resp.headers.get("Location") if resp.status in _REDIRECTS else None
            if location is None:
                yield resp
                return
        try:
            url = urljoin(str(resp.url), location)
        except ValueError:
            raise DownloadFailed("unsupported_url", "malformed redirect Location") from None
    raise DownloadFailed("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")


def _timeout_reason(exc: TimeoutError, timeout_s: float, socket_timeout_s: float) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"could not connect within {socket_timeout_s:g} s (download.socket_timeout_s)"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return f"stalled: no data for {socket_timeout_s:g} s (download.socket_timeout_s)"
    return f"no complete answer within {timeout_s:g} s (download.timeout_s)"


async def fetch_media(
    session: aiohttp.ClientSession,
    url: str,
    dest_dir: Path,
    *,
    max_size_mb: float,
    timeout_s: float,
    socket_timeout_s: float,
    policy: AddressPolicy | None = None,
) -> Path:
    """GET url into dest_dir/media-<uuid><ext>; raise DownloadFailed (and remove the part file).

    Every hop's host is resolved and checked against `policy` (default: public addresses only).
    """
    policy = policy or AddressPolicy()
    if not is_http_url(url):
        raise DownloadFailed("unsupported_url", "only http/https URLs are fetched")
    max_bytes = int(max_size_mb * 1024 * 1024)
    stem = f"media-{uuid.uuid4().hex}"
    part = dest_dir / f"{stem}.part"
    timeout = aiohttp.ClientTimeout(
        total=timeout_s, sock_connect=socket_timeout_s, sock_read=socket_timeout_s
    )
    where = redact_url(url)
    done = False
    try:
        # The outer timeout also bounds DNS and redirects, whatever the session's defaults are.
        async with asyncio.timeout(timeout_s), _follow(session, url, policy, timeout) as resp:
            failure = status_failure(resp.status)
            if failure is not None:
                raise failure
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise DownloadFailed(
                    "too_large", f"Content-Length {resp.content_length} > {max_bytes} bytes"
                )
            final = dest_dir / f"{stem}{_extension(str(resp.url), resp.content_type)}"
            size = 0
            with part.open("wb") as fh:
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadFailed("too_large", f"body passed {max_bytes} bytes")
                    fh.write(chunk)
        if size == 0:
            raise DownloadFailed("invalid_media", "empty body")
        part.rename(final)
        done = True
    except DownloadFailed as exc:
        log.info("media_fetch_failed", url=where, kind=exc.kind, reason=exc.reason)
        raise
    except TimeoutError as exc:  # aiohttp's socket timeouts are TimeoutErrors too: name the one that fired
        reason = _timeout_reason(exc, timeout_s, socket_timeout_s)
        log.info("media_fetch_failed", url=where, kind="timeout", reason=reason)
        raise DownloadFailed("timeout", reason) from None
    except aiohttp.ClientError as exc:
        blocked = _blocked(exc)
        if blocked is not None:  # the session's resolver refused the address at connect time
            log.info("media_fetch_failed", url=where, kind=BLOCKED_KIND, reason=str(blocked))
            raise blocked.failure() from None
        log.info("media_fetch_failed", url=where, kind="network", error=type(exc).__name__)
        raise DownloadFailed("network", type(exc).__name__) from None
    finally:
        if not done:
            part.unlink(missing_ok=True)
    log.info("media_fetched", url=where, path=str(final), size_bytes=size)
    return final
