"""Dedup quality on two labelled H.264 corpora: A (the tuning set) and B (held out).

A is `footyd.sim.corpus` (OpenCV drawing, PyAV encoding); B is `footyd.sim.corpus_lavfi`
(ffmpeg filters and the ffmpeg binary, no shared rendering code), built around distinct replays
of one goal from one broadcast. Thresholds are chosen on A's sweep only (the highest recall at
precision 1.0; ties: the setting nearest the previous one); B is reported as is, and so is a
fresh draw of B's generator (its next goals), as B itself has been studied for failures.
For each: pairwise precision/recall of `compare` at the configured defaults and of the pairs the
stage ends with after the crop step (`media/crop.py`), recall per kind of
copy, and grouped correctness over random arrival orders and batch splits (the dedup stage's
rules replayed with footyd's own functions) for the new grouping and the old union-find.
Run: python -m bench.dedup_quality [--goals 4 --b-goals 2 --b-replays 4 --fresh-goals 2 --seconds 8
--scale 1.0 --orders 100]. Writes bench/results/dedup_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from footyd.config import Config
from footyd.media import probe
from footyd.media.fingerprint import Fingerprint, compare, fingerprint
from footyd.media.groups import Pair, match_pairs
from footyd.sim.corpus import CorpusClip, build_corpus, corpus_specs
from footyd.sim.corpus_lavfi import build_corpus_b, corpus_b_specs
from footyd.stages.dedup_rules import ClipQuality, group_goal, match_and_group, pick_best

RESULTS = Path(__file__).parent / "results"
STORED_AT = datetime(2026, 1, 1, tzinfo=UTC)  # equal: ties fall to the clip id, as in the stage
SWEEP_HAMMING = [8, 10, 12, 14, 16]
SWEEP_RATIO = [0.3, 0.5, 0.7, 0.9]
SWEEP_COVERAGE = [0.0, 0.5]


def _cpu() -> float:
    return time.process_time()


def pairwise(specs: list[CorpusClip], prints: dict[str, Fingerprint], *,
             matcher: Callable[..., Any] = compare, across_goals: bool = False,
             **rule: Any) -> dict[str, Any]:
    """Precision/recall over the scored pairs of each goal, the pairs dedup compares (unscored
    clips count only as false positives); `across_goals`: only pairs of different goals, which
    dedup never compares (hard negatives: same match, same graphics)."""
    tp = fp = fn = 0
    misses, false = [], []
    for a, b in itertools.combinations(specs, 2):
        if (_goal(a.name) != _goal(b.name)) != across_goals:
            continue
        same = a.label == b.label
        if same and not (a.scored and b.scored):
            continue
        hit = matcher(prints[a.name], prints[b.name], **rule) not in (None, False)
        if same and hit:
            tp += 1
        elif same:
            fn += 1
            misses.append(f"{a.name}~{b.name}")
        elif hit:
            fp += 1
            false.append(f"{a.name}~{b.name}")
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn, "misses": misses[:10], "false_matches": false[:10]}


def _union_find(keys: list[str], pairs: list[Pair], quality: list[ClipQuality],
                max_hamming: int) -> list[list[int]]:
    """The grouping footyd shipped before issue 15: single-link connected components."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _agglomerative(keys: list[str], pairs: list[Pair], quality: list[ClipQuality],
                   max_hamming: int) -> list[list[int]]:
    return group_goal(keys, pairs, quality, max_hamming=max_hamming).groups


Grouper = Callable[[list[str], list[Pair], list[ClipQuality], int], list[list[int]]]
# name: (grouping, whether duplicates hold their blob until the goal is over)
GROUPINGS: dict[str, tuple[Grouper, bool]] = {
    "groups, held blobs (issue 15)": (_agglomerative, True),
    "groups, blobs deleted at once": (_agglomerative, False),
    "union-find (before)": (_union_find, False)}


def replay_orders(specs: list[CorpusClip], prints: dict[str, Fingerprint],
                  quality: dict[str, ClipQuality], rule: dict[str, Any], orders: int,
                  rng: random.Random, grouping: Grouper, hold: bool,
                  pair_fn: Callable[..., list[Pair]] = match_pairs) -> dict[str, Any]:
    """The dedup stage's grouping replayed for random arrival orders and batch splits: after each
    batch every fingerprinted clip takes part, the best blob holder of each group is kept and the
    others become duplicates: they lose their blob at once, or (`hold`) only when the goal is
    over, after the last batch. Exact: the kept set is the best copy of each distinct clip. Lost: a
    distinct clip none of whose copies is kept (merged into another: the error that matters).
    `pair_fn(prints, **rule)` finds the matching pairs (an experimental matcher can stand in)."""
    scored = [s for s in specs if s.scored]  # portrait/pillarbox copies: filtered before dedup
    goals = sorted({_goal(s.name) for s in scored})
    if len(goals) > 1:  # dedup is scoped per goal: replay each goal's clips on their own
        parts = [replay_orders([s for s in scored if _goal(s.name) == g], prints, quality,
                               rule, orders, rng, grouping, hold, pair_fn) for g in goals]
        return {"orders": orders * len(parts), **{k: sum(p[k] for p in parts) for k in
                                                  ("exact", "orders_losing_a_clip", "clips_lost")},
                "exact_share": round(sum(p["exact"] for p in parts) / (orders * len(parts)), 4),
                "max_extra_copies": max(p["max_extra_copies"] for p in parts),
                "examples_wrong": [w for p in parts for w in p["examples_wrong"]][:3]}
    labels = {s.name: s.label for s in scored}
    best = {lab: pick_best([quality[s.name] for s in scored if s.label == lab]).clip_id
            for lab in set(labels.values())}
    names = [s.name for s in scored]
    # matches are pure functions of two fingerprints: compute once, replay the orders over them
    edges = {(names[i], names[j]): m for i, j, m in pair_fn([prints[n] for n in names], **rule)}
    exact = lost_orders = lost_total = 0
    extra_max = 0
    wrong: list[str] = []
    for _ in range(orders):
        order = names[:]
        rng.shuffle(order)
        cuts = sorted(rng.sample(range(1, len(order)), rng.randint(0, min(6, len(order) - 1))))
        arrived: list[str] = []
        holders: set[str] = set()
        kept: set[str] = set()
        for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
            arrived += order[lo:hi]
            holders |= set(order[lo:hi])
            kept = set()
            idx = {n: i for i, n in enumerate(arrived)}
            local: list[Pair] = []
            for (a, b), m in edges.items():
                if a in idx and b in idx:
                    i, j = idx[a], idx[b]
                    local.append((i, j, m) if i < j else (j, i, dataclasses.replace(m, offset_s=-m.offset_s)))
            for group in grouping(arrived, local, [quality[n] for n in arrived],
                                  rule["max_hamming"]):
                members = [arrived[i] for i in group if arrived[i] in holders]
                if members:
                    win = pick_best([quality[m] for m in members]).clip_id
                    kept.add(win)
                    if not hold:
                        holders -= set(members) - {win}
        holders = kept  # the goal is over: held duplicates release their blobs
        lost = {lab for lab in best if not any(labels[h] == lab for h in holders)}
        lost_total += len(lost)
        lost_orders += bool(lost)
        extra_max = max(extra_max, len(holders) - len(best) + len(lost))
        if holders == set(best.values()):
            exact += 1
        elif len(wrong) < 3:
            wrong.append(f"kept {sorted(holders - set(best.values()))} "
                         f"lost {sorted(set(best.values()) - holders)}")
    return {"orders": orders, "exact": exact, "exact_share": round(exact / orders, 4),
            "orders_losing_a_clip": lost_orders, "clips_lost": lost_total,
            "max_extra_copies": extra_max, "examples_wrong": wrong}


def _goal(name: str) -> str:
    """The goal a corpus file belongs to: g0_hd (A) and g0r1_hd (B) are both goal g0."""
    return re.match(r"g\d+", name).group()  # type: ignore[union-attr]


def per_transform(specs: list[CorpusClip], prints: dict[str, Fingerprint], rule: dict[str, Any]
                  ) -> dict[str, float]:
    """Recall of each kind of copy against the other copies of its clip."""
    hit: dict[str, list[int]] = {}
    for a, b in itertools.combinations(specs, 2):
        if a.label != b.label or not (a.scored and b.scored):
            continue
        found = compare(prints[a.name], prints[b.name], **rule) is not None
        for s in (a, b):
            hit.setdefault(s.name.split("_", 1)[1], []).append(found)
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(hit.items())}


def qualities(specs: list[CorpusClip], paths: dict[str, Path]) -> dict[str, ClipQuality]:
    """What `pick_best` judges each file on, as the stage would record it."""
    out = {}
    for s in specs:
        info = probe(str(paths[s.name]))
        out[s.name] = ClipQuality(clip_id=s.name, duration_s=info.duration_s, width=info.width,
                                  height=info.height,
                                  bitrate_bps=info.size_bytes * 8 / info.duration_s,
                                  stored_at=STORED_AT)
    return out


def evaluate(specs: list[CorpusClip], paths: dict[str, Path], rule: dict[str, Any],
             orders: int, seed: int) -> dict[str, Any]:
    """Every figure for one corpus at one rule."""
    c0 = _cpu()
    prints = {s.name: fingerprint(str(paths[s.name]), sample_fps=rule_fps(rule)) for s in specs}
    fp_cpu = _cpu() - c0
    video_s = sum(probe(str(paths[s.name])).duration_s for s in specs)
    match_rule = {k: v for k, v in rule.items() if k != "reference_fps"}
    quality = qualities(specs, paths)
    c0 = _cpu()
    at_rule = pairwise(specs, prints, **match_rule)
    compare_cpu = _cpu() - c0
    return {
        "clips": len(specs), "pairs": len(specs) * (len(specs) - 1) // 2,
        "video_s": round(video_s, 1),
        "pairwise": at_rule,
        "pairwise_no_mirror": pairwise(specs, prints, **{**match_rule, "mirrored": False}),
        "across_goals": pairwise(specs, prints, across_goals=True, **match_rule),
        "pairwise_no_speed_ramp": pairwise([s for s in specs if not s.name.endswith("_slowmo")],
                                           prints, **match_rule),
        "per_transform_recall": per_transform(specs, prints, match_rule),
        "grouped": {name: replay_orders(specs, prints, quality, match_rule, orders,
                                        random.Random(seed), grouping, hold)
                    for name, (grouping, hold) in GROUPINGS.items()},
        "crop_step": with_crops(specs, prints, quality, match_rule, orders, seed),
        "cpu_s": {"fingerprint": round(fp_cpu, 2), "video_s_per_cpu_s": round(video_s / fp_cpu, 1),
                  "compare_all_pairs": round(compare_cpu, 3)},
        "prints": prints,
    }


def crop_finder(prints: dict[str, Fingerprint], quality: dict[str, ClipQuality]
                ) -> Callable[..., list[Pair]]:
    """The pairs the dedup stage ends with (`compare`, then the crop step), as a pair finder."""
    name_of = {id(fp): n for n, fp in prints.items()}

    def pairs(ps: list[Fingerprint], **rule: Any) -> list[Pair]:
        names = [name_of[id(fp)] for fp in ps]
        return match_and_group(names, ps, [quality[n] for n in names], crops=True, **rule)[0]
    return pairs


def with_crops(specs: list[CorpusClip], prints: dict[str, Fingerprint],
               quality: dict[str, ClipQuality], rule: dict[str, Any], orders: int,
               seed: int) -> dict[str, Any]:
    """Pairwise and grouped figures with the crop step, which depends on a goal's whole set."""
    finder = crop_finder(prints, quality)
    hits: set[tuple[int, int]] = set()
    c0 = _cpu()
    for goal in sorted({_goal(s.name) for s in specs}):
        ps = [prints[s.name] for s in specs if _goal(s.name) == goal]
        hits |= {(id(ps[i]), id(ps[j])) for i, j, _ in finder(ps, **rule)}
    cpu_s = _cpu() - c0

    def found(a: Fingerprint, b: Fingerprint, **_: Any) -> bool:
        return (id(a), id(b)) in hits or (id(b), id(a)) in hits
    return {"pairwise": pairwise(specs, prints, matcher=found),
            "grouped": replay_orders(specs, prints, quality, rule, orders, random.Random(seed),
                                     _agglomerative, True, finder),
            "cpu_s_all_goals": round(cpu_s, 2)}


def rule_fps(rule: dict[str, Any]) -> float:
    return float(rule["reference_fps"])


DEFAULT_CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "footyd-dedup-corpus"


def default_rule() -> dict[str, Any]:
    """The shipped dedup defaults, with the rate fingerprints are taken at."""
    dc = Config().dedup
    return {"reference_fps": dc.reference_fps, "max_hamming": dc.max_hamming,
            "min_consecutive": dc.min_consecutive, "min_match_s": dc.min_match_s,
            "min_match_ratio": dc.min_match_ratio, "min_match_coverage": dc.min_match_coverage,
            "mirrored": dc.match_mirrored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--goals", type=int, default=4, help="corpus A goals")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--b-goals", type=int, default=2, help="corpus B goals")
    ap.add_argument("--b-replays", type=int, default=4, help="corpus B distinct replays per goal")
    ap.add_argument("--fresh-goals", type=int, default=2,
                    help="B's generator, the goals after B's: a draw no choice was made on")
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rule = default_rule()
    t = time.monotonic()
    specs_a = corpus_specs(goals=args.goals, seconds=args.seconds, scale=args.scale)
    paths_a = build_corpus(args.cache / "a", specs_a)
    specs_b = corpus_b_specs(goals=args.b_goals, replays=args.b_replays, seconds=args.seconds,
                             scale=args.scale)
    paths_b = build_corpus_b(args.cache / "b", specs_b)
    specs_f = corpus_b_specs(goals=args.b_goals + args.fresh_goals, replays=args.b_replays,
                             seconds=args.seconds, scale=args.scale)[len(specs_b):]
    paths_f = build_corpus_b(args.cache / "b", specs_f)
    print(f"corpora: {len(specs_a)} + {len(specs_b)} + {len(specs_f)} clips ready in "
          f"{time.monotonic() - t:.0f}s", file=sys.stderr)
    a = evaluate(specs_a, paths_a, rule, args.orders, args.seed)
    b = evaluate(specs_b, paths_b, rule, args.orders, args.seed)
    fresh = evaluate(specs_f, paths_f, rule, args.orders, args.seed) if specs_f else None
    match_rule = {k: v for k, v in rule.items() if k not in ("reference_fps", "max_hamming",
                                                             "min_match_ratio", "min_match_coverage")}
    # the sweep that chose the defaults: corpus A only (B is held out)
    sweep = [{"max_hamming": mh, "min_match_ratio": r, "min_match_coverage": cov,
              **{k: v for k, v in pairwise(specs_a, a["prints"], max_hamming=mh, min_match_ratio=r,
                                           min_match_coverage=cov, **match_rule).items()
                 if k in ("precision", "recall", "fp", "fn")}}
             for mh in SWEEP_HAMMING for r in SWEEP_RATIO for cov in SWEEP_COVERAGE]
    per_goal = [s for s in specs_a if s.name.startswith("g0_")]
    goal_rule = {k: v for k, v in rule.items() if k != "reference_fps"}
    one_goal = [a["prints"][s.name] for s in per_goal]
    c0 = _cpu()
    match_pairs(one_goal, **{**goal_rule, "mirrored": False})
    goal_compare_plain_ms = (_cpu() - c0) * 1000
    c0 = _cpu()
    match_pairs(one_goal, **goal_rule)
    goal_compare_ms = (_cpu() - c0) * 1000
    for r in (a, b, fresh):
        if r is not None:
            del r["prints"]
    result = {"defaults": rule, "seconds": args.seconds, "scale": args.scale,
              "corpus_a": {"goals": args.goals, **a}, "corpus_b": {"goals": args.b_goals,
                                                                    "replays": args.b_replays, **b},
              "corpus_b_fresh": fresh and {"goals": args.fresh_goals, **fresh},
              "compare_one_goal_ms": round(goal_compare_ms, 1),
              "compare_one_goal_no_mirror_ms": round(goal_compare_plain_ms, 1),
              "one_goal_clips": len(per_goal),
              "sweep_a": sweep}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedup_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "dedup_quality.md").write_text(_markdown(result))
    print(_markdown(result))


def _row(name: str, r: dict[str, Any]) -> list[str]:
    p, q = r["pairwise"], r["pairwise_no_mirror"]
    g, c = r["grouped"], r["crop_step"]
    return [
        f"| {name}: clips / pairs | {r['clips']} / {r['pairs']} |",
        f"| {name}: pairwise precision / recall within goals | {p['precision']} / {p['recall']} "
        f"({p['fp']} false, {p['fn']} missed) |",
        f"| {name}: same without mirror matching | {q['precision']} / {q['recall']} |",
        f"| {name}: same without the speed-ramped copies | {r['pairwise_no_speed_ramp']['precision']} / "
        f"{r['pairwise_no_speed_ramp']['recall']} |",
        f"| {name}: pairs of different goals matched (dedup never compares them) | "
        f"{r['across_goals']['fp']} |",
        *[f"| {name}: arrival orders exact, {k} | {v['exact']}/{v['orders']} (orders losing a clip: "
          f"{v['orders_losing_a_clip']}, most extra copies: {v['max_extra_copies']}) |" for k, v in g.items()],
        f"| {name}: **with the crop step (shipped)**: pairwise precision / recall | "
        f"{c['pairwise']['precision']} / {c['pairwise']['recall']} ({c['pairwise']['fp']} false, "
        f"{c['pairwise']['fn']} missed) |",
        f"| {name}: with the crop step: arrival orders exact, groups, held blobs | "
        f"{c['grouped']['exact']}/{c['grouped']['orders']} (orders losing a clip: "
        f"{c['grouped']['orders_losing_a_clip']}, most extra copies: "
        f"{c['grouped']['max_extra_copies']}) |",
        f"| {name}: matching and grouping every goal, with the crop step | "
        f"{c['cpu_s_all_goals']} CPU-s (compare alone, all pairs of all goals: "
        f"{r['cpu_s']['compare_all_pairs']} CPU-s) |",
        f"| {name}: fingerprint | {r['cpu_s']['video_s_per_cpu_s']} s of video per CPU-s |",
        f"| {name}: recall per copy kind | {', '.join(f'{k} {v}' for k, v in r['per_transform_recall'].items())} |",
    ]


def _markdown(r: dict[str, Any]) -> str:
    a, b = r["corpus_a"], r["corpus_b"]
    lines = [
        "# Dedup quality",
        "",
        f"Corpus A (`footyd/sim/corpus.py`, OpenCV drawing + PyAV x264; the tuning set): {a['goals']} goals of "
        "one match x 21 files: HD, 480p, low-bitrate 360p, 1 s and 0.4 s trims, cut start+end, watermark, "
        "two crop+watermark+trim+low-bitrate combos, two off-centre crop combos (one between the crop "
        "windows), a speed-ramped slow motion, "
        "another camera angle (+ a re-post), the main camera at later moments (a tight shot + a re-post, "
        "another tight shot, two wide shots: distinct clips), portrait and 4:3 pillarbox (not scored for "
        "recall).",
        "",
        f"Corpus B (`footyd/sim/corpus_lavfi.py`, ffmpeg filters + the ffmpeg binary's x264; held out, never "
        f"used to choose a threshold): {b['goals']} goals x {b['replays']} distinct replays of each goal from "
        "one broadcast (same pitch, kits, score bug, logo; another camera or the same camera at another "
        "moment) x 15 copies: HD, SD, low-bitrate 360p, crf-40 360p, trims, end cut, cut, a banner "
        "overlay, two crop+watermark+trim+low-bitrate combos (one off-centre), pillarbox and portrait (not "
        "scored for recall), a speed-ramped slow motion and a mirrored copy.",
        "",
        "B fresh: B's generator, the goals after B's (their action drawn from other seeds), first "
        "rendered on 2026-12-05 after every choice now shipped: B was studied to find its last "
        "failures, this draw never was.",
        "",
        f"Clips {r['seconds']:g} s, scale {r['scale']:g}. Defaults {r['defaults']}; comparing one goal's "
        f"{r['one_goal_clips']} clips: {r['compare_one_goal_ms']} ms "
        f"({r['compare_one_goal_no_mirror_ms']} ms without mirror matching).",
        "",
        "| measure | value |",
        "|---|---|",
        *_row("A", a),
        *_row("B", b),
        *(_row("B fresh", r["corpus_b_fresh"]) if r.get("corpus_b_fresh") else []),
        "",
        "Threshold sweep on A (max_hamming x min_match_ratio x min_match_coverage, other keys at defaults):",
        "",
        "| max_hamming | min_match_ratio | min_match_coverage | precision | recall | fp | fn |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {s['max_hamming']} | {s['min_match_ratio']} | {s['min_match_coverage']} | {s['precision']} | "
              f"{s['recall']} | {s['fp']} | {s['fn']} |" for s in r["sweep_a"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
