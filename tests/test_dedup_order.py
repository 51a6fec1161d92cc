"""Dedup grouping does not depend on arrival order (real H.264 clips, MongoDB-wire server, S3)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from footyd.cli.explain import near_miss
from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.errors import ExitCode
from footyd.media import Fingerprint, VideoInfo, compare, fingerprint, probe
from footyd.moves import move_clip
from footyd.procpool import ProcessPool
from footyd.records import CLIP_DOWNLOADED, CLIP_KEPT
from footyd.sim.clipgen import write_clip
from footyd.stages.dedup_rules import ClipQuality, match_and_group, pick_best
from tests.plugins.cli import run_footyd
from tests.plugins.daemon import write_toml
from tests.test_dedup_stage import World, new_world

# `pytest -m "not slow"` skips it; its clips are built once, so one worker runs the file
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_dedup_order")]

OVERLAY = "LEV 1-0 BAY"  # the same score bug on every clip: a hard negative across scenes
# content-time segments of one 9.5 s goal clip: (name, start_s, end_s, width, height)
# "best" wins on resolution among the 6 s copies; "bridge" (5.5 s, shorter by >15%) is the only
# copy overlapping "tail" (3.5 s, sharpest but shortest). Tail shares no frame with best: it
# matches one member of best's group (bridge) and neither the kept copy nor most members, so
# under the grouping rule it is a clip of its own (under union-find it was merged away)
COPIES = (
    ("best", 0.0, 6.0, 426, 240),
    ("sd", 0.0, 6.0, 320, 180),
    ("bridge", 2.5, 8.0, 256, 144),
    ("tail", 6.0, 9.5, 640, 360),
)
SCENES = (31, 32, 33)
STADIUM = 3  # one stadium panorama behind every clip: another hard negative
ORDERS = 50
CONCURRENT_GOALS = 25


@dataclass(frozen=True)
class Copy:
    path: Path
    info: VideoInfo
    fp: Fingerprint


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Copy]:
    """K=3 scenes x M=4 copies, H.264, fingerprinted once as the download stage would."""
    root = tmp_path_factory.mktemp("order")
    cfg = Config().dedup
    out = {}
    for scene in SCENES:
        for i, (name, start, end, w, h) in enumerate(COPIES):
            path = write_clip(root / f"s{scene}_{name}.mp4", seed=scene * 10 + i, scene=scene,
                              seconds=end - start, trim_start_s=start, width=w, height=h,
                              overlay=OVERLAY, stadium=STADIUM, codec="h264")
            out[f"s{scene}_{name}"] = Copy(path, probe(str(path)),
                                           fingerprint(str(path), sample_fps=cfg.reference_fps))
    return out


def _matches(a: Copy, b: Copy) -> bool:
    dc = Config().dedup
    return compare(a.fp, b.fp, max_hamming=dc.max_hamming, min_consecutive=dc.min_consecutive,
                   min_match_s=dc.min_match_s, min_match_ratio=dc.min_match_ratio,
                   min_match_coverage=dc.min_match_coverage) is not None


def test_corpus_has_the_bridge_shape(corpus: dict[str, Copy]) -> None:
    """Precondition of the order tests: real matches form exactly the designed graph."""
    names = sorted(corpus)
    edges = {(a, b) for i, a in enumerate(names) for b in names[i + 1:] if _matches(corpus[a], corpus[b])}
    expected = set()
    for s in SCENES:
        group = [f"s{s}_{n}" for n in ("best", "sd", "bridge")]
        expected |= {(a, b) for i, a in enumerate(sorted(group)) for b in sorted(group)[i + 1:]}
        expected.add(tuple(sorted((f"s{s}_bridge", f"s{s}_tail"))))  # type: ignore[arg-type]
    assert edges == expected


@pytest.fixture(scope="module")
def order_pool() -> Iterator[ProcessPool]:
    p = ProcessPool(1)
    yield p
    p.shutdown()


@pytest.fixture
def world(store: Store, s3_store: S3BlobStore, order_pool: ProcessPool, tmp_path: Path) -> World:
    return new_world(store, s3_store, order_pool, tmp_path)


async def _arrive(w: World, goal: str, corpus: dict[str, Copy], batches: list[list[str]]) -> None:
    for batch in batches:
        for name in batch:
            c = corpus[name]
            await w.add(goal, name, c.path, info=c.info, fp=c.fp)
        await w.stage.handle(goal)


async def test_copy_matching_only_a_duplicate_stays_its_own_clip(world: World,
                                                                  corpus: dict[str, Copy]) -> None:
    """C matches only B, B is already a duplicate of A, C shares no frame with A: C is kept."""
    a, b, c = "s31_best", "s31_bridge", "s31_tail"
    g = await world.goal("g_bridge")
    await _arrive(world, g, corpus, [[a], [b]])
    assert await world.states(g) == {a: ("kept", None), b: ("duplicate", a)}

    await _arrive(world, g, corpus, [[c]])

    assert await world.states(g) == {a: ("kept", None), b: ("duplicate", a), c: ("kept", None)}
    await world.assert_consistent(g)


async def test_a_run_cut_after_keeping_its_winner_runs_again(world: World,
                                                            corpus: dict[str, Copy]) -> None:
    """A SIGKILL between a run's first write and its last (seen in a three-replica crash run):
    the better copy already kept, the old kept copy not yet its duplicate, no clip left
    downloaded. The run's marker keeps the goal due, and the next run settles the group."""
    g = await world.goal("g_cut")
    await _arrive(world, g, corpus, [["s31_sd"]])
    c = corpus["s31_best"]
    best = await world.add(g, "s31_best", c.path, info=c.info, fp=c.fp)
    # what the cut run had written: its marker, then its winner kept
    await world.store.goals.update_one({"_id": g}, {"$set": {"dedup_pending": True}})
    assert await move_clip(world.store, best, from_=CLIP_DOWNLOADED, to=CLIP_KEPT,
                           set_={"kept_at": world.clock()})
    assert await world.states(g) == {"s31_sd": ("kept", None), "s31_best": ("kept", None)}

    assert g in await world.stage.due(world.clock(), 100)
    await world.stage.handle(g)

    assert await world.states(g) == {"s31_best": ("kept", None), "s31_sd": ("duplicate", "s31_best")}
    goal = await world.store.goals.find_one({"_id": g})
    assert goal is not None and "dedup_pending" not in goal
    assert g not in await world.stage.due(world.clock(), 100)
    await world.assert_consistent(g)


async def test_better_copy_takes_over_and_old_duplicates_follow(
        world: World, corpus: dict[str, Copy]) -> None:
    """sd kept, bridge its duplicate, tail its own clip; best arrives and wins its group: every
    duplicate points at best, tail stays kept."""
    g = await world.goal("g_takeover")
    await _arrive(world, g, corpus, [["s32_sd"], ["s32_bridge"], ["s32_tail"], ["s32_best"]])
    assert await world.states(g) == {"s32_best": ("kept", None), "s32_sd": ("duplicate", "s32_best"),
                                     "s32_bridge": ("duplicate", "s32_best"),
                                     "s32_tail": ("kept", None)}
    await world.assert_consistent(g)


async def test_a_later_clip_can_bring_a_duplicate_back(world: World,
                                                      corpus: dict[str, Copy]) -> None:
    """Tail and bridge arrive first (tail loses to the longer bridge); best arrives and takes
    bridge into its group, where tail does not belong: tail, whose blob was held, is kept
    again. With blobs deleted at once it would be lost."""
    g = await world.goal("g_back")
    await _arrive(world, g, corpus, [["s33_tail", "s33_bridge"]])
    assert await world.states(g) == {"s33_bridge": ("kept", None),
                                     "s33_tail": ("duplicate", "s33_bridge")}
    await _arrive(world, g, corpus, [["s33_best"]])
    assert await world.states(g) == {"s33_best": ("kept", None),
                                     "s33_bridge": ("duplicate", "s33_best"),
                                     "s33_tail": ("kept", None)}
    assert (await world.clips(g))["s33_tail"]["reason"] == "kept again: its group changed"
    await world.assert_consistent(g)
    await world.finish(g)
    await world.assert_consistent(g)


def _one_run_over_all_clips(corpus: dict[str, Copy]) -> dict[str, tuple[str, str | None]]:
    """The states one dedup run over every copy of each scene gives (footyd's pure functions)."""
    dc = Config().dedup
    out: dict[str, tuple[str, str | None]] = {}
    for sc in SCENES:
        names = [f"s{sc}_{n}" for n, *_ in COPIES]
        quality = [ClipQuality.from_doc({"_id": n, "duration_s": corpus[n].info.duration_s,
                                         "width": corpus[n].info.width,
                                         "height": corpus[n].info.height}) for n in names]
        _, grouping = match_and_group(
            names, [corpus[n].fp for n in names], quality, max_hamming=dc.max_hamming,
            min_consecutive=dc.min_consecutive, min_match_s=dc.min_match_s,
            min_match_ratio=dc.min_match_ratio, min_match_coverage=dc.min_match_coverage,
            mirrored=dc.match_mirrored, crops=dc.match_crops)
        for group in grouping.groups:
            win = pick_best([quality[i] for i in group]).clip_id
            out.update({names[i]: ("kept", None) if names[i] == win else ("duplicate", win)
                        for i in group})
    return out


# 50 goals of 12 clips through MongoDB and S3: about 100 s on a loaded 2-core CI machine
@pytest.mark.timeout(300)
async def test_any_arrival_order_and_batching_keeps_exactly_the_best_copy(
        world: World, corpus: dict[str, Copy]) -> None:
    """K=3 scenes x M=4 copies, 50 seeded random orders and batch splits: once the goal is over,
    every order ends as one run over all the copies does (duplicates hold their blobs until
    then, so a regrouping loses nothing), and only the kept copies' objects are left in S3."""
    rng = random.Random(9)
    expected = _one_run_over_all_clips(corpus)
    for sc in SCENES:  # what the copies were made for; tail and bridge follow the rule
        assert expected[f"s{sc}_best"] == ("kept", None)
        assert expected[f"s{sc}_sd"] == ("duplicate", f"s{sc}_best")
    plans = []
    for _ in range(ORDERS):
        names = list(corpus)
        rng.shuffle(names)
        cuts = sorted(rng.sample(range(1, len(names)), rng.randint(0, 3)))  # 1-4 batches
        plans.append([names[i:j] for i, j in zip([0, *cuts], [*cuts, len(names)], strict=True)])

    async def run(k: int) -> str | None:
        g = await world.goal(f"g_order{k}")
        await _arrive(world, g, corpus, plans[k])
        await world.assert_consistent(g)
        await world.finish(g)
        await world.assert_consistent(g)
        states = await world.states(g)
        diff = {n: v for n, v in states.items() if v != expected[n]}
        return f"order {plans[k]}: {diff}" if diff else None

    wrong: list[str] = []
    for first in range(0, ORDERS, CONCURRENT_GOALS):  # goals are independent, as in the daemon
        results = await asyncio.gather(*(run(k) for k in range(first, min(ORDERS, first + CONCURRENT_GOALS))))
        wrong += [r for r in results if r]
    assert not wrong, f"{len(wrong)}/{ORDERS} orders wrong, first: {wrong[0]}"


async def test_explain_shows_groups_evidence_and_how_close_kept_clips_came(
        world: World, corpus: dict[str, Copy], tmp_path: Path) -> None:
    """`footyd explain GOAL_ID` as a command against the same MongoDB: each duplicate with the
    rule and numbers that joined it, each pair of kept clips with the checks that kept them
    apart."""
    g = await world.goal("g_explain", scorer_name="A. Striker", minute=12)
    await _arrive(world, g, corpus, [["s31_best", "s31_sd", "s31_bridge", "s31_tail", "s32_best"]])
    states = await world.states(g)
    assert states["s31_sd"] == ("duplicate", "s31_best") and states["s32_best"] == ("kept", None)
    cfg = write_toml(tmp_path / "c.toml", {"mongo": {
        "uri": world.store._cfg.uri.get_secret_value(), "database": world.store._cfg.database}})

    code, out, err = await run_footyd("explain", "-c", str(cfg), g, "--json")
    assert code == ExitCode.OK, err
    report = json.loads(out)
    kept = {grp["kept"]["clip_id"]: grp for grp in report["groups"]}
    assert set(kept) == {f"{g}-{n}" for n, (st, _) in states.items() if st == "kept"}
    (sd,) = [d for d in kept[f"{g}-s31_best"]["duplicates"] if d["clip_id"] == f"{g}-s31_sd"]
    ev = sd["evidence"]
    assert ev["kept"] == f"{g}-s31_best" and ev["rule"] == "kept_copies_match"
    assert ev["matched_s"] >= Config().dedup.min_match_s and ev["offset_s"] == pytest.approx(0, abs=0.25)
    # another scene: judged different, with what failed
    (miss,) = [m for m in report["judged_different"]
               if {m["a"], m["b"]} == {f"{g}-s31_best", f"{g}-s32_best"}]
    assert miss["pair_matches"] is False and miss["failed"]

    code, text, err = await run_footyd("explain", "-c", str(cfg), g)
    assert code == ExitCode.OK, err
    assert "A. Striker 12'" in text and f"duplicate {g}-s31_sd" in text
    assert "rule kept_copies_match" in text and "kept apart by" in text
    code, _, err = await run_footyd("explain", "-c", str(cfg), "no-such-goal")
    assert code == ExitCode.ERROR and "not stored" in err



def test_explain_names_the_cover_check_when_two_kept_clips_match(corpus: dict[str, Copy]) -> None:
    """Kept clips whose pair matches would have joined as "kept copies match": only the cover
    check keeps such groups apart, and explain says so."""
    got = near_miss(corpus["s31_best"].fp, corpus["s31_sd"].fp, Config().dedup)
    assert got["pair_matches"] is True and "cover check" in got["failed"][0]
