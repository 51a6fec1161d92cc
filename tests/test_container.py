"""The image runs footyd under an init that reaps orphaned grandchildren (yt-dlp's ffmpeg)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _instruction(text: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, re.M)]


def test_image_entrypoint_is_tini_from_debian() -> None:
    text = (ROOT / "Dockerfile").read_text()
    installs = " ".join(_instruction(text.replace("\\\n", " "), "RUN"))
    assert re.search(r"apt-get install [^&]*\btini\b", installs), "install tini from Debian"
    entry = _instruction(text, "ENTRYPOINT")
    assert len(entry) == 1
    argv = json.loads(entry[0])  # exec form, so tini is PID 1 and forwards signals
    assert argv[:2] == ["tini", "--"] and "footyd" in argv[2:]


def test_readme_says_init_for_other_images() -> None:
    assert "--init" in (ROOT / "README.md").read_text()
