"""Generated clips: H.264 output (PyAV libx264) that browsers play, decoded by OpenCV and PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from footyd.sim.clipgen import CATALOGUE, H264Options, generate_catalogue, write_clip

# its module-scoped clips are built once: one worker runs the file
pytestmark = pytest.mark.xdist_group("test_clipgen")


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("h264") / "a.mp4", seed=3, seconds=3.0, width=320,
                      height=180, fps=25.0, codec="h264")


def _box_order(data: bytes) -> list[bytes]:
    """Top-level mp4 box types in file order."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        boxes.append(data[pos + 4:pos + 8])
        if size < 8:
            break
        pos += size
    return boxes


def test_h264_clip_is_browser_playable(h264_clip: Path) -> None:
    with av.open(str(h264_clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.profile in ("High", "Main")
        assert stream.codec_context.format.name == "yuv420p"
        assert container.format.name.startswith("mov,mp4")
    boxes = _box_order(h264_clip.read_bytes())
    assert b"moov" in boxes and b"mdat" in boxes
    assert boxes.index(b"moov") < boxes.index(b"mdat"), boxes  # +faststart


def test_h264_clip_decodes_with_pyav(h264_clip: Path) -> None:
    with av.open(str(h264_clip)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        frames = list(container.decode(stream))
        duration_s = float(stream.duration * stream.time_base)
    assert len(frames) == 75
    assert (frames[0].width, frames[0].height) == (320, 180)
    assert duration_s == pytest.approx(3.0, abs=0.05)
    keyframes = [i for i, f in enumerate(frames) if f.key_frame]
    assert keyframes == [0, 50]  # GOP 2 s at 25 fps, no scene-cut keyframes


def test_h264_clip_decodes_with_opencv(h264_clip: Path) -> None:
    cap = cv2.VideoCapture(str(h264_clip))
    try:
        assert cap.isOpened()
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 180)
        count = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (180, 320, 3)
            count += 1
    finally:
        cap.release()
    assert count == 75


def test_h264_content_matches_mp4v_render(tmp_path: Path, h264_clip: Path) -> None:
    """Same seed through both writers gives the same picture (codec noise only)."""
    ref = write_clip(tmp_path / "ref.mp4", seed=3, seconds=3.0, width=320, height=180)
    a, b = cv2.VideoCapture(str(ref)), cv2.VideoCapture(str(h264_clip))
    try:
        for _ in range(30):
            ok_a, fa = a.read()
            ok_b, fb = b.read()
            assert ok_a and ok_b
            assert float(cv2.absdiff(fa, fb).mean()) < 6.0
    finally:
        a.release()
        b.release()


def test_h264_bitrate_option_and_ntsc_rate(tmp_path: Path) -> None:
    kw = dict(seed=4, seconds=2.0, width=320, height=180, fps=29.97, codec="h264")
    crf = write_clip(tmp_path / "crf.mp4", **kw)  # type: ignore[arg-type]
    low = write_clip(tmp_path / "low.mp4", h264=H264Options(bitrate_kbps=60), **kw)  # type: ignore[arg-type]
    assert low.stat().st_size < crf.stat().st_size * 0.7
    with av.open(str(low)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        bits = low.stat().st_size * 8 / float(stream.duration * stream.time_base)
    assert bits < 60_000 * 1.6  # ABR lands near the requested rate (container overhead aside)


def test_h264_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_clip(tmp_path / "odd.mp4", seed=1, seconds=1.0, width=321, height=180, codec="h264")
    with pytest.raises(ValueError, match="codec"):
        write_clip(tmp_path / "x.mp4", seed=1, seconds=1.0, codec="vp9")
    with pytest.raises(ValueError, match="codec"):
        generate_catalogue(tmp_path / "cat", codec="vp9")
    assert not (tmp_path / "odd.mp4").exists()


def test_catalogue_codec_override_writes_h264(tmp_path: Path) -> None:
    # only the short clip: the whole catalogue is generated once per session elsewhere
    assert CATALOGUE["short"].codec == "mp4v"
    paths = generate_catalogue(tmp_path, codec="h264", names=["short", "garbage", "missing"])
    assert set(paths) == {"short", "garbage"}
    with av.open(str(paths["short"])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert not list(tmp_path.glob(".*tmp*"))
