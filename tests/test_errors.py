"""Typed errors survive pickling: they cross the process pool intact."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from footyd.errors import (
    ApiError,
    ConfigError,
    DownloadFailed,
    FailKind,
    FailPolicy,
    MalformedPayload,
    Permanent,
    QuotaExhausted,
    RateLimited,
    Retryable,
    outcome_label,
)
from footyd.sources.guard import SourceUnavailable


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


def test_each_error_carries_its_metrics_label() -> None:
    reset = datetime(2026, 1, 1, tzinfo=UTC)
    labels = {
        "quota_exhausted": QuotaExhausted("daily", reset_at=reset),
        "rate_limited": RateLimited("429"),
        "api_error": ApiError({"token": "bad"}),
        "retryable": Retryable("502"),
        "malformed": MalformedPayload("not json", kind="not_json"),
        "permanent": Permanent("gone"),
        "unavailable": SourceUnavailable("circuit open"),
        "error": ConfigError(["a: b"]),
    }
    assert {name: outcome_label(exc) for name, exc in labels.items()} == {n: n for n in labels}
    assert outcome_label(ValueError("a bug")) == "error"


def test_download_failure_kinds_decide_retry_failed_or_rejected() -> None:
    policy = {kind.value: kind.policy for kind in FailKind}
    assert [k for k, p in policy.items() if p is FailPolicy.RETRY] == [
        "rate_limited", "timeout", "network", "server_error"]
    assert [k for k, p in policy.items() if p is FailPolicy.FAIL] == [
        "not_found", "forbidden", "unsupported_url"]
    assert policy["blocked_address"] is FailPolicy.REJECT and policy["invalid_media"] is FailPolicy.REJECT
    assert DownloadFailed("timeout", "slow").retryable and not DownloadFailed("too_large", "big").retryable
    with pytest.raises(ValueError):
        DownloadFailed("made_up", "a kind nobody handles is a bug, not a silent rejection")
