"""The web server: the page, its JSON API and stream on `[web] listen`, behind an optional token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from types import TracebackType

import structlog
from aiohttp import web
from pymongo.errors import PyMongoError

from footyd.clients.blobs import BlobStore
from footyd.clients.store import Store
from footyd.config import WebConfig
from footyd.errors import DependencyUnavailable
from footyd.web.api import Api, json_error
from footyd.web.feed import ChangeFeed
from footyd.web.pages import STATIC_DIR, Pages, token_of
from footyd.web.views import BadParam

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REPLICA_HEADER = "X-Footyd-Replica"
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # videos and posters may come from a presigned S3 URL on another origin; nothing else may
    "Content-Security-Policy": "default-src 'self'; media-src 'self' https: http:; "
                               "img-src 'self' data: https: http:; frame-ancestors 'none'",
}


class WebServer:
    """Serves the page, /api/* and /api/stream; opened on the daemon's exit stack."""

    def __init__(self, cfg: WebConfig, *, store: Store, blobs: BlobStore,
                 replica: str | None = None) -> None:
        self._cfg = cfg
        self._replica = replica  # named in every answer: several replicas may serve the page
        self._store = store
        self._blobs = blobs
        self._runner: web.AppRunner | None = None
        self.feed: ChangeFeed | None = None
        self._api: Api | None = None
        self.address: str | None = None

    @property
    def url(self) -> str:
        """The base URL of the page (http://host:port)."""
        assert self.address is not None
        host, port = self.address.rsplit(":", 1)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def __aenter__(self) -> WebServer:
        self.feed = ChangeFeed(self._cfg, self._store)
        await self.feed.__aenter__()
        self._api = Api(self._cfg, self._store, self._blobs, self.feed)
        app = web.Application(middlewares=[self._hosts, self._errors, self._auth], client_max_size=4096)
        self._api.routes(app)
        Pages(self._cfg, self._store).routes(app)
        app.router.add_static("/static/", STATIC_DIR, append_version=False)
        app.on_response_prepare.append(_security_headers)
        app.on_response_prepare.append(self._replica_header)
        # streams end on close(); the rest are short reads
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._cfg.host, self._cfg.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._close()
            raise DependencyUnavailable(f"web server cannot listen on {self._cfg.listen}: {exc}") from None
        host, port = self._runner.addresses[0][:2]
        self.address = f"{host}:{port}"
        log.info("web_listening", url=self.url, token=bool(self._cfg.token), feed=self.feed.source)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._api is not None:
            self._api.close()
        if self.feed is not None:
            await self.feed.__aexit__(None, None, None)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _replica_header(self, _request: web.Request, response: web.StreamResponse) -> None:
        if self._replica:
            response.headers[REPLICA_HEADER] = self._replica

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """With a token configured, /api/* and the feed need it (bearer header or ?token=, for
        <video>, SSE and feed readers); the page shells do not (they hold no data)."""
        secret = self._cfg.token.get_secret_value() if self._cfg.token else ""
        if secret and (request.path.startswith("/api/") or request.path == "/feed.atom"):
            if not hmac.compare_digest(token_of(request).encode(), secret.encode()):
                resp = json_error(401, "missing or wrong token")
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every /api error is JSON: 400 bad input, 404 unknown, 503 MongoDB down."""
        try:
            return await handler(request)
        except BadParam as exc:
            return json_error(400, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400 or not request.path.startswith("/api/"):
                raise
            return json_error(exc.status, exc.reason)
        except PyMongoError as exc:
            log.warning("web_store_error", path=request.path, error=type(exc).__name__)
            return json_error(503, "database unavailable")
        except (ValueError, OverflowError) as exc:
            # a parameter shape the parsers missed: still the client's input, still JSON
            log.warning("web_bad_input_unparsed", path=request.path, error=type(exc).__name__,
                        exc_info=True)
            return json_error(400, "malformed request")

    @web.middleware
    async def _hosts(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Only the configured host names are served: a DNS-rebinding page names its own."""
        if not self._cfg.host_allowed(request.host):
            log.info("web_host_refused", host=request.host[:100])
            return json_error(421, "this server does not answer to that host name")
        return await handler(request)


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
