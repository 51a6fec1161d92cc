"""The blob store contract, against S3 (moto server) and the local directory store."""

from __future__ import annotations

from pathlib import Path

import pytest

from footyd.clients.blobs import BlobStore, S3BlobStore
from footyd.config import StorageConfig
from footyd.errors import DependencyUnavailable, Permanent


@pytest.fixture(params=["s3", "local"])
def blobs(request: pytest.FixtureRequest) -> BlobStore:
    return request.getfixturevalue("s3_store" if request.param == "s3" else "local_store")


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
    s3_store: S3BlobStore, tmp_path: Path
) -> None:
    src = tmp_path / "c.mp4"
    src.write_bytes(b"x" * 100)
    await s3_store.put_file("clips/a.mp4", src, content_type="video/mp4", metadata={"sha256": "ab"})
    head = await s3_store._s3.head_object(Bucket=s3_store.bucket, Key="clips/a.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"] == {"sha256": "ab"}
    assert head["ContentLength"] == 100


async def test_missing_bucket_without_create_is_a_clear_error(s3_cfg: StorageConfig) -> None:
    cfg = s3_cfg.model_copy(update={"create_bucket": False})
    with pytest.raises(DependencyUnavailable, match="not usable"):
        async with S3BlobStore(cfg):
            pass


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
