"""Corpus B, the held-out dedup corpus rendered by ffmpeg alone (its scores are a bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from footyd.config import Config
from footyd.media import compare, fingerprint, probe
from footyd.sim.corpus import corpus_specs
from footyd.sim.corpus_lavfi import build_corpus_b, corpus_b_specs

# `pytest -m "not slow"` skips it; its clips are built once, so one worker runs the file
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_corpus_lavfi")]

DC = Config().dedup
RULE = {"max_hamming": DC.max_hamming, "min_consecutive": DC.min_consecutive,
        "min_match_s": DC.min_match_s, "min_match_ratio": DC.min_match_ratio,
        "min_match_coverage": DC.min_match_coverage}
KINDS = ("hd", "sd", "trim1", "portrait", "mirror")  # in TRANSFORMS order
SPECS = corpus_b_specs(goals=1, replays=2, seconds=3.0, scale=0.25, transforms=KINDS)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_corpus_b(tmp_path_factory.mktemp("corpus_b"), SPECS)


def test_specs_cross_every_replay_with_every_kind_and_share_no_name_with_corpus_a() -> None:
    assert [s.name for s in SPECS] == [f"g0r{r}_{k}" for r in range(2) for k in KINDS]
    assert {s.label for s in SPECS} == {"g0r0", "g0r1"}
    assert [s.scored for s in SPECS if s.name.endswith("portrait")] == [False, False]
    assert not {s.name for s in SPECS} & {s.name for s in corpus_specs(goals=1)}


def test_copies_have_their_transform_and_the_cache_is_reused(paths: dict[str, Path]) -> None:
    hd, sd, trim = (probe(str(paths[f"g0r0_{k}"])) for k in ("hd", "sd", "trim1"))
    assert (hd.width, hd.height, sd.width, sd.height) == (320, 180, 214, 120)
    assert hd.codec == "h264" and hd.duration_s == pytest.approx(3.0, abs=0.1)
    assert trim.duration_s == pytest.approx(2.0, abs=0.1)
    portrait = probe(str(paths["g0r1_portrait"]))
    assert portrait.height > portrait.width
    stamps = {n: p.stat().st_mtime_ns for n, p in paths.items()}
    again = build_corpus_b(next(iter(paths.values())).parent, SPECS)
    assert {n: p.stat().st_mtime_ns for n, p in again.items()} == stamps


def test_a_mirrored_copy_matches_only_when_mirrors_are_compared(paths: dict[str, Path]) -> None:
    hd, mirror = (fingerprint(str(paths[f"g0r0_{k}"]), sample_fps=DC.reference_fps)
                  for k in ("hd", "mirror"))
    assert compare(hd, mirror, **RULE, mirrored=False) is None
    found = compare(hd, mirror, **RULE, mirrored=True)
    assert found is not None and found.mirrored and found.offset_s == 0.0
