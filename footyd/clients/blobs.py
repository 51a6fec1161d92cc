"""Blob store seam: S3 through aioboto3, or a local directory for small installs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import aioboto3
import structlog
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from footyd.config import StorageConfig
from footyd.errors import ConfigError, DependencyUnavailable, Permanent, Retryable

log = structlog.get_logger(__name__)

PART_SIZE_BYTES = 8 * 1024 * 1024  # S3 parts are >= 5 MiB except the last
ABORT_TIMEOUT_S = 10.0


class BlobStore(Protocol):
    """Where clip bytes live; MongoDB keeps everything else about them."""

    kind: str
    bucket: str

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]
    ) -> None: ...
    async def get_file(self, key: str, path: Path) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def list_keys(self, prefix: str) -> list[str]: ...
    async def abort_stale_uploads(self, older_than_s: float, *, dry_run: bool = False) -> int: ...
    async def ping(self) -> bool: ...
    def key_for(self, *parts: str) -> str: ...


def _prefix_dir(prefix: str) -> str:
    """The key prefix every footyd object starts with: "clips/" (or "" with no prefix)."""
    return prefix.strip("/") + "/" if prefix.strip("/") else ""


def _join(prefix: str, parts: tuple[str, ...]) -> str:
    return "/".join(p.strip("/") for p in (prefix, *parts) if p.strip("/"))


class S3BlobStore:
    """S3 (or MinIO and friends through endpoint_url), retry mode "standard"."""

    kind = "s3"

    def __init__(self, cfg: StorageConfig, *, read_only: bool = False) -> None:
        self._cfg = cfg
        self._read_only = read_only
        self.bucket = cfg.bucket
        self._stack = AsyncExitStack()
        self._s3: Any = None

    async def __aenter__(self) -> S3BlobStore:
        session = aioboto3.Session()
        cfg = self._cfg
        kwargs: dict[str, Any] = {
            "region_name": cfg.region,
            "endpoint_url": cfg.endpoint_url,
            "config": BotoConfig(
                retries={"mode": "standard", "max_attempts": 5},
                connect_timeout=min(10.0, cfg.timeout_s),
                read_timeout=min(60.0, cfg.timeout_s),
            ),
        }
        if cfg.access_key_id and cfg.secret_access_key:
            kwargs["aws_access_key_id"] = cfg.access_key_id.get_secret_value()
            kwargs["aws_secret_access_key"] = cfg.secret_access_key.get_secret_value()
        self._s3 = await self._stack.enter_async_context(session.client("s3", **kwargs))
        try:
            await self._ensure_bucket(create=not self._read_only)
        except BaseException:
            await self._stack.aclose()
            raise
        log.info("blob_store_opened", kind=self.kind, bucket=self.bucket)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _ensure_bucket(self, *, create: bool) -> None:
        try:
            await self._s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"} or not (
                    create and self._cfg.create_bucket):
                raise DependencyUnavailable(
                    f"S3 bucket {self.bucket!r} not usable: {code or exc}"
                ) from None
        except (BotoCoreError, OSError) as exc:
            raise DependencyUnavailable(f"S3 unreachable: {type(exc).__name__}: {exc}") from None
        try:
            await self._s3.create_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"S3 bucket {self.bucket!r} cannot be created: {exc}") from None
        log.info("blob_bucket_created", bucket=self.bucket)

    def key_for(self, *parts: str) -> str:
        return _join(self._cfg.prefix, parts)

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]
    ) -> None:
        # TimeoutError (the deadline) is an OSError: retryable like any other transport failure
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                size = (await asyncio.to_thread(path.stat)).st_size
                if size <= PART_SIZE_BYTES:
                    body = await asyncio.to_thread(path.read_bytes)
                    await self._s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              ContentType=content_type, Metadata=metadata)
                else:
                    await self._put_multipart(key, path, content_type, metadata)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 upload of {key} failed: {exc}") from exc

    async def _put_multipart(
        self, key: str, path: Path, content_type: str, metadata: dict[str, str]
    ) -> None:
        """Our own multipart upload (parts in order, no helper tasks), aborted on any exit but
        success: aioboto3's managed transfer aborts only on Exception, so a cancelled upload
        left an incomplete upload (billed, invisible to list and delete) and its tasks behind."""
        created = await self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata)
        upload_id = created["UploadId"]
        try:
            parts = []
            with path.open("rb") as f:
                number = 1
                while chunk := await asyncio.to_thread(f.read, PART_SIZE_BYTES):
                    done = await self._s3.upload_part(Bucket=self.bucket, Key=key, Body=chunk,
                                                      PartNumber=number, UploadId=upload_id)
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    number += 1
            await self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            # shielded: a cancelled upload still gets its abort (bounded; startup sweeps the rest)
            await asyncio.shield(self._abort_upload(key, upload_id))
            raise

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        try:
            await asyncio.wait_for(self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id), ABORT_TIMEOUT_S)
        except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
            log.warning("s3_upload_abort_failed", key=key, error=f"{type(exc).__name__}: {exc}")

    async def get_file(self, key: str, path: Path) -> None:
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._s3.download_file(self.bucket, key, str(path))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                raise Permanent(f"S3 object {key} does not exist") from None
            raise Retryable(f"S3 download of {key} failed: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 download of {key} failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 delete of {key} failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise Retryable(f"S3 head of {key} failed: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 head of {key} failed: {exc}") from exc
        return True

    async def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            paginator = self._s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 list of {prefix} failed: {exc}") from exc
        return sorted(keys)

    async def abort_stale_uploads(self, older_than_s: float, *, dry_run: bool = False) -> int:
        """Abort multipart uploads under the prefix started before now - older_than_s."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        stale: list[tuple[str, str]] = []
        try:
            paginator = self._s3.get_paginator("list_multipart_uploads")
            # only keys under "{prefix}/" are footyd's: "clips" must not match "clips-archive/"
            mine = _prefix_dir(self._cfg.prefix)
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=mine):
                stale.extend((u["Key"], u["UploadId"]) for u in page.get("Uploads", [])
                             if u["Initiated"] < cutoff and str(u["Key"]).startswith(mine))
            for key, upload_id in [] if dry_run else stale:
                await self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                      UploadId=upload_id)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise Retryable(f"S3 multipart cleanup failed: {exc}") from exc
        return len(stale)

    async def presigned_url(self, key: str, ttl_s: int) -> str:
        """A short-lived GET URL for one object (the web page's clip redirect)."""
        try:
            url: str = await self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s)
        except (ClientError, BotoCoreError) as exc:
            raise Retryable(f"S3 presign of {key} failed: {exc}") from exc
        return url

    async def ping(self) -> bool:
        try:
            await self._s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError):
            return False
        return True


class LocalBlobStore:
    """A directory tree; metadata in a sidecar JSON file; writes are atomic renames."""

    kind = "local"

    def __init__(self, cfg: StorageConfig, *, read_only: bool = False) -> None:
        if cfg.local_dir is None:
            raise ConfigError(['storage.local_dir: required when storage.kind = "local"'])
        self._cfg = cfg
        self._read_only = read_only
        self.root = cfg.local_dir
        self.bucket = str(cfg.local_dir)

    async def __aenter__(self) -> LocalBlobStore:
        if self._read_only:  # a dry run: never create the directory, a missing one is empty
            log.info("blob_store_opened", kind=self.kind, root=str(self.root), read_only=True)
            return self
        # a directory footyd cannot use is a config problem (exit 78), not an outage to retry
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"storage.local_dir: {self.root} cannot be created ({exc.strerror}); "
                               "create it for the user footyd runs as"]) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ConfigError([f"storage.local_dir: {self.root} is not writable by the user "
                               "footyd runs as"])
        log.info("blob_store_opened", kind=self.kind, root=str(self.root))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def key_for(self, *parts: str) -> str:
        return _join(self._cfg.prefix, parts)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or key.endswith(".meta.json"):
            raise ValueError(f"invalid blob key {key!r}")
        return path

    async def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]
    ) -> None:
        target = self._path(key)

        def _copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(path, tmp)
            meta = {"content_type": content_type, "metadata": metadata}
            target.with_name(target.name + ".meta.json").write_text(json.dumps(meta))
            os.replace(tmp, target)

        try:
            await asyncio.to_thread(_copy)
        except OSError as exc:
            raise Retryable(f"local store write of {key} failed: {exc}") from exc

    async def get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not await asyncio.to_thread(source.is_file):
            raise Permanent(f"blob {key} does not exist")
        try:
            await asyncio.to_thread(shutil.copyfile, source, path)
        except OSError as exc:
            raise Retryable(f"local store read of {key} failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        target = self._path(key)
        for p in (target, target.with_name(target.name + ".meta.json")):
            try:
                await asyncio.to_thread(p.unlink, missing_ok=True)
            except OSError as exc:
                raise Retryable(f"local store delete of {key} failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def list_keys(self, prefix: str) -> list[str]:
        def _walk() -> list[str]:
            out = []
            for p in self.root.rglob("*"):
                rel = p.relative_to(self.root).as_posix()
                if p.is_file() and not rel.endswith((".meta.json", ".tmp")) and rel.startswith(prefix):
                    out.append(rel)
            return sorted(out)

        return await asyncio.to_thread(_walk)

    async def abort_stale_uploads(self, older_than_s: float, *, dry_run: bool = False) -> int:
        """Remove `.tmp` files of writes a crash interrupted (the local multipart upload)."""
        cutoff = time.time() - older_than_s

        def _sweep() -> int:
            # only files under "{prefix}/" are footyd's; the rest of local_dir is left alone
            mine = self.root / _prefix_dir(self._cfg.prefix)
            stale = [p for p in mine.rglob("*.mp4.tmp") if p.is_file()
                     and p.stat().st_mtime < cutoff]
            for p in [] if dry_run else stale:
                p.unlink(missing_ok=True)
            return len(stale)

        try:
            return await asyncio.to_thread(_sweep)
        except OSError as exc:
            raise Retryable(f"local store cleanup failed: {exc}") from exc

    def local_path(self, key: str) -> Path:
        """The file holding a key (inside the root by construction; may not exist)."""
        return self._path(key)

    async def ping(self) -> bool:
        return await asyncio.to_thread(os.access, self.root, os.W_OK)


def open_blob_store(cfg: StorageConfig, *, read_only: bool = False) -> S3BlobStore | LocalBlobStore:
    """The configured store, not yet opened (enter it on the daemon's exit stack); `read_only`
    opens create nothing (no bucket, no directory)."""
    return (S3BlobStore(cfg, read_only=read_only) if cfg.kind == "s3"
            else LocalBlobStore(cfg, read_only=read_only))
