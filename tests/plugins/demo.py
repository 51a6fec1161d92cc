"""Demo fixtures: the demo day's H.264 clips, generated once per session into an XDG cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from footyd.demo import script as demo_script
from footyd.demo.config import clip_cache_dir
from footyd.sim.clipgen import generate_catalogue
from tests.plugins.shared import shared_dir


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG cache holding the demo day's H.264 clips, generated once per session."""
    names = sorted({c.clip for kit in demo_script.load().kits.values() for c in kit})

    def build(cache: Path) -> None:
        generate_catalogue(clip_cache_dir({"XDG_CACHE_HOME": str(cache)}), codec="h264", names=names)

    return shared_dir(tmp_path_factory, "xdg_cache", build)
