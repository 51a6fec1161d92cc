"""`footyd status`, `redrive` and `search` against a stopped daemon and a running one (issue 10)."""

from __future__ import annotations

import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from footyd.clients.store import Store
from footyd.config import MongoConfig
from footyd.errors import ExitCode
from tests.plugins.daemon import DaemonFactory, base_config, run_cli, write_toml
from tests.plugins.servers import MongoServer, S3Server
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

NOW = datetime.now(UTC)


def _goal(goal_id: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"_id": goal_id, "fixture_id": 5, "team_id": 1, "team_name": "Home FC",
            "opponent_name": "Away FC", "scorer_name": "Striker", "minute": 12, "state": state,
            "first_seen_at": NOW - timedelta(minutes=30), **extra}


async def _seed(store: Store) -> None:
    """A live fixture, a goal whose sources all failed, a goal with one kept and one failed clip."""
    await store.fixtures.insert_one({
        "_id": 5, "stage": "active", "status": "2H", "elapsed": 67, "kickoff": NOW,
        "home": {"id": 1, "name": "Home FC"}, "away": {"id": 2, "name": "Away FC"},
        "score": {"home": 2, "away": 1}})
    await store.goals.insert_many([
        _goal("g_fail", "done", outcome="sources_failed", done_at=NOW, search_attempt_ids=["a1"],
              search_log=[{"attempt": "a1", "sources": {
                  "x_api": {"outcome": "unavailable", "error": "x_api: bearer token rejected"}}}]),
        _goal("g_ok", "done", outcome="clips_kept", done_at=NOW, search_attempt_ids=["a1"]),
    ])
    await store.clips.insert_many([
        {"_id": "c_kept", "goal_id": "g_ok", "fixture_id": 5, "state": "kept",
         "source_url": "http://127.0.0.1:9/kept.mp4"},
        {"_id": "c_fail", "goal_id": "g_ok", "fixture_id": 5, "state": "failed",
         "reason": "attempts spent: timeout", "finished_at": NOW, "attempt_ids": ["d1", "d2"],
         "source_url": "http://127.0.0.1:9/failed.mp4", "media_url": "http://127.0.0.1:9/failed.mp4"},
    ])


def _cfg_for(store: Store, tmp_path: Path) -> str:
    tree = {"mongo": {"uri": store._cfg.uri.get_secret_value(), "database": store._cfg.database},
            "search": {"attempts": 1}}
    return str(write_toml(tmp_path / "ops.toml", tree))


async def test_status_redrive_and_search_with_no_daemon_running(store: Store, tmp_path: Path) -> None:
    await _seed(store)
    cfg = _cfg_for(store, tmp_path)

    code, out, err = await run_cli("status", "-c", cfg, "--json")
    assert code == ExitCode.OK, err
    st = json.loads(out)
    assert st["daemon"]["running"] is False
    live = st["fixtures"]["open"][0]
    assert (live["fixture_id"], live["score"], live["minute"]) == (5, [2, 1], 67)
    assert st["goals"]["done"] == {"goals": 2, "clips": {"kept": 1, "failed": 1}}
    assert [g["goal_id"] for g in st["failed"]["goals"]] == ["g_fail"]
    assert "bearer token rejected" in st["failed"]["goals"][0]["reason"]
    assert st["failed"]["clips"][0]["clip_id"] == "c_fail"
    assert st["failed"]["clips"][0]["reason"] == "attempts spent: timeout"
    code, out, _ = await run_cli("status", "-c", cfg)
    assert "no daemon running" in out and "Home FC 2-1 Away FC 67'" in out
    assert "clip c_fail of goal g_ok: attempts spent: timeout" in out

    code, out, err = await run_cli("redrive", "-c", cfg, "--failed", "--since", "1h")
    assert code == ExitCode.OK, err
    assert "clip c_fail: failed -> discovered" in out
    assert "goal g_fail: done/sources_failed -> searching" in out
    assert "goal g_ok: done/clips_kept -> searching" in out and "moved 3 item(s)" in out
    clip = await store.clips.find_one({"_id": "c_fail"}) or {}
    assert clip["state"] == "discovered" and clip["attempt_ids"] == [] and "reason" not in clip
    g_fail = await store.goals.find_one({"_id": "g_fail"}) or {}
    assert g_fail["state"] == "searching" and g_fail["extra_attempts"] == 1 and "outcome" not in g_fail
    code, out, _ = await run_cli("redrive", "-c", cfg, "--failed")
    assert code == ExitCode.OK and "moved 0 item(s)" in out  # guarded: nothing moves twice

    code, out, err = await run_cli("search", "-c", cfg, "g_ok")
    assert code == ExitCode.OK and "one extra attempt (a2) due now" in out, err
    g_ok = await store.goals.find_one({"_id": "g_ok"}) or {}
    assert g_ok["extra_attempts"] == 1 and g_ok["next_search_at"] is not None
    code, _, err = await run_cli("search", "-c", cfg, "nope")
    assert code == ExitCode.ERROR and "not stored" in err
    code, _, err = await run_cli("redrive", "-c", cfg)
    assert code == ExitCode.USAGE


async def test_status_says_no_daemon_when_the_heartbeat_is_stale(store: Store, tmp_path: Path) -> None:
    await store.db["daemon"].insert_one({
        "_id": "heartbeat", "version": "1.2.3", "host": "h", "pid": 4242, "stale_after_s": 60.0,
        "started_at": NOW - timedelta(hours=2), "beat_at": NOW - timedelta(minutes=5),
        "stopped_at": None})  # a SIGKILLed daemon never marks itself stopped
    code, out, err = await run_cli("status", "-c", _cfg_for(store, tmp_path))
    assert code == ExitCode.OK, err
    assert "no daemon running (last heartbeat older than 60 s" in out and "pid 4242" in out


async def test_commands_against_a_running_daemon(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server,
    tmp_path: Path,
) -> None:
    database = f"ops_{uuid.uuid4().hex[:10]}"
    tree = base_config(mongo_server, s3_server, tmp_path, database)
    tree["health"]["stale_tick_s"] = 4.0
    tree["search"] = {"attempts": 1, "interval_s": 1.0, "schedule": [], "due_scan_s": 0.2,
                      "sources": ["fake"]}
    tree["sources"] = {"fake": {"base_url": "http://127.0.0.1:9", "timeout_s": 1.0}}
    tree["download"].update(max_attempts=1, timeout_s=5.0)
    async with Store(MongoConfig(uri=SecretStr(mongo_server.uri), database=database)) as store:
        await _seed(store)
        proc = await daemon_factory(tree, name="ops")
        await proc.wait_notify("READY=1")
        cfg = str(proc.config_path)

        code, out, err = await run_cli("status", "-c", cfg, "--json")
        assert code == ExitCode.OK, err
        st = json.loads(out)
        assert st["daemon"]["running"] is True and st["daemon"]["pid"] == proc.proc.pid  # type: ignore[union-attr]
        assert st["daemon"]["host"] and st["daemon"]["uptime_s"] >= 0
        assert st["sources"]["fake"]["state"] in {"ok", "degraded", "blocked", "open_circuit"}
        assert st["last_reload"] is None

        # search: the daemon's due scan runs attempt a2 of a goal whose attempts were spent
        code, out, err = await run_cli("search", "-c", cfg, "g_ok")
        assert code == ExitCode.OK, err
        await proc.wait_log("goal_search_attempt", where=lambda ln: ln.get("goal_id") == "g_ok"
                            and ln.get("attempt") == "a2")
        # that attempt found the fake source down: its health reaches status with the next beat
        for _ in range(30):  # each status run takes longer than a beat (1 s)
            fake = json.loads((await run_cli("status", "-c", cfg, "--json"))[1])["sources"]["fake"]
            if fake["state"] != "ok":
                break
        assert fake["state"] in {"degraded", "open_circuit"} and fake["last_error"], fake

        # redrive: the failed clip is fetched again by the running daemon
        code, out, err = await run_cli("redrive", "-c", cfg, "g_ok")
        assert code == ExitCode.OK and "clip c_fail: failed -> discovered" in out, (out, err)
        await proc.wait_log("clip_failed", where=lambda ln: ln.get("clip_id") == "c_fail")
        clip = await store.clips.find_one({"_id": "c_fail"}) or {}
        assert clip["redrives"] == 1 and clip["attempt_ids"]

        # a reload shows up in status as soon as it is logged
        tree["search"]["attempts"] = 2
        write_toml(proc.config_path, tree)
        proc.send(signal.SIGHUP)
        await proc.wait_log("config_reloaded")
        st = json.loads((await run_cli("status", "-c", cfg, "--json"))[1])
        assert st["last_reload"]["ok"] is True and "search.attempts" in st["last_reload"]["changed"]

        proc.send(signal.SIGTERM)
        assert await proc.wait_exit() == ExitCode.OK
        code, out, _ = await run_cli("status", "-c", cfg)
        assert "no daemon running (the daemon stopped" in out


async def test_status_shows_the_api_quota_the_daemon_learned(
    daemon_factory: DaemonFactory, start_sim: StartSim, mongo_server: MongoServer,
    s3_server: S3Server, tmp_path: Path,
) -> None:
    sim = await start_sim(daily_limit=500)
    tree = base_config(mongo_server, s3_server, tmp_path, f"q_{uuid.uuid4().hex[:10]}")
    tree["api_football"] = {"base_url": sim.base_url, "api_key": sim.key}
    tree["ingest"] = {"on_startup": False}
    tree["health"]["stale_tick_s"] = 2.0  # a beat every 0.5 s
    proc = await daemon_factory(tree, name="quota")
    await proc.wait_log("api_status")  # learned off the startup path; the next beat carries it
    for _ in range(30):  # each status run takes longer than a beat
        code, out, err = await run_cli("status", "-c", str(proc.config_path), "--json")
        assert code == ExitCode.OK, err
        quota = json.loads(out)["api_quota"]
        if quota["limit_day"] is not None:
            break
    assert quota["limit_day"] == 500 and 0 <= quota["remaining_day"] <= 500
    code, out, _ = await run_cli("status", "-c", str(proc.config_path))
    used = 500 - quota["remaining_day"]
    assert f"api quota: {used} used, {quota['remaining_day']} left of 500 today" in out
    assert sim.key not in out
