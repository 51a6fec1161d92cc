"""Webhook seam: one signed POST per attempt, time-bounded, no redirects, URL never logged."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from types import TracebackType

import aiohttp

from footyd.build import version
from footyd.clients.retry_after import retry_after_s
from footyd.errors import Permanent, Retryable

SIGNATURE_HEADER = "X-Footyd-Signature"
EVENT_ID_HEADER = "X-Footyd-Event-Id"
EVENT_HEADER = "X-Footyd-Event"
MAX_RETRY_AFTER_S = 3600.0
_RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: str, body: bytes, *, event_id: str, timestamp: int) -> str:
    """The signature header value `t=<unix s>,v1=<hex>`: HMAC-SHA256 over
    `"{t}.{event_id}."` + the exact body bytes. Signing the time and the event id lets a receiver
    refuse a replayed request (an old `t`, or an id it has already handled)."""
    signed = f"{timestamp}.{event_id}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookClient:
    """Owns one aiohttp session for every webhook; `post` raises Retryable or Permanent."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookClient:
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": f"footyd/{version()}"},
            connector=aiohttp.TCPConnector(limit=16),
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, *, event_id: str, event: str,
                   secret: str | None, timeout_s: float) -> int:
        """Send one attempt; returns the 2xx status. Errors never carry the URL (it is a secret)."""
        if self._session is None:
            raise RuntimeError("WebhookClient is not open")
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event_id,
                   EVENT_HEADER: event}
        if secret:  # signed per attempt: a retry carries a fresh time
            headers[SIGNATURE_HEADER] = signature(secret, body, event_id=event_id,
                                                  timestamp=int(time.time()))
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(url, data=body, headers=headers,
                                              allow_redirects=False) as resp:
                    status = resp.status
                    retry_after = retry_after_s(resp.headers.get("Retry-After"),
                                                max_s=MAX_RETRY_AFTER_S)
        except TimeoutError:
            raise Retryable(f"timeout: no answer within {timeout_s} s") from None
        except aiohttp.ClientError as exc:
            # the message of a connection error can name the host and path: keep the type only
            raise Retryable(f"connection failed: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRY_STATUSES:
            raise Retryable(f"HTTP {status}", retry_after_s=retry_after)
        if 300 <= status < 400:
            raise Permanent(f"HTTP {status}: redirects are not followed")
        raise Permanent(f"HTTP {status}")
