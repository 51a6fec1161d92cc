"""Every secret goes in (env, files) and nothing comes out: logs, metrics, CLI, children."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from footyd.clients.netguard import AddressPolicy
from footyd.clients.ytdlp import fetch_post
from footyd.errors import DownloadFailed, ExitCode
from footyd.sim.net import free_port
from tests.plugins import secrets
from tests.plugins.daemon import DaemonFactory, base_config, run_cli, write_toml
from tests.plugins.secrets import SECRETS, find_leaks, scan_process_tree
from tests.plugins.servers import MongoServer, S3Server

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it


def _tree(mongo: MongoServer, s3: S3Server, tmp_path: Path) -> dict[str, Any]:
    tree = base_config(mongo, s3, tmp_path, f"k_{uuid.uuid4().hex[:10]}")
    tree["storage"].pop("access_key_id")
    tree["storage"].pop("secret_access_key")
    (tmp_path / "s3-secret").write_text(SECRETS["s3_secret"] + "\n")
    tree["storage"]["secret_access_key_file"] = str(tmp_path / "s3-secret")
    tree["sources"] = {"x_api": {"bearer_token": SECRETS["x_token"],
                                 "base_url": "http://127.0.0.1:9/2"}}
    tree["api_football"] = {"base_url": "http://127.0.0.1:9", "timeout_s": 1.0, "max_retries": 0}
    return tree


def _env() -> dict[str, str]:
    return {"FOOTYD_API_FOOTBALL__API_KEY": SECRETS["api_key"],
            "FOOTYD_STORAGE__ACCESS_KEY_ID": SECRETS["s3_access"]}


def test_the_session_servers_use_the_distinctive_secrets(
    mongo_server: MongoServer, s3_server: S3Server
) -> None:
    if mongo_server.pid is not None:  # not an external FOOTYD_TEST_MONGO_URI
        assert f":{SECRETS['mongo_password']}@" in mongo_server.uri
    if s3_server.access_key_id == SECRETS["s3_access"]:
        assert s3_server.secret_access_key == SECRETS["s3_secret"]


async def test_daemon_and_cli_with_every_secret_leak_none(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    tree = _tree(mongo_server, s3_server, tmp_path)
    proc = await daemon_factory(tree, env=_env())
    await proc.wait_notify("READY=1")
    await proc.wait_log("api_status_failed", timeout_s=30)  # the API call failed and was logged
    scan_process_tree("secrets daemon", proc.proc.pid if proc.proc else 0)
    async with aiohttp.ClientSession() as session, session.get(
            f"http://{tree['health']['listen']}/metrics") as resp:
        metrics = await resp.text()
    assert not find_leaks("daemon metrics", metrics)
    write_toml(proc.config_path, tree | {"monitor": {"poll_floor_s": 1.0, "poll_interval_s": 0.5}})
    proc.send(signal.SIGHUP)  # an invalid reload prints its errors
    await proc.wait_log("config_reload_failed")
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
    assert not find_leaks("daemon output", "\n".join(proc.raw) + proc.stderr)

    write_toml(proc.config_path, tree)
    code, out, err = await run_cli("check-config", "-c", str(proc.config_path), env=_env())
    assert code == 0, err
    assert not find_leaks("check-config", out + err)
    unreachable = f"mongodb://footyd:{SECRETS['mongo_password']}@127.0.0.1:1/"
    bad = dict(tree, mongo={"uri": unreachable, "server_selection_timeout_s": 0.5})
    write_toml(tmp_path / "bad.toml", bad)
    code, out, err = await run_cli("status", "-c", str(tmp_path / "bad.toml"), env=_env())
    assert code != 0
    assert not find_leaks("status against an unreachable MongoDB", out + err)


async def test_yt_dlp_child_gets_no_secret_from_the_daemon_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var, name in (("FOOTYD_API_FOOTBALL__API_KEY", "api_key"),
                      ("FOOTYD_SOURCES__X_API__BEARER_TOKEN", "x_token"),
                      ("FOOTYD_STORAGE__SECRET_ACCESS_KEY", "s3_secret"),
                      ("AWS_SECRET_ACCESS_KEY", "s3_secret"),
                      ("FOOTYD_MONGO__URI", "mongo_password")):
        monkeypatch.setenv(var, SECRETS[name])
    before, spawned = len(secrets.LEAKS), len(secrets.SPAWNED)
    with pytest.raises(DownloadFailed):  # nothing listens there: the child runs and fails
        await fetch_post(f"http://127.0.0.1:{free_port()}/post/1", tmp_path, timeout_s=20.0,
                         socket_timeout_s=2.0, max_size_mb=1.0,
                         policy=AddressPolicy(allow_private=True))
    assert secrets.SPAWNED[spawned:] == ["footyd.clients.ytdlp"]  # the spy saw the child start
    assert secrets.LEAKS[before:] == []
