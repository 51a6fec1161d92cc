"""Rough edges of the one-shot commands a new operator hits first (issue 10, items 1-3, 5-7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd import config as config_mod
from footyd.errors import ExitCode
from tests.plugins.daemon import DaemonFactory, base_config, free_port, run_cli, write_toml
from tests.plugins.servers import MongoServer, S3Server

PASSWORD = "hunter2-not-for-logs"


def _cfg(tmp_path: Path, tree: dict[str, Any], name: str = "c.toml") -> str:
    return str(write_toml(tmp_path / name, tree))


async def test_check_config_rejects_configs_that_cannot_run(tmp_path: Path) -> None:
    """Item 1: one line per hard problem, exit 78, no secret, no traceback."""
    path = _cfg(tmp_path, {
        "mongo": {"uri": f"http://admin:{PASSWORD}@db.example:27017/footyd"},
        "search": {"sources": ["x_api"]},
        "storage": {"kind": "local"},
    })
    code, out, err = await run_cli("check-config", "-c", path)
    assert code == ExitCode.CONFIG, (out, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("  ")]
    assert any(ln.strip().startswith("mongo.uri:") for ln in lines), err
    assert any(ln.strip().startswith("sources.x_api.bearer_token:") for ln in lines), err
    assert any(ln.strip().startswith("storage.local_dir:") for ln in lines), err
    assert "FOOTYD_SOURCES__X_API__BEARER_TOKEN" in err
    assert PASSWORD not in out + err and "Traceback" not in err


async def test_check_config_warns_about_idle_settings_with_their_fix(tmp_path: Path) -> None:
    """Item 1: no API key, empty scope, no source: valid (exit 0) but warned, with the env var."""
    path = _cfg(tmp_path, {"log": {"level": "info"}})
    code, out, err = await run_cli("check-config", "-c", path)
    assert code == ExitCode.OK, err
    assert "warning: api_football.api_key" in err and "FOOTYD_API_FOOTBALL__API_KEY" in err
    assert "warning: scope" in err and "FOOTYD_SCOPE__TEAMS" in err
    assert "warning: search.sources" in err and "FOOTYD_SEARCH__SOURCES" in err
    code, out, _ = await run_cli("check-config", "-c", path, "--json")
    data = json.loads(out)
    assert {w["key"] for w in data["warnings"]} >= {"api_football.api_key", "scope", "search.sources"}


async def test_run_with_http_mongo_uri_fails_with_a_clear_line(tmp_path: Path) -> None:
    """Item 1: `run` and `status` exit 78 with a readable stderr line, not a traceback."""
    path = _cfg(tmp_path, {"mongo": {"uri": f"http://u:{PASSWORD}@127.0.0.1:27017"},
                           "health": {"enabled": False}})
    for command in ("run", "status"):
        code, out, err = await run_cli(command, "-c", path)
        assert code == ExitCode.CONFIG, (command, out, err)
        assert "mongo.uri:" in err and "mongodb://" in err, err
        assert "Traceback" not in out + err and PASSWORD not in out + err


async def test_run_logs_idle_warnings_at_start(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    """Item 1: the daemon starts idle but says why, and how to fix each."""
    tree = base_config(mongo_server, s3_server, tmp_path, f"w_{uuid.uuid4().hex[:10]}")
    proc = await daemon_factory(tree, env={"FOOTYD_API_FOOTBALL_API_KEY": "typo"})
    warning = await proc.wait_log("config_warning", where=lambda ln: ln["key"] == "api_football.api_key")
    assert "FOOTYD_API_FOOTBALL__API_KEY" in warning["fix"]
    await proc.wait_log("config_warning", where=lambda ln: ln["key"] == "scope")
    typo = await proc.wait_log("config_warning",
                               where=lambda ln: ln["key"] == "FOOTYD_API_FOOTBALL_API_KEY")
    assert "FOOTYD_API_FOOTBALL__API_KEY" in typo["fix"]
    await proc.wait_notify("READY=1")
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK


async def test_unreachable_mongo_names_host_port_and_setting(tmp_path: Path) -> None:
    """Item 2: host:port and the setting to fix, never the password."""
    port = free_port()
    path = _cfg(tmp_path, {
        "mongo": {"uri": f"mongodb://admin:{PASSWORD}@127.0.0.1:{port}/?authSource=admin",
                  "server_selection_timeout_s": 0.3},
        "api_football": {"api_key": "k"}, "scope": {"teams": [1]},
    })
    for args in (["status"], ["advance", "1", "--to", "active"],
                 ["ingest", "--date", "2026-01-01"]):
        code, out, err = await run_cli(*args, "-c", path)
        assert code == ExitCode.UNAVAILABLE, (args, out, err)
        assert f"127.0.0.1:{port}" in err and "mongo.uri" in err, err
        assert PASSWORD not in out + err


async def test_ingest_without_api_key_or_scope_is_a_config_problem(tmp_path: Path) -> None:
    """Item 3: exit 78 and no invented call counts; an empty scope says how to pass one."""
    path = _cfg(tmp_path, {"mongo": {"uri": "mongodb://127.0.0.1:9", "server_selection_timeout_s": 0.3}})
    code, out, err = await run_cli("ingest", "-c", path, "--date", "2026-01-01", "--team", "1",
                                   env={"FOOTYD_API_FOOTBALL__API_KEY": ""})
    assert code == ExitCode.CONFIG, (out, err)
    assert out == "" and "FOOTYD_API_FOOTBALL__API_KEY" in err

    code, out, err = await run_cli("ingest", "-c", path, "--date", "2026-01-01",
                                   env={"FOOTYD_API_FOOTBALL__API_KEY": "k"})
    assert code == ExitCode.CONFIG, (out, err)
    assert "nothing is tracked" in err and "--team" in err and "--league" in err


async def test_check_config_json_marks_each_key_hot_or_restart(tmp_path: Path) -> None:
    """Item 5: the JSON output carries the same hot/restart marks as the text output."""
    code, out, err = await run_cli("check-config", "-c", _cfg(tmp_path, {}), "--json")
    assert code == ExitCode.OK, err
    keys = json.loads(out)["keys"]
    assert keys["monitor.poll_interval_s"] == {"value": 30.0, "apply": "hot"}
    assert keys["mongo.uri"]["apply"] == "restart"
    assert keys["mongo.uri"]["value"] == config_mod.Config().mongo.uri.get_secret_value()
    assert json.loads(out)["config"]["monitor"]["poll_interval_s"] == 30.0
    assert all(v["apply"] == ("hot" if config_mod.is_hot(k) else "restart") for k, v in keys.items())


async def test_check_config_shows_the_mongo_host_with_only_the_password_masked(
        tmp_path: Path) -> None:
    uri = ("mongodb://footyd:pw-S3cret-value@db1.example:27017,db2.example:27017/footyd"
           "?replicaSet=rs0&authMechanismProperties=AWS_SESSION_TOKEN:tok-S3cret&tls=true")
    code, out, err = await run_cli("check-config", "-c", _cfg(tmp_path, {}), "--json",
                                   env={"FOOTYD_MONGO__URI": uri})
    assert code == ExitCode.OK, err
    shown = json.loads(out)["keys"]["mongo.uri"]["value"]
    assert shown == ("mongodb://footyd:**********@db1.example:27017,db2.example:27017/footyd"
                     "?replicaSet=rs0&authMechanismProperties=**********&tls=true")
    assert "S3cret" not in out + err
    assert config_mod.mask_uri("mongodb+srv://cluster0.example.net/db") == \
        "mongodb+srv://cluster0.example.net/db"
    assert config_mod.mask_uri("not a uri") == config_mod.MASK


def test_env_secrets_and_strings_are_taken_raw() -> None:
    """Item 6: an all-digit key stays a string; `00:30` is not parsed as a TOML time."""
    cfg = config_mod.build({}, {
        "FOOTYD_API_FOOTBALL__API_KEY": "1234567890",
        "FOOTYD_INGEST__AT": "00:30",
        "FOOTYD_STORAGE__BUCKET": "2024",
        "FOOTYD_SCOPE__TEAMS": "[40, 42]",
        "FOOTYD_MONITOR__POLL_INTERVAL_S": "20",
    })
    assert cfg.api_football.api_key is not None
    assert cfg.api_football.api_key.get_secret_value() == "1234567890"
    assert cfg.ingest.at == "00:30" and cfg.storage.bucket == "2024"
    assert cfg.scope.teams == [40, 42] and cfg.monitor.poll_interval_s == 20.0


async def test_env_variable_matching_no_key_is_warned(tmp_path: Path) -> None:
    """Item 6: a single-underscore name is not silently ignored."""
    code, _, err = await run_cli("check-config", "-c", _cfg(tmp_path, {}),
                                 env={"FOOTYD_API_FOOTBALL_API_KEY": "1234567890"})
    assert code == ExitCode.OK, err
    assert "FOOTYD_API_FOOTBALL_API_KEY: matches no config key" in err
    assert "did you mean FOOTYD_API_FOOTBALL__API_KEY?" in err
    assert "1234567890" not in err


def test_check_config_into_a_closed_pipe_has_no_traceback(tmp_path: Path) -> None:
    """Item 7: `check-config | head -1` ends quietly (`true` closes the pipe before any write)."""
    path = _cfg(tmp_path, {})
    proc = subprocess.run(
        f"{sys.executable} -m footyd check-config -c {path} | true",
        shell=True, capture_output=True, text=True, timeout=60, env=os.environ, check=False)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


async def test_healthcheck_prints_the_reason(tmp_path: Path) -> None:
    """Item 7: `unhealthy` says why (connection refused, HTTP status)."""
    port = free_port()
    code, out, _ = await run_cli("healthcheck", "--url", f"http://127.0.0.1:{port}/healthz",
                                 "--timeout-s", "2")
    assert code == ExitCode.ERROR
    assert out.startswith("unhealthy: ") and f"127.0.0.1:{port}" in out and "refused" in out.lower()


@pytest.mark.parametrize("command", ["run", "check-config", "status"])
async def test_config_option_help_shows_default_and_env(command: str) -> None:
    """Item 7: `-c` help names the default path and $FOOTYD_CONFIG."""
    code, out, _ = await run_cli(command, "--help", env={"FOOTYD_CONFIG": "/srv/x.toml"})
    assert code == ExitCode.OK
    flat = " ".join(out.split())
    assert "$FOOTYD_CONFIG" in flat and "/etc/footyd/config.toml" in flat and "/srv/x.toml" in flat


def test_healthcheck_probes_a_wildcard_listen_address_on_loopback() -> None:
    """The Docker image listens on 0.0.0.0: its HEALTHCHECK probes 127.0.0.1."""
    from footyd.cli.config import healthz_url

    assert healthz_url("0.0.0.0:9464") == "http://127.0.0.1:9464/healthz"
    assert healthz_url("10.0.0.5:9464") == "http://10.0.0.5:9464/healthz"


async def test_run_crash_is_named_on_stderr(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    """Item 1: an unexpected startup failure is not only a JSON log line on stdout."""
    tree = base_config(mongo_server, s3_server, tmp_path, f"x_{uuid.uuid4().hex[:10]}")
    # a dangling link: the checks pass (its parent is writable), the mkdir at startup fails in
    # a way footyd does not expect
    scratch = tmp_path / "scratch-link"
    scratch.symlink_to(tmp_path / "nowhere" / "at-all")
    tree["download"]["scratch_dir"] = str(scratch)
    proc = await daemon_factory(tree)
    code = await proc.wait_exit()
    assert code == ExitCode.SOFTWARE
    assert proc.stderr.startswith("footyd: crashed: FileExistsError"), proc.tail()
    assert "Traceback" not in proc.stderr
