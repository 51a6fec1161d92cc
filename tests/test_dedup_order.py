"""Dedup grouping does not depend on arrival order (real H.264 clips, MongoDB-wire server, S3)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from footyd.clients.blobs import S3BlobStore
from footyd.clients.store import Store
from footyd.config import Config
from footyd.media import Fingerprint, VideoInfo, compare, fingerprint, probe
from footyd.procpool import ProcessPool
from footyd.sim.clipgen import write_clip
from footyd.stages.dedup import ClipQuality, pick_best
from tests.test_dedup_stage import World, new_world

OVERLAY = "LEV 1-0 BAY"  # the same score bug on every clip: a hard negative across scenes
# content-time segments of one 9.5 s goal clip: (name, start_s, end_s, width, height)
# "best" wins on resolution among the 6 s copies; "bridge" (5.5 s, shorter by >15%) is the only
# copy overlapping "tail" (3.5 s, sharpest but shortest): tail reaches the group only through it
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


async def test_bridge_copy_joins_through_an_earlier_duplicate(world: World,
                                                              corpus: dict[str, Copy]) -> None:
    """C matches only B, B is already a duplicate of A: C becomes a duplicate of A."""
    a, b, c = "s31_best", "s31_bridge", "s31_tail"
    g = await world.goal("g_bridge")
    await _arrive(world, g, corpus, [[a], [b]])
    assert await world.states(g) == {a: ("kept", None), b: ("duplicate", a)}

    await _arrive(world, g, corpus, [[c]])

    assert await world.states(g) == {a: ("kept", None), b: ("duplicate", a), c: ("duplicate", a)}
    doc = (await world.clips(g))[c]
    assert "matched through another copy" in doc["reason"] and "shorter" in doc["reason"]
    await world.assert_consistent(g)


async def test_better_copy_via_bridge_takes_over_and_old_duplicates_follow(
        world: World, corpus: dict[str, Copy]) -> None:
    """sd kept, bridge its duplicate; best arrives and wins: every duplicate points at best."""
    g = await world.goal("g_takeover")
    await _arrive(world, g, corpus, [["s32_sd"], ["s32_bridge"], ["s32_tail"], ["s32_best"]])
    assert await world.states(g) == {"s32_best": ("kept", None), "s32_sd": ("duplicate", "s32_best"),
                                     "s32_bridge": ("duplicate", "s32_best"),
                                     "s32_tail": ("duplicate", "s32_best")}
    await world.assert_consistent(g)


async def test_any_arrival_order_and_batching_keeps_exactly_the_best_copy(
        world: World, corpus: dict[str, Copy]) -> None:
    """K=3 clips x M=4 copies, 50 seeded random orders and batch splits: one kept copy per clip,
    the one pick_best chooses among all copies, every other copy a duplicate of it."""
    rng = random.Random(9)
    best = {}
    for s in SCENES:
        names = [f"s{s}_{n}" for n, *_ in COPIES]
        quality = [ClipQuality.from_doc({"_id": n, "duration_s": corpus[n].info.duration_s,
                                         "width": corpus[n].info.width,
                                         "height": corpus[n].info.height}) for n in names]
        best[s] = pick_best(quality).clip_id
    assert set(best.values()) == {f"s{s}_best" for s in SCENES}
    plans = []
    for _ in range(ORDERS):
        names = list(corpus)
        rng.shuffle(names)
        cuts = sorted(rng.sample(range(1, len(names)), rng.randint(0, 3)))  # 1-4 batches
        plans.append([names[i:j] for i, j in zip([0, *cuts], [*cuts, len(names)], strict=True)])
    expected = {n: ("kept", None) if n == best[int(n[1:3])] else ("duplicate", best[int(n[1:3])])
                for n in corpus}

    async def run(k: int) -> str | None:
        g = await world.goal(f"g_order{k}")
        await _arrive(world, g, corpus, plans[k])
        await world.assert_consistent(g)
        states = await world.states(g)
        diff = {n: v for n, v in states.items() if v != expected[n]}
        return f"order {plans[k]}: {diff}" if diff else None

    wrong: list[str] = []
    for first in range(0, ORDERS, CONCURRENT_GOALS):  # goals are independent, as in the daemon
        results = await asyncio.gather(*(run(k) for k in range(first, min(ORDERS, first + CONCURRENT_GOALS))))
        wrong += [r for r in results if r]
    assert not wrong, f"{len(wrong)}/{ORDERS} orders wrong, first: {wrong[0]}"
