"""The scratch dir: footyd deletes only inside the folders it created and marked as its own."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import structlog

from footyd.config import Config

log = structlog.get_logger(__name__)

MARKER = ".footyd-scratch"
# the stages' working folders under scratch_dir (download.py, dedup.py); nothing else is touched
AREAS = ("download", "dedup")
_MARKER_TEXT = "Created by footyd: everything in this folder is deleted when footyd starts.\n"


def _homes() -> set[Path]:
    homes = {Path(os.path.expanduser("~")).resolve()}
    for entry in pwd.getpwall():
        if entry.pw_uid == 0 or entry.pw_uid >= 1000:
            homes.add(Path(entry.pw_dir).resolve())
    return homes


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def problems(cfg: Config) -> list[str]:
    """Why the configured scratch dir is unsafe to work in (empty when it is fine)."""
    scratch = cfg.download.scratch_dir.expanduser().resolve()
    errors = []
    if scratch == Path(scratch.anchor):
        errors.append("download.scratch_dir: is a filesystem root; use a dedicated folder")
    if scratch in _homes():
        errors.append("download.scratch_dir: is a home directory; use a dedicated folder")
    local_dir = cfg.storage.local_dir
    local = local_dir.expanduser().resolve() if local_dir is not None else None
    if cfg.storage.kind == "local" and local is not None and _overlap(scratch, local):
        errors.append(f"download.scratch_dir: overlaps storage.local_dir ({local}): "
                      "scratch files would mix with the clip archive")
    return errors


def prepare(scratch_dir: Path) -> int:
    """Create the marked work folders, or clear the ones footyd marked; returns entries removed."""
    removed = 0
    for name in AREAS:
        area = scratch_dir / name
        if not area.exists() and not area.is_symlink():
            area.mkdir(parents=True)
            (area / MARKER).write_text(_MARKER_TEXT)
            continue
        marker = area / MARKER
        if area.is_symlink() or not area.is_dir() or marker.is_symlink() or not marker.is_file():
            # not provably ours (made by an older footyd or by someone else): leave it alone
            log.warning("scratch_area_not_owned", path=str(area), marker=MARKER,
                        hint="remove the folder so footyd can create and own it")
            continue
        for entry in area.iterdir():
            if entry.name == MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed
