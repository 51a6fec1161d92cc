"""`footyd ingest`, `footyd advance` and `footyd status` as one-shot commands against real servers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from footyd.clients.store import Store
from footyd.errors import ExitCode
from footyd.sim.football_script import load_script, script_path
from tests.plugins.cli import run_footyd
from tests.plugins.daemon import write_toml
from tests.plugins.http import serve_app
from tests.plugins.sim import StartSim

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

LEAGUES = sorted({f.league.id for f in load_script(script_path("many_25")).fixtures})


_run = run_footyd


async def test_ingest_advance_and_status_commands(
    start_sim: StartSim, store: Store, tmp_path: Path
) -> None:
    sim = await start_sim(script_path("many_25"))
    day = sim.clock.to_datetime(0).date().isoformat()
    tree: dict[str, Any] = {
        "api_football": {"base_url": sim.base_url, "api_key": sim.key, "backoff_base_s": 0.01},
        "mongo": {"uri": store._cfg.uri.get_secret_value(), "database": store._cfg.database},
    }
    cfg = write_toml(tmp_path / "c.toml", tree)
    code, out, err = await _run("ingest", "-c", str(cfg), "--date", day, "--team", "9999")
    assert code == ExitCode.OK, err
    assert json.loads(out)["inserted"] == 0

    league_args = [a for lg in LEAGUES for a in ("--league", str(lg))]
    code, out, err = await _run("ingest", "-c", str(cfg), "--date", day, *league_args)
    assert code == ExitCode.OK, err
    result = json.loads(out)
    assert result["plan"] == "by_date" and result["calls"] == 1
    assert result["inserted"] == await store.fixtures.count_documents({}) > 0
    assert sim.key not in out + err

    fid = result["fixture_ids"][0]
    code, out, err = await _run("advance", "-c", str(cfg), str(fid), "--to", "completed")
    assert code == ExitCode.OK, err
    assert (await store.fixtures.find_one({"_id": fid}) or {})["stage"] == "completed"
    # a completed fixture is never moved back by ingest
    code, out, _ = await _run("ingest", "-c", str(cfg), "--date", day, *league_args)
    assert json.loads(out)["skipped_completed"] == 1
    assert (await store.fixtures.find_one({"_id": fid}) or {})["stage"] == "completed"
    code, _, err = await _run("advance", "-c", str(cfg), "424242", "--to", "active")
    assert code == ExitCode.ERROR and "not stored" in err

    code, out, err = await _run("status", "-c", str(cfg), "--json")
    assert code == ExitCode.OK, err
    status = json.loads(out)
    assert status["fixtures"]["by_stage"]["completed"] == 1
    assert sum(status["fixtures"]["by_stage"].values()) == result["inserted"]


def _tree_for(store: Store) -> dict[str, Any]:
    return {"mongo": {"uri": store._cfg.uri.get_secret_value(), "database": store._cfg.database}}


async def test_advance_from_completed_needs_force_and_a_noop_says_so(
    store: Store, tmp_path: Path
) -> None:
    """Issue 10 item 8."""
    await store.fixtures.insert_one({"_id": 77, "stage": "completed", "status": "FT"})
    cfg = str(write_toml(tmp_path / "c.toml", _tree_for(store)))
    code, out, err = await _run("advance", "-c", cfg, "77", "--to", "staging")
    assert code == ExitCode.ERROR and "--force" in err, (out, err)
    assert (await store.fixtures.find_one({"_id": 77}) or {})["stage"] == "completed"
    code, out, err = await _run("advance", "-c", cfg, "77", "--to", "completed")
    assert code == ExitCode.OK and "already completed; nothing changed" in out, (out, err)
    assert "->" not in out
    code, out, err = await _run("advance", "-c", cfg, "77", "--to", "staging", "--force")
    assert code == ExitCode.OK and "completed -> staging" in out, err
    assert (await store.fixtures.find_one({"_id": 77}) or {})["stage"] == "staging"


async def test_status_says_api_football_is_disabled_without_a_key(
    store: Store, tmp_path: Path
) -> None:
    cfg = str(write_toml(tmp_path / "c.toml", _tree_for(store)))
    code, out, err = await _run("status", "-c", cfg)
    assert code == ExitCode.OK, err
    assert "API-Football is disabled" in out and "no daemon has reported" not in out
    code, out, err = await _run("status", "-c", cfg, "--json")
    assert json.loads(out)["api_football_enabled"] is False
    code, out, err = await run_footyd("status", "-c", cfg,
                                      env={"FOOTYD_API_FOOTBALL__API_KEY": "k" * 20})
    assert code == ExitCode.OK and "API-Football is disabled" not in out, err



async def test_ingest_json_and_its_log_line_give_the_same_counts(store: Store,
                                                                   tmp_path: Path) -> None:
    """An API that answers 500: one call of the plan, failed after its retries; the JSON and the
    `ingest_done` line say the same (calls 1, failed 1, requests 1 + max_retries)."""
    hits: list[str] = []

    async def broken(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=500, text="down")

    app = web.Application()
    app.router.add_get("/{tail:.*}", broken)
    async with serve_app(app) as base_url:
        tree = {**_tree_for(store), "api_football": {
            "base_url": base_url, "api_key": "k" * 20, "backoff_base_s": 0.01, "max_retries": 2},
            "log": {"level": "info"}}
        cfg = str(write_toml(tmp_path / "c.toml", tree))
        code, out, err = await _run("ingest", "-c", cfg, "--date", "2026-05-01", "--team", "40")
    assert code == ExitCode.ERROR, err
    result = json.loads(out)
    (line,) = [ln for ln in err.splitlines() if "ingest_done" in ln]
    logged = dict(re.findall(r"(\w+)=(\d+)", line))
    assert (result["calls"], result["failed_calls"], result["requests"]) == (1, 1, 3)
    assert (int(logged["calls"]), int(logged["failed_calls"]), int(logged["requests"])) == (1, 1, 3)
    assert len(hits) == 3
