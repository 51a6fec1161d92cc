"""Pure media analysis (OpenCV): probe a file, fingerprint it, compare fingerprints."""

from __future__ import annotations

from footyd.media.fingerprint import Fingerprint, MatchResult, compare, fingerprint, hamming
from footyd.media.probe import VideoInfo, probe

__all__ = ["Fingerprint", "MatchResult", "VideoInfo", "compare", "fingerprint", "hamming", "probe"]
