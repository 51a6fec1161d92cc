"""Session servers: a MongoDB-wire server (SecantusDB subprocess) and an S3 server (moto)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
import pytest

from footyd.clients.blobs import LocalBlobStore, S3BlobStore
from footyd.clients.store import Store
from footyd.config import MongoConfig, StorageConfig
from footyd.sim.mongo import start_secantus, stop_secantus
from tests.plugins.secrets import MONGO_USER, SECRETS


@dataclass(frozen=True)
class MongoServer:
    uri: str = field(repr=False)  # carries the password: kept out of failure reports
    pid: int | None  # None when FOOTYD_TEST_MONGO_URI points at an external server

    def uri_for(self) -> str:
        return self.uri


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A MongoDB-wire server for the session (or FOOTYD_TEST_MONGO_URI)."""
    external = os.environ.get("FOOTYD_TEST_MONGO_URI")
    if external:
        yield MongoServer(uri=external, pid=None)
        return
    tmp = tmp_path_factory.mktemp("secantus")
    proc, uri = start_secantus(tmp)
    try:
        # every client authenticates with the secrets scan's distinctive password
        with pymongo.MongoClient(uri) as admin:
            admin.admin.command("createUser", MONGO_USER, pwd=SECRETS["mongo_password"],
                                roles=["root"])
        uri = uri.replace("mongodb://", f"mongodb://{MONGO_USER}:{SECRETS['mongo_password']}@", 1)
        yield MongoServer(uri=uri, pid=proc.pid)
    finally:
        stop_secantus(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback for the session (or FOOTYD_TEST_S3_ENDPOINT)."""
    endpoint = os.environ.get("FOOTYD_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Server(
            endpoint_url=endpoint,
            access_key_id=os.environ.get("FOOTYD_TEST_S3_KEY", ""),
            secret_access_key=os.environ.get("FOOTYD_TEST_S3_SECRET", ""),
            region=os.environ.get("FOOTYD_TEST_S3_REGION", "us-east-1"),
        )
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        # moto accepts any credentials: distinctive ones for the secrets scan
        yield S3Server(f"http://{host}:{port}", SECRETS["s3_access"], SECRETS["s3_secret"],
                       "us-east-1")
    finally:
        server.stop()


@pytest.fixture
def mongo_cfg(mongo_server: MongoServer) -> MongoConfig:
    """A fresh database name per test on the session server."""
    return MongoConfig.model_validate(
        {"uri": mongo_server.uri, "database": f"t_{uuid.uuid4().hex[:12]}",
         "server_selection_timeout_s": 5}
    )


@pytest.fixture
async def store(mongo_cfg: MongoConfig) -> AsyncIterator[Store]:
    """An open Store on a fresh database, dropped afterwards."""
    async with Store(mongo_cfg) as s:
        yield s
        await s.db.client.drop_database(mongo_cfg.database)


def storage_cfg(server: S3Server) -> StorageConfig:
    """Storage config for a fresh bucket on `server` (created on open)."""
    return StorageConfig.model_validate(
        {
            "kind": "s3",
            "bucket": f"t-{uuid.uuid4().hex[:16]}",
            "endpoint_url": server.endpoint_url,
            "region": server.region,
            "access_key_id": server.access_key_id,
            "secret_access_key": server.secret_access_key,
            "create_bucket": True,
        }
    )


@pytest.fixture
def s3_cfg(s3_server: S3Server) -> StorageConfig:
    """Storage config for a fresh bucket per test (created on open)."""
    return storage_cfg(s3_server)


@pytest.fixture
async def s3_store(s3_cfg: StorageConfig) -> AsyncIterator[S3BlobStore]:
    async with S3BlobStore(s3_cfg) as blobs:
        yield blobs


def local_storage_cfg(tmp_path: Path) -> StorageConfig:
    """Storage config for a local blob directory under `tmp_path`."""
    return StorageConfig.model_validate({"kind": "local", "local_dir": str(tmp_path / "blobs")})


@pytest.fixture
async def local_store(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    async with LocalBlobStore(local_storage_cfg(tmp_path)) as blobs:
        yield blobs


def env_for_s3(s3: S3Server) -> dict[str, Any]:
    """FOOTYD_* env entries pointing a daemon subprocess at the test S3 server."""
    return {
        "FOOTYD_STORAGE__ENDPOINT_URL": s3.endpoint_url,
        "FOOTYD_STORAGE__ACCESS_KEY_ID": s3.access_key_id,
        "FOOTYD_STORAGE__SECRET_ACCESS_KEY": s3.secret_access_key,
        "FOOTYD_STORAGE__REGION": s3.region,
    }
