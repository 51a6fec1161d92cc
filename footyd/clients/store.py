"""MongoDB seam: the AsyncMongoClient, the collections and their indexes."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import bson
import pymongo
import structlog
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, DuplicateKeyError, InvalidURI, PyMongoError

from footyd.config import MongoConfig
from footyd.config.check import mongo_hosts
from footyd.errors import ConfigError, DependencyUnavailable

log = structlog.get_logger(__name__)

# Re-exported so stages never import pymongo themselves.
DuplicateKey = DuplicateKeyError
StoreError = PyMongoError
BadDocument = InvalidDocument  # a value BSON cannot hold (bad key, ...)
UpdateOne = pymongo.UpdateOne  # bulk write members
UpdateMany = pymongo.UpdateMany


def bson_size(doc: dict[str, Any]) -> int:
    """Encoded size of a document (benchmarks and write accounting)."""
    return len(bson.encode(doc))
AFTER = ReturnDocument.AFTER
Doc = dict[str, Any]

INDEXES: dict[str, list[IndexModel]] = {
    "fixtures": [
        IndexModel([("stage", ASCENDING), ("kickoff", ASCENDING)], name="stage_kickoff"),
        IndexModel([("league_id", ASCENDING), ("kickoff", ASCENDING)], name="league_kickoff"),
    ],
    "goals": [
        IndexModel([("fixture_id", ASCENDING), ("team_id", ASCENDING)], name="fixture_team"),
        IndexModel([("state", ASCENDING), ("next_search_at", ASCENDING)], name="state_next_search"),
        # the notify stage finds new events by their timestamps
        IndexModel([("confirmed_at", ASCENDING)], name="confirmed_at", sparse=True),
        IndexModel([("cancelled_at", ASCENDING)], name="cancelled_at", sparse=True),
        # the dedup due scan finds the goals whose last run was cut midway
        IndexModel([("dedup_pending", ASCENDING)], name="dedup_pending", sparse=True),
    ],
    "clips": [
        IndexModel(
            [("goal_id", ASCENDING), ("source_url", ASCENDING)], unique=True, name="goal_source_url"
        ),
        IndexModel(
            [("goal_id", ASCENDING), ("sha256", ASCENDING)],
            unique=True,
            partialFilterExpression={"sha256": {"$type": "string"}},
            name="goal_sha256",
        ),
        IndexModel([("state", ASCENDING), ("next_attempt_at", ASCENDING)], name="state_next"),
        IndexModel([("kept_at", ASCENDING)], name="kept_at", sparse=True),
        IndexModel([("deduped_at", ASCENDING)], name="deduped_at", sparse=True),
        # "does any clip still hold this object?" before every object delete
        IndexModel([("blob_key", ASCENDING)], name="blob_key", sparse=True),
        IndexModel([("upload_keys", ASCENDING)], name="upload_keys", sparse=True),
    ],
    "notifications": [  # one delivery per (event, webhook), however often an event is derived
        IndexModel([("event_id", ASCENDING), ("webhook", ASCENDING)], unique=True,
                   name="event_webhook"),
        IndexModel([("state", ASCENDING), ("next_attempt_at", ASCENDING)], name="state_next"),
        IndexModel([("fixture_id", ASCENDING)], name="fixture_id"),
    ],
}


class Store:
    """Owns the MongoDB client; opened with `async with`, which pings and creates indexes."""

    def __init__(self, cfg: MongoConfig, *, read_only: bool = False) -> None:
        self._cfg = cfg
        self._read_only = read_only  # a dry run: no index (nor the collections it would create)
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None

    async def __aenter__(self) -> Store:
        timeout_ms = int(self._cfg.server_selection_timeout_s * 1000)
        uri = self._cfg.uri.get_secret_value()
        try:
            self._client = AsyncMongoClient(
                uri,
                tz_aware=True,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                appname="footyd",
            )
        except (InvalidURI, ConfigurationError) as exc:  # the URI text never reaches the message
            raise ConfigError([f"mongo.uri: {str(exc).replace(uri, '(mongo.uri)')[:200]}"]) from None
        self._db = self._client[self._cfg.database]
        try:
            await self._client.admin.command("ping")
        except PyMongoError as exc:
            await self._client.close()
            hosts = mongo_hosts(self._cfg.uri.get_secret_value())
            raise DependencyUnavailable(
                f"MongoDB unreachable at {hosts} ({type(exc).__name__} after "
                f"{self._cfg.server_selection_timeout_s:g} s); check that it runs and that mongo.uri "
                "(FOOTYD_MONGO__URI or uri_file) points at it") from None
        try:
            if not self._read_only:
                await self.ensure_indexes()
        except PyMongoError as exc:
            await self._client.close()
            raise DependencyUnavailable(f"MongoDB index creation failed: {exc}") from None
        log.info("mongo_connected", database=self._cfg.database)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self._db is None:
            raise RuntimeError("Store is not open")
        return self._db

    @property
    def fixtures(self) -> AsyncCollection[Doc]:
        return self.db["fixtures"]

    @property
    def goals(self) -> AsyncCollection[Doc]:
        return self.db["goals"]

    @property
    def clips(self) -> AsyncCollection[Doc]:
        return self.db["clips"]

    @property
    def notifications(self) -> AsyncCollection[Doc]:
        return self.db["notifications"]

    async def ensure_indexes(self) -> None:
        """Create every index; raises on any failure so startup stops loudly."""
        for name, models in INDEXES.items():
            await self.db[name].create_indexes(models)

    async def ping(self) -> bool:
        """True when the server answers a ping."""
        if self._client is None:
            return False
        try:
            await self._client.admin.command("ping")
        except PyMongoError:
            return False
        return True
