"""Startup deletes only inside footyd-owned scratch folders; dangerous scratch dirs refuse to start."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from footyd.config import Config
from footyd.errors import ConfigError, ExitCode
from footyd.runtime.scratch import MARKER, locked, prepare, problems
from tests.plugins.daemon import DaemonFactory, base_config
from tests.plugins.servers import MongoServer, S3Server


def _cfg(scratch: Path, **storage: Any) -> Config:
    return Config.model_validate({"download": {"scratch_dir": str(scratch)}, "storage": storage})


def test_only_marked_footyd_folders_are_cleared(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "archive").mkdir(parents=True)
    (scratch / "archive" / "goal.mp4").write_bytes(b"keep")  # someone else's file
    (scratch / "notes.txt").write_text("keep")
    (scratch / "download" / "c1").mkdir(parents=True)  # exists but footyd never marked it
    (scratch / "download" / "c1" / "x.part").write_bytes(b"keep")
    assert prepare(scratch) == 0
    assert (scratch / "archive" / "goal.mp4").read_bytes() == b"keep"
    assert (scratch / "notes.txt").read_text() == "keep"
    assert (scratch / "download" / "c1" / "x.part").exists()
    assert not (scratch / "download" / MARKER).exists()
    # a folder footyd created itself carries the marker and is cleared on the next start
    assert (scratch / "dedup" / MARKER).is_file()
    (scratch / "dedup" / "g1").mkdir()
    (scratch / "dedup" / "g1" / "a.mp4").write_bytes(b"x")
    (scratch / "dedup" / "stray").write_bytes(b"y")
    assert prepare(scratch) == 2
    assert [p.name for p in (scratch / "dedup").iterdir()] == [MARKER]
    assert (scratch / "notes.txt").exists()


def test_a_symlinked_area_is_never_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / MARKER).write_text("x")
    (elsewhere / "precious").write_bytes(b"p")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "download").symlink_to(elsewhere)
    prepare(scratch)
    assert (elsewhere / "precious").exists()


@pytest.mark.parametrize("case", ["same", "inside_local", "local_inside", "root", "home"])
def test_dangerous_scratch_dirs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             case: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    local = tmp_path / "clips"
    scratch = {"same": local, "inside_local": local / "tmp", "local_inside": tmp_path,
               "root": Path("/"), "home": tmp_path / "home"}[case]
    errors = problems(_cfg(scratch, kind="local", local_dir=str(local)))
    assert errors and all(e.startswith("download.scratch_dir:") for e in errors), errors


def test_safe_scratch_dirs_pass(tmp_path: Path) -> None:
    assert problems(_cfg(tmp_path / "scratch", kind="local", local_dir=str(tmp_path / "clips"))) == []
    # with S3 storage local_dir is unused, so it cannot overlap
    assert problems(_cfg(tmp_path / "clips", kind="s3", local_dir=str(tmp_path / "clips"))) == []


async def test_daemon_refuses_scratch_over_the_local_archive(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    tree = base_config(mongo_server, s3_server, tmp_path, f"s_{uuid.uuid4().hex[:10]}")
    archive = tmp_path / "archive"
    (archive / "g1").mkdir(parents=True)
    (archive / "g1" / "clip.mp4").write_bytes(b"kept clip")
    tree["storage"] = {"kind": "local", "local_dir": str(archive)}
    tree["download"]["scratch_dir"] = str(archive)
    proc = await daemon_factory(tree)
    assert await proc.wait_exit() == ExitCode.CONFIG, proc.tail()
    assert "download.scratch_dir:" in proc.stderr
    assert (archive / "g1" / "clip.mp4").read_bytes() == b"kept clip"


def test_a_second_footyd_on_the_same_scratch_dir_is_refused(tmp_path: Path) -> None:
    # a copy started by mistake on the same host would empty the first one's downloads
    scratch = tmp_path / "scratch"
    with locked(scratch):
        (scratch / "download").mkdir()
        (scratch / "download" / "c1.part").write_bytes(b"in flight")
        with pytest.raises(ConfigError, match="in use by another footyd on this host"), locked(scratch):
            pass
        assert (scratch / "download" / "c1.part").exists()
    with locked(scratch):  # released when the first one stops
        pass
