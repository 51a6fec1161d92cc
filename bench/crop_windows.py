"""The crop step tried on every pair against the shipped one (kept copies and lone clips only).

`footyd.media.crop` tries clips left apart by `compare` once more through 175 crop windows
(settings chosen on corpus A: max_hamming 10, share 0.9, motion correlation 0.4). footyd runs
it only between the kept copies of groups and from clips left alone, then groups again; this
bench measures what trying it on EVERY pair would add and cost, against the shipped step and
against `compare` alone, on both corpora: pairwise precision/recall within goals, grouped
exactness over random arrival orders (footyd's grouping, held blobs), and the CPU to match one
goal. Run: python -m bench.crop_windows [--orders 100] (the corpora and cache of
bench.dedup_quality). Writes bench/results/crop_windows.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import dedup_quality as dq
from footyd.media.crop import window_match
from footyd.media.fingerprint import Fingerprint, compare, fingerprint
from footyd.media.groups import Pair
from footyd.media.match import MatchResult
from footyd.sim.corpus import CorpusClip, build_corpus, corpus_specs
from footyd.sim.corpus_lavfi import build_corpus_b, corpus_b_specs


def _every_pair(a: Fingerprint, b: Fingerprint, **rule: Any) -> MatchResult | None:
    """`compare`, then the crop step on the pair whatever the groups are."""
    found = compare(a, b, **rule)
    if found is not None:
        return found
    return window_match(a, b, min_consecutive=rule["min_consecutive"],
                        min_match_s=rule["min_match_s"],
                        min_match_coverage=rule["min_match_coverage"])


def _pairs_of(match: Any) -> Any:
    def pairs(prints: Sequence[Fingerprint], **rule: Any) -> list[Pair]:
        return [(i, j, m) for i, j in itertools.combinations(range(len(prints)), 2)
                if (m := match(prints[i], prints[j], **rule)) is not None]
    return pairs


def evaluate(specs: list[CorpusClip], paths: dict[str, Path], rule: dict[str, Any],
             orders: int) -> dict[str, Any]:
    prints = {s.name: fingerprint(str(paths[s.name]), sample_fps=rule["reference_fps"])
              for s in specs}
    quality = dq.qualities(specs, paths)
    match_rule = {k: v for k, v in rule.items() if k != "reference_fps"}
    one_goal = [prints[s.name] for s in specs if s.name.startswith("g0")]
    shipped = dq.with_crops(specs, prints, quality, match_rule, orders, 1)
    finders = {"compare alone": _pairs_of(compare), "crop step on every pair": _pairs_of(_every_pair),
               "crop step as shipped": dq.crop_finder(prints, quality)}
    out: dict[str, Any] = {}
    for name, finder in finders.items():
        if name == "crop step as shipped":
            pw, grouped = shipped["pairwise"], shipped["grouped"]
        else:
            matcher = compare if name == "compare alone" else _every_pair
            pw = dq.pairwise(specs, prints, matcher=matcher, **match_rule)
            grouped = dq.replay_orders(specs, prints, quality, match_rule, orders,
                                       random.Random(1), dq._agglomerative, True, finder)
        c0 = time.process_time()
        finder(one_goal, **match_rule)
        goal_ms = (time.process_time() - c0) * 1000
        out[name] = {**{k: pw[k] for k in ("precision", "recall", "tp", "fp", "fn")},
                     "false_matches": pw["false_matches"],
                     "exact_orders": f"{grouped['exact']}/{grouped['orders']}",
                     "orders_losing_a_clip": grouped["orders_losing_a_clip"],
                     "max_extra_copies": grouped["max_extra_copies"],
                     "match_one_goal_ms": round(goal_ms, 1), "one_goal_clips": len(one_goal)}
    return out


def _markdown(result: dict[str, Any]) -> str:
    rows = [f"| {corpus} | {step} | {r['precision']} / {r['recall']} ({r['fp']} false, {r['fn']} missed) "
            f"| {r['exact_orders']} | {r['orders_losing_a_clip']} | {r['max_extra_copies']} "
            f"| {r['match_one_goal_ms']} ms ({r['one_goal_clips']} clips) |"
            for corpus in ("A", "B") for step, r in result[corpus].items()]
    return "\n".join([
        "# The crop step: on every pair, or as shipped (`python -m bench.crop_windows`)", "",
        "Corpora as bench.dedup_quality; grouping over random arrival orders with footyd's "
        "grouping rule (held blobs). \"Matching one goal\" is goal g0's clips, all pairs (as the "
        "shipped step: compare, group, crop step, group again).", "",
        "| corpus | matcher | pairwise precision / recall | exact orders | orders losing a clip "
        "| most extra copies | matching one goal |",
        "|---|---|---|---|---|---|---|", *rows, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=dq.DEFAULT_CACHE)
    args = ap.parse_args()
    rule = dq.default_rule()
    specs_a = corpus_specs()
    specs_b = corpus_b_specs(replays=4)
    result = {"A": evaluate(specs_a, build_corpus(args.cache / "a", specs_a), rule, args.orders),
              "B": evaluate(specs_b, build_corpus_b(args.cache / "b", specs_b), rule, args.orders)}
    dq.RESULTS.mkdir(exist_ok=True)
    (dq.RESULTS / "crop_windows.json").write_text(json.dumps(result, indent=2) + "\n")
    (dq.RESULTS / "crop_windows.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
