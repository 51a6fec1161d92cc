"""Typed errors survive pickling: they cross the process pool intact."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from footyd.errors import ApiError, ConfigError, DownloadFailed, QuotaExhausted, RateLimited, Retryable


def test_errors_round_trip_through_pickle() -> None:
    reset = datetime(2026, 1, 1, tzinfo=UTC)
    samples: list[Exception] = [
        DownloadFailed("invalid_media", "no frame decodes"),
        Retryable("slow", retry_after_s=3.0),
        RateLimited("429", retry_after_s=1.5),
        QuotaExhausted("daily", reset_at=reset),
        ApiError({"token": "bad"}),
        ConfigError(["a.b: bad"]),
    ]
    for exc in samples:
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
        assert vars(back) == vars(exc)
