"""Grouping of a goal's clips by fingerprint: all matching pairs, then connected groups (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from footyd.media.fingerprint import Fingerprint, compare


def match_pairs(prints: Sequence[Fingerprint], *, max_hamming: int, min_consecutive: int,
                min_match_s: float, min_match_ratio: float,
                min_match_coverage: float) -> list[tuple[int, int, float]]:
    """Every matching pair (i, j, offset_s) with i < j: all pairs, never stopping at the first."""
    found = []
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            m = compare(prints[i], prints[j], max_hamming=max_hamming,
                        min_consecutive=min_consecutive, min_match_s=min_match_s,
                        min_match_ratio=min_match_ratio, min_match_coverage=min_match_coverage)
            if m is not None:
                found.append((i, j, m.offset_s))
    return found


def connected_groups(n: int, pairs: Sequence[tuple[int, int, float]]) -> list[list[int]]:
    """Union-find components of 0..n-1 (each sorted, ordered by smallest member)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())
