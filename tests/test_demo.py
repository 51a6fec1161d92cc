"""`footyd demo` runs to completion and its summary matches its script; a wrong expectation fails it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import av
import pytest

from footyd.demo import script as demo_script
from footyd.demo.runner import DemoOptions, main, started_demo
from footyd.errors import ExitCode
from tests.plugins.servers import MongoServer

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

TINY_SCRIPT = """
name = "tiny"
minute_s = 0.25
search_attempts = 2
search_interval_min = 2.0
[kits]
one = [{ clip = "a_trim1", after_min = 0.5 }, { clip = "portrait", after_min = 0.5 }]
[[fixtures]]
id = 9901
kickoff_min = 1
league = { id = 39, name = "Premier League", season = 2025 }
home = { id = 90, name = "Tiny Town" }
away = { id = 91, name = "Small City" }
timeline = [{ at = 0, status = "1H" }, { at = 3, goal = { key = "g", team = "home", player = "T. Tester" } },
            { at = 12, status = "FT" }]
[[goals]]
fixture = 9901
key = "g"
posts = [{ match = ["Tester", "Tiny Town"], kit = "one" }]
expect = { state = "done", scorer = "T. Tester", kept = 5 }    # deliberately wrong: 1 is kept
[[results]]
fixture = 9901
status = "FT"
score = [1, 0]
goals = 1
"""


def _videos(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.mp4"))


def _codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return str(container.streams.video[0].codec_context.name)


async def test_demo_short_day_runs_to_completion_and_matches_its_script(
    mongo_server: MongoServer, demo_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # the demo prints to (captured) stdout: a failure shows its live lines and summary
    opts = DemoOptions(short=True, speed=2.0, dir=tmp_path / "demo", mongo_uri=mongo_server.uri,
                       plain=True, env={"XDG_CACHE_HOME": str(demo_cache)}, serve=True)
    async with started_demo(opts) as demo:
        assert demo.page_url is not None
        playing = asyncio.create_task(demo.wait())
        await asyncio.wait_for(demo.summarised.wait(), 110)
        # --serve: after the day the daemon and its page are still up
        async with aiohttp.ClientSession() as http:
            async with http.get(demo.page_url + "api/fixtures/7002") as resp:
                assert resp.status == 200, await resp.text()
                day = await resp.json()
            assert len(day["goals"]) == 3, day
            kept = [c for g in day["goals"] for c in g["clips"] if c["state"] == "kept"]
            assert kept, day
            # 12' M. Striker is also on the fake r/soccer: clips from two sources, one kept per
            # scene across both (the Reddit copy and the search copies of clip A are one clip)
            first = next(g for g in day["goals"] if g["scorer"] == "M. Striker")
            clips = first["clips"]
            assert {c["source"] for c in clips} == {"fake", "reddit"}, clips
            ours = next(c for c in clips if c["source"] == "reddit")
            kept_a = ours["id"] if ours["state"] == "kept" else ours["duplicate_of"]
            assert kept_a is not None and any(  # the other source's copies point at one keeper
                c["source"] == "fake" and c["state"] == "duplicate" and c["duplicate_of"] == kept_a
                for c in clips), clips
            async with http.get(demo.page_url + f"api/clips/{kept[0]['id']}/video") as resp:
                body = await resp.read()
                assert resp.status == 200 and len(body) > 10_000, (resp.status, body[:200])
        assert not playing.done()
        demo.stop.set()
        result = await playing

    assert result.exit_code == ExitCode.OK, result.summary
    assert result.differences == ()
    script = demo_script.load().variant(short=True)
    rows = {(r.goal.fixture, r.goal.key): r for r in result.rows if r.goal is not None}
    assert len(result.rows) == len(rows) == len(script.goals) == 3
    # the summary is what the script says: VAR cancellation, a re-credit, clips deduplicated
    var = rows[(7002, "h_var")]
    assert var.state == "cancelled" and var.kept == 0 and var.cancelled_s is not None
    recredit = rows[(7002, "a2")]
    assert recredit.doc["scorer_name"] == "D. Defender" and recredit.doc["detail"] == "Own Goal"
    # h1 also has the r/soccer copy of the HD clip: one more candidate, one more duplicate
    for key, counts in (("h1", (8, 2, 4, 2)), ("a2", (7, 2, 3, 2))):
        row = rows[(7002, key)]
        assert (row.candidates, row.kept, row.duplicates, row.rejected) == counts
        assert row.detected_s is not None and row.first_kept_s is not None
    assert "OK: every goal, clip and result matches the script." in result.summary
    assert "7002 53' D. Defender (Own Goal)" in result.summary
    assert "8 (fake 7, reddit 1)" in result.summary  # the goal's candidates, by source
    printed = capsys.readouterr().out
    assert "SecantusDB" not in printed  # a MongoDB URI was given: none embedded
    goal_lines = [ln for ln in printed.splitlines() if " goal 70" in ln]
    assert goal_lines and not [ln for ln in goal_lines if "None" in ln]
    assert all(ln.count("M. Striker") == 1 for ln in goal_lines if "M. Striker" in ln)
    # --serve: the page line is printed (it outlives the day); the temp dir's log line is not
    assert "page: http" in result.summary
    # the kept clips are on disk, and they are H.264 (they play in a browser)
    kept = _videos(Path(result.clips_at))
    assert len(kept) == sum(r.kept for r in result.rows) == 4
    assert {_codec(p) for p in kept} == {"h264"}


async def test_demo_exits_1_when_the_outcome_differs_from_the_script(
    mongo_server: MongoServer, demo_cache: Path, tmp_path: Path,
) -> None:
    script = tmp_path / "tiny.toml"
    script.write_text(TINY_SCRIPT)
    env = {**os.environ, "FOOTYD_MONGO__URI": mongo_server.uri, "XDG_CACHE_HOME": str(demo_cache),
           "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "footyd", "demo", "--script", str(script), "--plain",
        "--dir", str(tmp_path / "run"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 100)
    text = stdout.decode()
    assert proc.returncode == 1, text + stderr.decode()
    assert "DIFFERS FROM THE SCRIPT:" in text
    assert "9901/g (9901 3' T. Tester): kept expected 5, got 1" in text
    assert "OK: every goal" not in text


def test_demo_refuses_a_script_that_leaves_a_goal_without_expectations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    script = tmp_path / "bad.toml"
    script.write_text(TINY_SCRIPT.replace('key = "g"\nposts', 'key = "typo"\nposts'))
    assert main(DemoOptions(script=script)) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "must name every scoring event exactly once" in err
    assert "missing [(9901, 'g')], unknown [(9901, 'typo')]" in err
    assert main(DemoOptions(script=tmp_path / "missing.toml")) == ExitCode.CONFIG
    assert "missing.toml" in capsys.readouterr().err
