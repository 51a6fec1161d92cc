"""Pure media analysis: probe a file (OpenCV), fingerprint it (PyAV decode), compare fingerprints.

OpenCV stays for the probe: it reads 3 frames (cheap), has bounded open/read timeouts and
applies display rotation, and it is proven against hostile files here; the full sampled decode,
where the CPU goes, is PyAV's (media/decode.py).
"""

from __future__ import annotations

from footyd.media.fingerprint import Fingerprint, MatchResult, compare, fingerprint, hamming
from footyd.media.probe import VideoInfo, probe

__all__ = ["Fingerprint", "MatchResult", "VideoInfo", "compare", "fingerprint", "hamming", "probe"]
