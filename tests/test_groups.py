"""The grouping rule on constructed match graphs: one false pair never merges two groups."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence

from footyd.media.fingerprint import MatchResult
from footyd.media.groups import KEPT_COPIES, MOST_MEMBERS, Pair, group_clips


def m(offset_s: float = 0.0, distance: float = 1.0, matched: int = 30) -> MatchResult:
    return MatchResult(offset_s=offset_s, run_length=matched, mean_distance=distance,
                       matched=matched, overlap=matched, sample_fps=5.0)


def by_rank(ranking: Sequence[str], keys: Sequence[str]):  # type: ignore[no-untyped-def]
    """A representative: the member whose key comes first in `ranking` (the best copy)."""
    return lambda members: min(members, key=lambda i: ranking.index(keys[i]))


def grouped(keys: list[str], edges: dict[tuple[str, str], MatchResult],
            ranking: Sequence[str] | None = None) -> set[frozenset[str]]:
    idx = {k: i for i, k in enumerate(keys)}
    pairs: list[Pair] = []
    for (a, b), match in edges.items():
        i, j = idx[a], idx[b]
        pairs.append((i, j, match) if i < j else (j, i, MatchResult(
            offset_s=-match.offset_s, run_length=match.run_length,
            mean_distance=match.mean_distance, matched=match.matched, overlap=match.overlap,
            sample_fps=match.sample_fps)))
    result = group_clips(keys, pairs, representative=by_rank(ranking or BEST_FIRST, keys))
    return {frozenset(keys[i] for i in g) for g in result.groups}


def clique(names: list[str], distance: float = 1.5) -> dict[tuple[str, str], MatchResult]:
    return {(a, b): m(0.0, distance) for a, b in itertools.combinations(names, 2)}


REPLAY_A = ["a_hd", "a_sd", "a_low", "a_trim", "a_combo"]
REPLAY_B = ["b_hd", "b_sd", "b_low", "b_cut"]
BEST_FIRST = [*REPLAY_A, *REPLAY_B, "x_heavy", "y", "x"]  # as listed: the HD copies are kept


def test_one_false_pair_between_two_replays_never_merges_them() -> None:
    """The case that lost a replay: A's crop+watermark copy falsely matches B's end cut."""
    edges = {**clique(REPLAY_A), **clique(REPLAY_B), ("a_combo", "b_cut"): m(3.4, 8.0)}
    assert grouped(REPLAY_A + REPLAY_B, edges) == {frozenset(REPLAY_A), frozenset(REPLAY_B)}


def test_a_copy_matching_a_whole_other_replay_closely_still_goes_to_its_own() -> None:
    """b_cut falsely matches most of A at 9 bits but its own replay at 1.5: it joins B, and A
    and B stay apart (one member's false pairs are a minority of all A x B pairs)."""
    edges = {**clique(REPLAY_A), **clique(REPLAY_B)}
    edges.update({(a, "b_cut"): m(-4.2, 9.5) for a in REPLAY_A[:4]})
    assert grouped(REPLAY_A + REPLAY_B, edges) == {frozenset(REPLAY_A), frozenset(REPLAY_B)}


def test_a_heavy_reencode_matching_only_the_kept_copy_joins() -> None:
    edges = {**clique(REPLAY_A[:4]), ("a_hd", "x_heavy"): m(0.8, 8.5)}
    result = grouped([*REPLAY_A[:4], "x_heavy"], edges, ranking=["a_hd", "a_sd", "a_low",
                                                                  "a_trim", "x_heavy"])
    assert result == {frozenset([*REPLAY_A[:4], "x_heavy"])}


def test_a_copy_matching_one_member_but_not_the_kept_copy_stays_apart() -> None:
    edges = {**clique(REPLAY_A[:4]), ("a_low", "x"): m(0.0, 2.0)}
    result = grouped([*REPLAY_A[:4], "x"], edges, ranking=["a_hd", "a_sd", "a_low", "a_trim", "x"])
    assert result == {frozenset(REPLAY_A[:4]), frozenset({"x"})}


def test_most_members_at_one_offset_join_without_the_kept_copy() -> None:
    group = ["a_hd", "a_sd", "a_low", "a_trim"]
    ranking = [*group, "x"]
    edges = {**clique(group), **{(g, "x"): m(1.0, 3.0) for g in group[1:]}}
    assert grouped([*group, "x"], edges, ranking=ranking) == {frozenset([*group, "x"])}
    # the same three pairs at offsets that disagree (no single alignment) do not count
    edges.update({("a_sd", "x"): m(1.0, 3.0), ("a_low", "x"): m(4.0, 3.0),
                  ("a_trim", "x"): m(-3.0, 3.0)})
    assert grouped([*group, "x"], edges, ranking=ranking) == {frozenset(group), frozenset({"x"})}


def test_two_groups_merge_when_their_kept_copies_match_and_the_merge_is_recorded() -> None:
    left, right = ["a_hd", "a_sd"], ["b_hd", "b_sd"]
    keys = left + right
    edges = {**clique(left), **clique(right), ("a_hd", "b_hd"): m(2.0, 4.0)}
    idx = {k: i for i, k in enumerate(keys)}
    pairs: list[Pair] = [(idx[a], idx[b], x) for (a, b), x in edges.items()]
    result = group_clips(keys, pairs, representative=lambda ms: min(ms))
    assert [sorted(keys[i] for i in g) for g in result.groups] == [sorted(keys)]
    merge = result.joined_by(idx["a_sd"], idx["b_sd"])
    assert merge is not None and merge.rule == KEPT_COPIES
    # positions share one frame: b_hd starts 2 s into a_hd (time in a = time in b + 2)
    assert result.position_s[idx["b_hd"]] - result.position_s[idx["a_hd"]] == 2.0
    assert result.position_s[idx["b_sd"]] == result.position_s[idx["b_hd"]]


def test_most_members_rule_is_named_when_it_decides() -> None:
    group = ["a_hd", "a_sd", "a_low"]
    keys = [*group, "x"]
    edges = {**clique(group), ("a_sd", "x"): m(0.0, 3.0), ("a_low", "x"): m(0.0, 3.0)}
    idx = {k: i for i, k in enumerate(keys)}
    pairs: list[Pair] = [(idx[a], idx[b], v) for (a, b), v in edges.items()]
    result = group_clips(keys, pairs, representative=lambda ms: min(ms))
    merge = result.joined_by(idx["x"], idx["a_hd"])
    assert merge is not None and merge.rule == MOST_MEMBERS and merge.support == 2 / 3


def test_grouping_does_not_depend_on_the_order_clips_are_listed() -> None:
    """50 permutations of a graph with a false pair, a heavy re-encode and a tie in distance."""
    keys = [*REPLAY_A, *REPLAY_B, "x_heavy", "y"]
    edges = {**clique(REPLAY_A), **clique(REPLAY_B, 1.5), ("a_combo", "b_cut"): m(3.4, 8.0),
             ("a_hd", "x_heavy"): m(0.0, 8.5), ("b_low", "y"): m(0.0, 1.5),
             ("a_low", "y"): m(0.0, 1.5)}
    ranking = BEST_FIRST
    first = grouped(keys, edges, ranking)
    assert frozenset(REPLAY_B) in first and frozenset([*REPLAY_A, "x_heavy"]) in first
    rng = random.Random(5)
    for _ in range(50):
        shuffled = keys[:]
        rng.shuffle(shuffled)
        assert grouped(shuffled, edges, ranking) == first


# content time of one 9.5 s clip: best 0-6 s (kept), mid 2.5-8 s, late 6-9.5 s; late matches only
# mid (2 s), and mid matches best (3.5 s); time in a = time in b + offset
CHAIN = ["best", "mid", "late"]
CHAIN_S = [6.0, 5.5, 3.5]


def chain_groups(mid_late: MatchResult, durations_s: list[float] | None,
                 best_mid: MatchResult = m(2.5, 5.9, matched=18)) -> set[frozenset[str]]:
    pairs: list[Pair] = [(0, 1, best_mid), (1, 2, mid_late)]
    result = group_clips(CHAIN, pairs, representative=lambda ms: min(ms), durations_s=durations_s)
    return {frozenset(CHAIN[i] for i in g) for g in result.groups}


def test_a_clip_never_joins_a_kept_copy_it_shares_no_frame_with() -> None:
    """late and mid match closely (they join first); mid and best match: merging the two groups
    would make late a duplicate of best, which shows none of late's moments: refused."""
    close, weak = m(3.5, 1.0, matched=10), m(2.5, 9.0, matched=18)
    assert chain_groups(close, CHAIN_S, weak) == {frozenset({"best"}), frozenset({"mid", "late"})}
    # what the cover check prevents: without durations the chain collapses into best's group
    assert chain_groups(close, None, weak) == {frozenset(CHAIN)}


def test_longer_matches_outrank_a_fraction_of_a_bit() -> None:
    """best~mid (3.6 s at 5.9 bits) goes before mid~late (2 s at 5.8 bits): late, sharing no
    frame with best, is left on its own instead of taking mid from best's group."""
    near_tie = m(3.5, 5.8, matched=10)
    assert chain_groups(near_tie, CHAIN_S) == {frozenset({"best", "mid"}), frozenset({"late"})}


def test_a_family_joined_through_a_slowed_kept_copy_keeps_its_true_place() -> None:
    """The kept copy is a speed-ramped replay (the longest file): the HD family matches its
    first piece, the 360p family only its second, a second later. Placing the 360p family by
    the kept copies' pair alone would put it a second off the HD family it matches at 0 s, and a
    heavy re-encode matching all four (never the slowed copy) would agree with only half the
    group and stay an extra copy. The offset most cross pairs agree with places it right."""
    keys = ["slowmo", "hd", "sd", "low", "lq", "combo2"]

    def ramp(offset_s: float, distance: float, matched: int) -> MatchResult:
        return MatchResult(offset_s=offset_s, run_length=matched, mean_distance=distance,
                           matched=matched, overlap=matched, sample_fps=5.0, ramp_s=1.2)
    edges = {("hd", "slowmo"): ramp(0.6, 1.2, 46), ("sd", "slowmo"): ramp(0.6, 1.2, 46),
             ("low", "slowmo"): m(1.6, 3.5, 29), ("lq", "slowmo"): m(1.6, 3.5, 29),
             ("hd", "sd"): m(0.0, 0.1, 40), ("low", "lq"): m(0.0, 0.6, 40),
             **{(a, b): m(0.0, 0.6, 40) for a in ("hd", "sd") for b in ("low", "lq")},
             **{(a, "combo2"): m(0.8, 6.9, 27) for a in ("hd", "sd", "low", "lq")}}
    ranking = list(keys)
    for listed in [keys, *(random.Random(seed).sample(keys, len(keys)) for seed in range(20))]:
        idx = {k: i for i, k in enumerate(listed)}
        pairs: list[Pair] = [(idx[a], idx[b], x) if idx[a] < idx[b] else
                             (idx[b], idx[a], dataclasses.replace(x, offset_s=-x.offset_s))
                             for (a, b), x in edges.items()]
        result = group_clips(listed, pairs, representative=by_rank(ranking, listed))
        assert [sorted(listed[i] for i in g) for g in result.groups] == [sorted(keys)], listed
        assert result.position_s[idx["low"]] == result.position_s[idx["hd"]], listed
