"""Reading a bucket in tests: clip videos apart from the posters stored beside them."""

from __future__ import annotations

from collections.abc import Iterable

from footyd import records


def videos_of(keys: Iterable[str]) -> list[str]:
    """The video keys among `keys`, after checking that every poster sits beside its video."""
    keys = sorted(keys)
    videos = [k for k in keys if not k.endswith(".jpg")]
    orphans = {k for k in keys if k.endswith(".jpg")} - {records.poster_key(v) for v in videos}
    assert not orphans, f"posters without their video: {sorted(orphans)}"
    return videos
