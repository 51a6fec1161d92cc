"""`footyd explain GOAL_ID`: a goal's clip groups and the evidence behind each dedup decision.

Read-only. Groups come from the stored state (kept clips and the duplicates pointing at them,
each with its `dedup_evidence`); for kept clips judged different, their stored fingerprints are
compared again with no threshold to show how close they came and which rule kept them apart.
"""

from __future__ import annotations

import itertools
from typing import Any

from footyd.clients.store import Store
from footyd.config import DedupConfig
from footyd.media.crop import window_match
from footyd.media.fingerprint import Fingerprint, compare, nearest
from footyd.media.groups import KEPT_COVER
from footyd.records import CLIP_DUPLICATE, CLIP_KEPT


def _print_of(doc: dict[str, Any]) -> Fingerprint | None:
    try:
        return Fingerprint.from_doc(doc["fingerprint"]) if doc.get("fingerprint") else None
    except (ValueError, KeyError, TypeError):
        return None


def _clip(doc: dict[str, Any]) -> dict[str, Any]:
    return {"clip_id": doc["_id"], "state": doc.get("state"), "source": doc.get("source"),
            "width": doc.get("width"), "height": doc.get("height"),
            "duration_s": doc.get("duration_s"), "post_url": doc.get("post_url"),
            "reason": doc.get("reason")}


def near_miss(a: Fingerprint, b: Fingerprint, dc: DedupConfig) -> dict[str, Any]:
    """How close two clips came to matching, and which of the match rule's checks failed."""
    if compare(a, b, max_hamming=dc.max_hamming, min_consecutive=dc.min_consecutive,
               min_match_s=dc.min_match_s, min_match_ratio=dc.min_match_ratio,
               min_match_coverage=dc.min_match_coverage, mirrored=dc.match_mirrored
               ) is not None or (dc.match_crops and window_match(
                   a, b, min_consecutive=dc.min_consecutive, min_match_s=dc.min_match_s,
                   min_match_coverage=dc.min_match_coverage) is not None):
        # two kept copies that match would join under "kept copies match": only the cover
        # check refuses that (see media/groups.py)
        return {"pair_matches": True, "failed": [
            "group rule: joined, a kept copy would overlap one of the clips for less than "
            f"{KEPT_COVER:g} of the shorter (cover check)"]}
    m = nearest(a, b, max_hamming=dc.max_hamming, mirrored=dc.match_mirrored)
    if m is None:
        return {"pair_matches": False, "failed": ["no sample within max_hamming at any offset"]}
    shorter = min(len(a.hashes), len(b.hashes)) / m.sample_fps
    failed = []
    if m.matched_s < dc.min_match_s:
        failed.append(f"min_match_s {dc.min_match_s:g}")
    if m.ratio < dc.min_match_ratio:
        failed.append(f"min_match_ratio {dc.min_match_ratio:g}")
    if m.matched_s < dc.min_match_coverage * shorter - 1e-9:
        failed.append(f"min_match_coverage {dc.min_match_coverage:g}")
    if m.run_length < dc.min_consecutive:
        failed.append(f"min_consecutive {dc.min_consecutive}")
    return {"pair_matches": False, "offset_s": round(m.offset_s, 2),
            "matched_s": round(m.matched_s, 2), "ratio": round(m.ratio, 3),
            "coverage": round(m.matched_s / shorter, 3) if shorter else 0.0,
            "mean_distance": round(m.mean_distance, 2),
            "run_s": round(m.run_length / m.sample_fps, 2), "mirrored": m.mirrored,
            "failed": failed or ["the best offset differs from the one each check passes at"]}


async def explain_report(store: Store, dc: DedupConfig, goal_id: str) -> dict[str, Any] | None:
    """Groups (kept clip, duplicates with evidence), near misses between kept clips, the rest."""
    goal = await store.goals.find_one({"_id": goal_id}, {"raw": 0})
    if goal is None:
        return None
    docs = await store.clips.find({"goal_id": goal_id}, {"raw": 0}).sort(
        [("stored_at", 1), ("_id", 1)]).to_list(None)
    kept = [d for d in docs if d.get("state") == CLIP_KEPT]
    kept_ids = {d["_id"] for d in kept}
    groups: list[dict[str, Any]] = []
    for k in kept:
        dups: list[dict[str, Any]] = [{**_clip(d), "evidence": d.get("dedup_evidence")} for d in docs
                if d.get("state") == CLIP_DUPLICATE and d.get("duplicate_of") == k["_id"]]
        groups.append({"kept": {**_clip(k), "dedup_excluded": k.get("dedup_excluded")},
                       "duplicates": dups})
    misses = []
    for a, b in itertools.combinations(kept, 2):
        pa, pb = _print_of(a), _print_of(b)
        if pa is None or pb is None:
            continue
        misses.append({"a": a["_id"], "b": b["_id"], **near_miss(pa, pb, dc)})
    others = [_clip(d) for d in docs if d.get("state") != CLIP_KEPT and not (
        d.get("state") == CLIP_DUPLICATE and d.get("duplicate_of") in kept_ids)]
    return {"goal": {"goal_id": goal_id, "state": goal.get("state"), "player": goal.get("scorer_name"),
                     "minute": goal.get("minute"), "fixture_id": goal.get("fixture_id")},
            "groups": groups, "judged_different": misses, "other_clips": others}


def _size(c: dict[str, Any]) -> str:
    dur = c.get("duration_s")
    return (f"{c.get('width') or '?'}x{c.get('height') or '?'}, "
            f"{f'{dur:.1f} s' if isinstance(dur, int | float) else '? s'}, {c.get('source') or '?'}")


def _evidence(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "no evidence stored (deduplicated by an older footyd)"
    parts = [f"offset {ev.get('offset_s', 0):+.1f} s"]
    if "matched_s" in ev:
        parts.append(f"{ev['matched_s']:g} s matched (ratio {ev.get('ratio')}, mean distance "
                     f"{ev.get('mean_distance')} bits, longest run {ev.get('run_s')} s)")
    if ev.get("via"):
        parts.append(f"via {ev['via']}")
    if ev.get("mirrored"):
        parts.append("mirrored")
    if ev.get("ramp_s"):
        parts.append(f"at two offsets around {abs(ev['ramp_s']):g} s of slow motion")
    if ev.get("crop_window"):
        parts.append("one seen through a crop window")
    support = ev.get("group_support")
    parts.append(f"rule {ev.get('rule')}" + (f" (group support {support:g})" if support is not None
                                              else ""))
    return ", ".join(parts)


def render(report: dict[str, Any]) -> str:
    """The report as text an operator reads top to bottom."""
    g = report["goal"]
    lines = [f"goal {g['goal_id']}: {g.get('player') or '?'} {g.get('minute') or '?'}' "
             f"({g.get('state')})"]
    if not report["groups"]:
        lines.append("no kept clips")
    for n, group in enumerate(report["groups"], 1):
        k = group["kept"]
        lines.append(f"group {n}: kept {k['clip_id']} ({_size(k)})"
                     + (f" without dedup: {k['dedup_excluded']}" if k.get("dedup_excluded") else ""))
        for d in group["duplicates"]:
            lines.append(f"  duplicate {d['clip_id']} ({_size(d)}): {_evidence(d['evidence'])}")
    if report["judged_different"]:
        lines.append("kept clips judged different:")
    for m in report["judged_different"]:
        if "matched_s" in m:
            close = (f"closest at offset {m['offset_s']:+.1f} s: {m['matched_s']:g} s matched, "
                     f"ratio {m['ratio']}, coverage {m['coverage']}, mean distance "
                     f"{m['mean_distance']} bits, longest run {m['run_s']} s")
        else:
            close = "the pair matches" if m["pair_matches"] else "nothing in common"
        lines.append(f"  {m['a']} vs {m['b']}: {close}; kept apart by {'; '.join(m['failed'])}")
    if report["other_clips"]:
        lines.append("other clips:")
    for c in report["other_clips"]:
        lines.append(f"  {c['clip_id']} {c['state']}: {c.get('reason') or ''}".rstrip())
    return "\n".join(lines)
