"""The scratch dir: footyd deletes only inside the folders it created and marked as its own."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import structlog

from footyd.config import Config
from footyd.errors import ConfigError

log = structlog.get_logger(__name__)

MARKER = ".footyd-scratch"
LOCK = ".footyd-lock"  # held while a daemon works here: a second one must not empty it
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


def unusable(path: Path) -> str | None:
    """Why the running user cannot create or write `path` as a directory (None when it can)."""
    path = path.expanduser()
    probe = path
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # the nearest existing ancestor is where mkdir starts
    except OSError as exc:  # a name too long, a loop of links
        return f"{path} is not a usable path ({exc.strerror})"
    if not probe.is_dir():
        return f"{probe} is not a directory, so {path} cannot be created"
    if not os.access(probe, os.W_OK | os.X_OK):
        user = pwd.getpwuid(os.geteuid()).pw_name
        what = "is not writable" if probe == path else f"cannot be created ({probe} is not writable)"
        return f"{path} {what} by user {user}"
    return None


async def writable(scratch_dir: Path) -> bool:
    """Readiness probe: the scratch dir exists and takes writes (a disk gone read-only fails)."""
    return await asyncio.to_thread(
        lambda: scratch_dir.is_dir() and os.access(scratch_dir, os.W_OK | os.X_OK))


def problems(cfg: Config) -> list[str]:
    """Why the configured scratch dir (or the local clip dir) is unusable or unsafe to work in
    (empty when it is fine); each names its key."""
    scratch = cfg.download.scratch_dir.expanduser().resolve()
    errors = []
    why = unusable(cfg.download.scratch_dir)
    if why:
        errors.append(f"download.scratch_dir: {why}; create it for the user footyd runs as "
                      "(install -d -o footyd DIR) or set FOOTYD_DOWNLOAD__SCRATCH_DIR")
    if cfg.storage.kind == "local" and cfg.storage.local_dir is not None:
        why = unusable(cfg.storage.local_dir)
        if why:
            errors.append(f"storage.local_dir: {why}; create it for the user footyd runs as "
                          "(install -d -o footyd DIR) or set FOOTYD_STORAGE__LOCAL_DIR")
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


@contextlib.contextmanager
def locked(scratch_dir: Path) -> Iterator[None]:
    """Hold the scratch dir for this process; another footyd holding it is a ConfigError (a
    second copy started by mistake on the same host would empty the first one's work)."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(scratch_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError([f"download.scratch_dir: {scratch_dir} is in use by another footyd "
                               f"on this host (pid {holder}); give each replica its own "
                               "(FOOTYD_DOWNLOAD__SCRATCH_DIR)"]) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
