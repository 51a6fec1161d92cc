"""The blob store contract against two S3 servers (moto, SeaweedFS) and the local directory store."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from footyd.clients.blobs import BlobStore, LocalBlobStore, S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config, StorageConfig
from footyd.errors import DependencyUnavailable, Permanent, Retryable
from footyd.procpool import ProcessPool
from footyd.runtime.wiring import wire
from tests.plugins.faults import Fault, fault_proxy
from tests.plugins.seaweed import running_weed
from tests.plugins.servers import MongoServer, S3Server, local_storage_cfg, storage_cfg


@pytest.fixture(params=["moto", "seaweedfs"])
def any_s3(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 test runs against moto and against a real S3-compatible server."""
    server: S3Server = request.getfixturevalue(
        "s3_server" if request.param == "moto" else "seaweed_server")
    return server


@pytest.fixture
def any_s3_cfg(any_s3: S3Server) -> StorageConfig:
    return storage_cfg(any_s3)


@pytest.fixture
async def any_s3_store(any_s3_cfg: StorageConfig) -> AsyncIterator[S3BlobStore]:
    async with S3BlobStore(any_s3_cfg) as blobs:
        yield blobs


@pytest.fixture(params=["moto", "seaweedfs", "local"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    store: BlobStore
    if request.param == "local":
        store = LocalBlobStore(local_storage_cfg(tmp_path))
    else:
        store = S3BlobStore(storage_cfg(request.getfixturevalue(
            "s3_server" if request.param == "moto" else "seaweed_server")))
    async with store:
        yield store


async def test_put_exists_list_delete(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00\x01" * 5000)
    key = blobs.key_for("1001", "g1", "abcd.mp4")
    assert key == "clips/1001/g1/abcd.mp4"
    assert not await blobs.exists(key)
    await blobs.put_file(key, src, content_type="video/mp4", metadata={"goal-id": "g1"})
    assert await blobs.exists(key)
    # a re-upload of the same key overwrites, it does not add
    await blobs.put_file(key, src, content_type="video/mp4", metadata={"goal-id": "g1"})
    other = blobs.key_for("1001", "g2", "ffff.mp4")
    await blobs.put_file(other, src, content_type="video/mp4", metadata={})
    assert await blobs.list_keys("clips/1001/g1/") == [key]
    back = tmp_path / "back.mp4"
    await blobs.get_file(key, back)
    assert back.read_bytes() == src.read_bytes()
    assert await blobs.list_keys("clips/1001/") == sorted([key, other])
    await blobs.delete(key)
    await blobs.delete(key)  # idempotent
    assert not await blobs.exists(key)
    assert await blobs.list_keys("clips/1001/") == [other]
    with pytest.raises(Permanent):
        await blobs.get_file(key, back)
    assert await blobs.ping()


async def test_s3_object_carries_content_type_and_metadata(
    any_s3_store: S3BlobStore, tmp_path: Path
) -> None:
    s3_store = any_s3_store
    src = tmp_path / "c.mp4"
    src.write_bytes(b"x" * 100)
    await s3_store.put_file("clips/a.mp4", src, content_type="video/mp4", metadata={"sha256": "ab"})
    head = await s3_store._s3.head_object(Bucket=s3_store.bucket, Key="clips/a.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"] == {"sha256": "ab"}
    assert head["ContentLength"] == 100


async def test_missing_bucket_without_create_is_a_clear_error(any_s3_cfg: StorageConfig) -> None:
    cfg = any_s3_cfg.model_copy(update={"create_bucket": False})
    with pytest.raises(DependencyUnavailable, match="not usable"):
        async with S3BlobStore(cfg):
            pass


@pytest.mark.slow  # botocore's standard retries back off for 10-20 s first
async def test_unreachable_s3_is_dependency_unavailable(s3_cfg: StorageConfig) -> None:
    cfg = s3_cfg.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
    with pytest.raises(DependencyUnavailable):
        async with S3BlobStore(cfg):
            pass


async def test_local_store_refuses_escaping_keys(local_store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "c.mp4"
    src.write_bytes(b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        await local_store.put_file("../../etc/x", src, content_type="video/mp4", metadata={})


async def test_cancelled_multipart_upload_is_aborted_and_leaves_no_task(
    any_s3: S3Server, any_s3_cfg: StorageConfig, any_s3_store: S3BlobStore, tmp_path: Path
) -> None:
    s3_server, s3_cfg, s3_store = any_s3, any_s3_cfg, any_s3_store
    src = tmp_path / "big.mp4"
    src.write_bytes(os.urandom(3 * 8 * 1024 * 1024 + 1000))  # several parts at any part size
    key = s3_store.key_for("1", "g1", "big.mp4")
    async with fault_proxy(s3_server.endpoint_url) as proxy:
        proxy.add(Fault(lambda r: "partNumber=" in r.path_qs, "hold"))
        via = s3_cfg.model_copy(update={"endpoint_url": proxy.url})
        async with S3BlobStore(via) as blobs:
            before = asyncio.all_tasks()
            upload = asyncio.create_task(
                blobs.put_file(key, src, content_type="video/mp4", metadata={}))
            await proxy.held.wait()  # the upload has started and is stuck on a part
            upload.cancel()
            with pytest.raises(asyncio.CancelledError):
                await upload
            for _ in range(20):  # let anything it left behind show itself
                await asyncio.sleep(0)
            # the proxy's own server tasks (aiohttp RequestHandler) are not the store's
            leaked = [t for t in asyncio.all_tasks() - before if t is not upload and not t.done()
                      and "RequestHandler" not in t.get_coro().__qualname__]  # type: ignore[union-attr]
            proxy.clear()  # let whatever still waits on the held part finish before closing
    assert leaked == [], leaked
    listed = await s3_store._s3.list_multipart_uploads(Bucket=s3_store.bucket)
    assert listed.get("Uploads", []) == [], "a cancelled upload must be aborted"
    assert not await s3_store.exists(key)


async def test_startup_aborts_stale_multipart_uploads(
    any_s3_store: S3BlobStore, any_s3_cfg: StorageConfig, mongo_server: MongoServer, tmp_path: Path
) -> None:
    s3_store, s3_cfg = any_s3_store, any_s3_cfg
    key = s3_store.key_for("1", "g1", "left.mp4")
    await s3_store._s3.create_multipart_upload(Bucket=s3_store.bucket, Key=key)
    cfg = Config.model_validate({
        "storage": s3_cfg.model_dump(mode="json") | {
            "access_key_id": s3_cfg.access_key_id.get_secret_value(),  # type: ignore[union-attr]
            "secret_access_key": s3_cfg.secret_access_key.get_secret_value()},  # type: ignore[union-attr]
        "retention": {"stale_upload_s": 0.001},
        "download": {"scratch_dir": str(tmp_path / "scratch")},
        "mongo": {"uri": mongo_server.uri, "database": f"b_{uuid.uuid4().hex[:8]}"},
    })
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(Store(cfg.mongo))
        pool = ProcessPool(1)
        stack.callback(pool.shutdown)
        await wire(stack, cfg, store=store, blobs=s3_store, pool=pool)
    listed = await s3_store._s3.list_multipart_uploads(Bucket=s3_store.bucket)
    assert listed.get("Uploads", []) == []


async def test_a_multipart_clip_round_trips(any_s3_store: S3BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "big.mp4"
    src.write_bytes(os.urandom(2 * 8 * 1024 * 1024 + 12345))  # past one part: a multipart upload
    key = any_s3_store.key_for("1", "g1", "big.mp4")
    await any_s3_store.put_file(key, src, content_type="video/mp4", metadata={"sha256": "ab"})
    back = tmp_path / "back.mp4"
    await any_s3_store.get_file(key, back)
    assert back.read_bytes() == src.read_bytes()
    listed = await any_s3_store._s3.list_multipart_uploads(Bucket=any_s3_store.bucket)
    assert listed.get("Uploads", []) == []  # completed, nothing left open


async def test_the_presigned_url_the_page_serves_fetches_the_clip_and_only_it(
    seaweed_server: S3Server, tmp_path: Path
) -> None:
    # SeaweedFS only: moto checks no signature (a URL for another key answers 404, not 403)
    async with S3BlobStore(storage_cfg(seaweed_server)) as any_s3_store:
        await _presigned_round_trip(any_s3_store, tmp_path)


async def _presigned_round_trip(any_s3_store: S3BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "c.mp4"
    src.write_bytes(b"clip-bytes" * 1000)
    key = any_s3_store.key_for("1", "g1", "c.mp4")
    await any_s3_store.put_file(key, src, content_type="video/mp4", metadata={})
    url = await any_s3_store.presigned_url(key, 300)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200 and await resp.read() == src.read_bytes()
            assert resp.headers["Content-Type"] == "video/mp4"
        other = url.replace("c.mp4", "d.mp4")  # the signature covers the key
        async with session.get(other) as resp:
            assert resp.status == 403


async def test_wrong_credentials_are_a_clear_error_without_the_secret(
    seaweed_server: S3Server,
) -> None:
    # SeaweedFS only: moto accepts any credentials
    wrong = "wrong-secret-0123456789"
    cfg = storage_cfg(seaweed_server).model_copy(update={"secret_access_key": SecretStr(wrong)})
    with pytest.raises(DependencyUnavailable, match="not usable") as caught:
        async with S3BlobStore(cfg):
            pass
    assert wrong not in str(caught.value)


@pytest.mark.slow  # the upload's retries and its abort meet a dead server: 30 s of backoff
async def test_a_server_that_stops_mid_upload_fails_the_upload_as_retryable(
    tmp_path: Path,
) -> None:
    src = tmp_path / "big.mp4"
    src.write_bytes(os.urandom(3 * 8 * 1024 * 1024))
    with running_weed(tmp_path / "weed") as (server, proc):
        async with fault_proxy(server.endpoint_url) as proxy, S3BlobStore(storage_cfg(
                server).model_copy(update={"endpoint_url": proxy.url})) as blobs:
            proxy.add(Fault(lambda r: "partNumber=2" in r.path_qs, "hold"))
            key = blobs.key_for("1", "g1", "big.mp4")
            upload = asyncio.create_task(
                blobs.put_file(key, src, content_type="video/mp4", metadata={}))
            held = asyncio.create_task(proxy.held.wait())
            await asyncio.wait({held, upload}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            held.cancel()
            assert proxy.held.is_set(), (upload.exception() if upload.done() else None, proxy.seen)
            # part 1 is stored and part 2 on its way: now the server dies
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            proxy.clear()
            with pytest.raises(Retryable, match="S3 upload of"):
                await upload
