"""Corpus A at quarter size, 5 s clips (footyd.sim.corpus): built once per run for every worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from footyd.sim.corpus import CorpusClip, build_corpus, corpus_specs
from tests.plugins.shared import shared_dir


def quarter_specs(goals: int) -> list[CorpusClip]:
    """The first `goals` goals of corpus A, 5 s, quarter size (what the dedup tests use)."""
    return corpus_specs(goals=goals, seconds=5.0, scale=0.25)


@pytest.fixture(scope="session")
def quarter_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding goals 0 and 1 (build_corpus finds them there by spec)."""
    return shared_dir(tmp_path_factory, "corpus_a_quarter",
                      lambda d: build_corpus(d, quarter_specs(goals=2)))
