"""The dedup stage's pure rules: which copy is best, the group representative, matching and
grouping in the pool, and the evidence stored on each duplicate (no I/O here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from footyd.media.crop import crop_pairs
from footyd.media.fingerprint import Fingerprint
from footyd.media.groups import Grouping, Pair, group_clips, match_pairs
from footyd.records import CLIP_KEPT

DURATION_TOLERANCE = 0.15  # durations within 15% of the longest compete on quality
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ClipQuality:
    """What the best-of rule looks at for one clip."""

    clip_id: str
    duration_s: float
    width: int
    height: int
    bitrate_bps: float
    stored_at: datetime
    kept: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ClipQuality:
        """Read the fields download stored (missing numbers count as 0)."""
        return cls(clip_id=str(doc["_id"]), duration_s=float(doc.get("duration_s") or 0.0),
                   width=int(doc.get("width") or 0), height=int(doc.get("height") or 0),
                   bitrate_bps=float(doc.get("bitrate_bps") or 0.0),
                   stored_at=doc.get("stored_at") or datetime.max.replace(tzinfo=UTC),
                   kept=doc.get("state") == CLIP_KEPT)


def pick_best(clips: Sequence[ClipQuality]) -> ClipQuality:
    """Among clips within 15% of the longest: highest resolution, then bitrate; ties keep the
    already kept, then the earlier stored clip (a total order, so any group has one answer)."""
    if not clips:
        raise ValueError("pick_best needs at least one clip")
    longest = max(c.duration_s for c in clips)
    contenders = [c for c in clips if c.duration_s >= longest * (1 - DURATION_TOLERANCE)]
    return min(contenders, key=lambda c: (-c.pixels, -c.bitrate_bps, not c.kept, c.stored_at,
                                          c.clip_id))


def representative(qualities: Sequence[ClipQuality]) -> Callable[[Sequence[int]], int]:
    """For grouping: the copy `pick_best` would keep among members, judged on quality alone
    (never on which is kept now or arrived first, so grouping cannot depend on arrival order)."""
    neutral = [dataclasses.replace(q, kept=False, stored_at=_EPOCH) for q in qualities]

    def best(members: Sequence[int]) -> int:
        chosen = pick_best([neutral[m] for m in members]).clip_id
        return next(m for m in members if neutral[m].clip_id == chosen)

    return best


def group_goal(keys: Sequence[str], pairs: Sequence[Pair], qualities: Sequence[ClipQuality], *,
               max_hamming: int) -> Grouping:
    """A goal's groups from its matching pairs, each kept copy judged on quality alone."""
    return group_clips(keys, pairs, representative=representative(qualities),
                       durations_s=[q.duration_s for q in qualities], max_hamming=max_hamming)


def match_and_group(keys: Sequence[str], prints: Sequence[Fingerprint],
                    qualities: Sequence[ClipQuality], *, max_hamming: int, min_consecutive: int,
                    min_match_s: float, min_match_ratio: float, min_match_coverage: float,
                    mirrored: bool = False, crops: bool = False) -> tuple[list[Pair], Grouping]:
    """Every matching pair and the goal's groups (pure: runs in the process pool); with
    `crops`, the crop step's pairs too (`media/crop.py`) and the groups made again with them."""
    if len(prints) < 2:
        return [], group_goal(keys, [], qualities, max_hamming=max_hamming)
    pairs = match_pairs(prints, max_hamming=max_hamming, min_consecutive=min_consecutive,
                        min_match_s=min_match_s, min_match_ratio=min_match_ratio,
                        min_match_coverage=min_match_coverage, mirrored=mirrored)
    grouping = group_goal(keys, pairs, qualities, max_hamming=max_hamming)
    if not crops:
        return pairs, grouping
    found = crop_pairs(prints, grouping, pairs, representative(qualities),
                       min_consecutive=min_consecutive, min_match_s=min_match_s,
                       min_match_coverage=min_match_coverage)
    if not found:
        return pairs, grouping
    pairs = sorted([*pairs, *found], key=lambda p: (p[0], p[1]))
    return pairs, group_goal(keys, pairs, qualities, max_hamming=max_hamming)


def loss_reason(winner: ClipQuality, loser: ClipQuality) -> str:
    """Why `loser` lost to `winner` under `pick_best`."""
    if loser.duration_s < winner.duration_s * (1 - DURATION_TOLERANCE):
        return "shorter"
    if loser.pixels != winner.pixels:
        return "lower resolution" if loser.pixels < winner.pixels else "dropped by an earlier run"
    if loser.bitrate_bps != winner.bitrate_bps:
        return "lower bitrate" if loser.bitrate_bps < winner.bitrate_bps else "dropped by an earlier run"
    return "equal quality, kept the earlier copy"


class Evidence:
    """Why a clip was judged a copy of its group's kept clip (stored as `dedup_evidence`)."""

    def __init__(self, keys: Sequence[str], pairs: Sequence[Pair], grouping: Grouping) -> None:
        self._index = {k: i for i, k in enumerate(keys)}
        self._keys = keys
        self._edges = {(i, j): m for i, j, m in pairs} | {
            (j, i): dataclasses.replace(m, offset_s=-m.offset_s, ramp_s=-m.ramp_s)
            for i, j, m in pairs}
        self._grouping = grouping

    def of(self, loser_id: str, winner_id: str) -> dict[str, Any]:
        """The matched pair behind the decision: direct with the kept clip, else the loser's
        closest match inside the group (`via`); the rule that joined them; the offset."""
        i, j = self._index[loser_id], self._index[winner_id]
        g = self._grouping
        merge = g.joined_by(i, j)
        doc: dict[str, Any] = {"kept": winner_id, "rule": merge.rule if merge else "same_group",
                               "group_support": round(merge.support, 3) if merge else None,
                               # time in the kept clip = time in this clip + offset_s
                               "offset_s": round(g.position_s[i] - g.position_s[j], 2)}
        direct = self._edges.get((j, i))
        if direct is None:
            group = next(m for m in g.groups if i in m)
            near = [(self._edges[i, k].mean_distance, self._keys[k]) for k in group
                    if (i, k) in self._edges]
            if near:
                _, via = min(near)
                direct = self._edges[i, self._index[via]]
                doc["via"] = via
        if direct is not None:
            doc.update(matched_s=round(direct.matched_s, 2), ratio=round(direct.ratio, 3),
                       mean_distance=round(direct.mean_distance, 2),
                       run_s=round(direct.run_length / direct.sample_fps, 2)
                       if direct.sample_fps else None, mirrored=direct.mirrored)
            if direct.ramp_s:  # matched at two offsets around this much slowed time
                doc["ramp_s"] = round(direct.ramp_s, 2)
            if direct.crop_window:  # one of the two seen through a crop window
                doc["crop_window"] = True
        return doc
