"""Grouping of a goal's clips by fingerprint: all matching pairs, then groups one false pair
cannot collapse (pure).

The rule. Groups grow by agglomeration, the most similar pair of groups first. Two groups G and
H merge only on evidence about them as wholes:

- **kept copies match**: the best copy of G (the one dedup would keep) matches the best copy
  of H; or
- **most members match**: more than half of all G x H pairs match.

Either way the offsets must agree: every member has a position in its group's time frame, each
cross pair implies an offset between the two frames, and only pairs within OFFSET_TOL_S of the
deciding offset count as support. That offset is the one most cross pairs agree with (on a tie
the kept copies' pair, else the median): a speed-ramped copy matches at the offset of either of
its pieces, so when it is a kept copy, the kept copies' pair alone can put a family of copies a
second off in the frame, and every later copy then agrees with only half the group. And the
merged group's kept copy must show what each member shows: every member's span in the frame
overlaps the kept copy's for at least KEPT_COVER of the shorter of the two. Merge candidates are
ranked by the evidence of their supporting pairs, strongest first: per pair, the matched seconds
weighted by how close they were (1 at 0 bits, 0 past `max_hamming`), averaged (then support,
clip ids).

Why. Single-link (union-find) turns ONE wrong pair into the merge of two whole groups, and a
merge is the worst error dedup can make: every copy of one replay is marked a duplicate of
another and the fan never sees it. Wrong pairs happen between degraded copies of different
replays of one broadcast (same pitch, score bug and logo): a crop + watermark + low-bitrate copy
of one against an end cut of the other, mean distance near the threshold. Such a pair is weak:
each of its clips matches copies of its own replay longer and more closely, so ranking by
evidence settles it into its own group first, and the two replays' groups then share one or two pairs
out of dozens and their best (cleanest) copies do not match. Heavy re-encodes match the clean
best copy better than they match each other, so "kept copies match" keeps them joining. The
cover check stops a chain through a middle copy: a late-moment clip that matches only the middle
of a trimmed copy would otherwise become the duplicate of a kept copy sharing no frame with it,
and the moments only it shows would be lost. Evidence (matched samples and distance together)
ranks a long close match above a short one that is a fraction of a bit closer: distances alone
are within noise of each other for copies of one degraded source.

Deterministic and independent of arrival order: the result depends only on the set of clips,
their pairs and `keys` (ties break on keys, never on list position), given a `representative`
that does not depend on order either.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from footyd.media.fingerprint import Fingerprint, MatchResult, compare

OFFSET_TOL_S = 0.6  # three samples at 5/s: fractional trims and jitter move an offset this much
KEPT_COVER = 0.5  # as a pair's own coverage rule: a copy is mostly contained in the other
KEPT_COPIES = "kept_copies_match"
MOST_MEMBERS = "most_members_match"

Pair = tuple[int, int, MatchResult]


def match_pairs(prints: Sequence[Fingerprint], *, max_hamming: int, min_consecutive: int,
                min_match_s: float, min_match_ratio: float, min_match_coverage: float,
                mirrored: bool = False) -> list[Pair]:
    """Every matching pair (i, j, match) with i < j: all pairs, never stopping at the first."""
    found = []
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            m = compare(prints[i], prints[j], max_hamming=max_hamming,
                        min_consecutive=min_consecutive, min_match_s=min_match_s,
                        min_match_ratio=min_match_ratio, min_match_coverage=min_match_coverage,
                        mirrored=mirrored)
            if m is not None:
                found.append((i, j, m))
    return found


@dataclass(frozen=True)
class Merge:
    """Two groups that became one, and the rule that allowed it."""

    left: frozenset[int]
    right: frozenset[int]
    rule: str
    support: float  # share of cross pairs that matched at the agreed offset


@dataclass(frozen=True)
class Grouping:
    """Groups (sorted members, ordered by smallest member), each member's position in its
    group's time frame (time in frame = time in clip + position_s), and the merges made."""

    groups: list[list[int]]
    position_s: dict[int, float] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)

    def joined_by(self, a: int, b: int) -> Merge | None:
        """The merge that brought `a` and `b` together (None if they are apart)."""
        for m in self.merges:
            if (a in m.left and b in m.right) or (b in m.left and a in m.right):
                return m
        return None


@dataclass
class _Group:
    members: list[int]
    pos: dict[int, float]
    rep: int


@dataclass(frozen=True)
class _Rules:
    keys: Sequence[str]
    representative: Callable[[Sequence[int]], int]
    durations_s: Sequence[float] | None
    max_hamming: int
    tol_s: float


@dataclass(frozen=True)
class _Candidate:
    rank: tuple[float, float, str, str]  # the smallest ranks merge first
    rule: str
    delta_s: float
    support: float


def group_clips(keys: Sequence[str], pairs: Sequence[Pair], *,
                representative: Callable[[Sequence[int]], int],
                durations_s: Sequence[float] | None = None, max_hamming: int = 10,
                offset_tol_s: float = OFFSET_TOL_S) -> Grouping:
    """Group items 0..len(keys)-1 by the rule above; `representative(members)` names the copy
    dedup would keep among them; without `durations_s` the cover check is skipped."""
    rules = _Rules(keys, representative, durations_s, max_hamming, offset_tol_s)
    edges: dict[tuple[int, int], MatchResult] = {(i, j): m for i, j, m in pairs}
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(keys))}
    for i, j, _ in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)
    groups = {i: _Group([i], {i: 0.0}, i) for i in range(len(keys))}
    home = list(range(len(keys)))  # item -> id of its group
    cands: dict[tuple[int, int], _Candidate] = {}

    def consider(gid: int) -> None:
        others = {home[n] for m in groups[gid].members for n in neighbours[m]} - {gid}
        for oid in others:
            g, h = (gid, oid) if gid < oid else (oid, gid)
            cand = _evaluate(groups[g], groups[h], edges, rules)
            if cand is not None:
                cands[g, h] = cand

    for gid in list(groups):
        consider(gid)
    merges: list[Merge] = []
    next_id = len(keys)
    while cands:
        (gi, hi), cand = min(cands.items(), key=lambda kv: kv[1].rank)
        g, h = groups.pop(gi), groups.pop(hi)
        merges.append(Merge(frozenset(g.members), frozenset(h.members), cand.rule, cand.support))
        for key in [k for k in cands if gi in k or hi in k]:
            del cands[key]
        # H's frame moves onto G's: t_G = t_H + delta
        pos = {**g.pos, **{m: p + cand.delta_s for m, p in h.pos.items()}}
        members = sorted(g.members + h.members)
        groups[next_id] = _Group(members, pos, representative(members))
        for m in members:
            home[m] = next_id
        consider(next_id)
        next_id += 1
    ordered = sorted(groups.values(), key=lambda x: x.members[0])
    positions = {m: p for x in ordered for m, p in x.pos.items()}
    return Grouping([x.members for x in ordered], positions, merges)


def _edge(edges: dict[tuple[int, int], MatchResult], a: int, b: int) -> float | None:
    """Offset of b's clip in a's (time in a = time in b + offset), if they match."""
    if (a, b) in edges:
        return edges[a, b].offset_s
    if (b, a) in edges:
        return -edges[b, a].offset_s
    return None


def _evidence(edges: dict[tuple[int, int], MatchResult], a: int, b: int,
              max_hamming: int) -> float:
    m = edges.get((a, b)) or edges[b, a]
    return m.matched / m.sample_fps * max(0.0, 1.0 - m.mean_distance / (max_hamming + 1))


def _covered(members: Sequence[int], pos: dict[int, float], rep: int,
             durations_s: Sequence[float]) -> bool:
    """Whether the kept copy `rep` overlaps every member for KEPT_COVER of the shorter one
    (a duration not above 0 is unknown and not checked)."""
    if durations_s[rep] <= 0:
        return True
    lo, hi = pos[rep], pos[rep] + durations_s[rep]
    for m in members:
        if durations_s[m] <= 0:
            continue
        start, end = pos[m], pos[m] + durations_s[m]
        shorter = min(durations_s[m], durations_s[rep])
        if min(hi, end) - max(lo, start) < KEPT_COVER * shorter - 1e-9:
            return False
    return True


def _best_supported(first: float, deltas: Sequence[float], tol_s: float) -> float:
    """The offset most cross pairs agree with: `first` unless another has more support (ties
    among others: the smallest, never the first listed, which depends on clip positions)."""
    d = np.array([first, *deltas])
    support = (np.abs(d[:, None] - d[None, 1:]) <= tol_s).sum(axis=1)
    if support[0] == support.max():
        return first
    return float(d[support == support.max()].min())


def _evaluate(g: _Group, h: _Group, edges: dict[tuple[int, int], MatchResult],
              rules: _Rules) -> _Candidate | None:
    """Whether G and H may merge, at which frame offset, and how strongly."""
    cross = []  # (a in G, b in H, delta = t_G - t_H implied by the pair)
    for a in g.members:
        for b in h.members:
            off = _edge(edges, a, b)
            if off is not None:
                cross.append((a, b, off + g.pos[a] - h.pos[b]))
    if not cross:
        return None
    rep_off = _edge(edges, g.rep, h.rep)
    if rep_off is not None:
        rule, delta = KEPT_COPIES, rep_off + g.pos[g.rep] - h.pos[h.rep]
    else:
        rule, delta = MOST_MEMBERS, statistics.median_low(d for _, _, d in cross)
    delta = _best_supported(delta, [d for _, _, d in cross], rules.tol_s)
    agreeing = [(a, b) for a, b, d in cross if abs(d - delta) <= rules.tol_s]
    support = len(agreeing) / (len(g.members) * len(h.members))
    if rule == MOST_MEMBERS and support <= 0.5:
        return None
    if rules.durations_s is not None:
        members = g.members + h.members
        pos = {**g.pos, **{m: p + delta for m, p in h.pos.items()}}
        if not _covered(members, pos, rules.representative(sorted(members)), rules.durations_s):
            return None
    evidence = statistics.fmean(_evidence(edges, a, b, rules.max_hamming) for a, b in agreeing)
    keys = rules.keys
    first = sorted((min(keys[m] for m in g.members), min(keys[m] for m in h.members)))
    # strongest evidence first, then most support, then a fixed order by key (never position)
    return _Candidate((-evidence, -support, first[0], first[1]), rule, delta, support)
