"""The typed exceptions footyd raises across module boundaries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar


class FootydError(Exception):
    """Base of every footyd error; `label` is its outcome in metrics (`..._total{outcome}`)."""

    label: ClassVar[str] = "error"


def outcome_label(exc: BaseException) -> str:
    """The metrics outcome of a failure: a footyd error's own label, anything else `error`."""
    return exc.label if isinstance(exc, FootydError) else "error"


class ConfigError(FootydError):
    """The configuration is invalid; each entry of `errors` starts with its key path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errors,))


class DependencyUnavailable(FootydError):
    """A dependency (MongoDB, blob store, ...) cannot be reached or set up at startup."""


class Retryable(FootydError):
    """A failure worth trying again later (timeouts, 5xx, rate limits)."""

    label = "retryable"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only state survives pickling (errors cross the process pool)
        return (_rebuild, (type(self), self.args, {"retry_after_s": self.retry_after_s}))


class Permanent(FootydError):
    """A failure that will not go away by retrying (404, invalid media, filtered)."""

    label = "permanent"


class RateLimited(Retryable):
    """A per-minute (or per-window) rate limit was hit."""

    label = "rate_limited"


class QuotaExhausted(FootydError):
    """The daily API quota is spent; nothing may be sent before `reset_at`."""

    label = "quota_exhausted"

    def __init__(self, message: str, *, reset_at: datetime) -> None:
        self.reset_at = reset_at
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"reset_at": self.reset_at}))


class ApiError(Permanent):
    """The API answered with a non-empty `errors` object (often under HTTP 200)."""

    label = "api_error"

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("API-Football errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errors,))


class MalformedPayload(FootydError):
    """A response or one item of it does not have the documented shape; `kind` is a short code."""

    label = "malformed"

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        # kinds: invalid, out_of_range, bad_date, too_deep, too_large, not_json
        self.kind = kind
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"kind": self.kind}))


class FailPolicy(StrEnum):
    """What the download stage does with a clip that failed this way."""

    RETRY = "retry"  # back off and try again, up to download.max_attempts
    FAIL = "fail"  # terminal `failed`: retrying is waste (lessons.md 23)
    REJECT = "reject"  # terminal `rejected`: the file or the address is not acceptable


class FailKind(StrEnum):
    """Why a clip could not be fetched; its `policy` decides retry or terminal state."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNSUPPORTED_URL = "unsupported_url"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    TOO_LARGE = "too_large"
    INVALID_MEDIA = "invalid_media"
    FILTERED = "filtered"
    SKIPPED = "skipped"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    BLOCKED_ADDRESS = "blocked_address"

    @property
    def policy(self) -> FailPolicy:
        return _FAIL_POLICY.get(self, FailPolicy.REJECT)


_FAIL_POLICY = {
    FailKind.RATE_LIMITED: FailPolicy.RETRY, FailKind.TIMEOUT: FailPolicy.RETRY,
    FailKind.NETWORK: FailPolicy.RETRY, FailKind.SERVER_ERROR: FailPolicy.RETRY,
    FailKind.NOT_FOUND: FailPolicy.FAIL, FailKind.FORBIDDEN: FailPolicy.FAIL,
    FailKind.UNSUPPORTED_URL: FailPolicy.FAIL,
}


class DownloadFailed(FootydError):
    """A clip could not be fetched or was refused; `kind.policy` decides what happens next."""

    def __init__(self, kind: FailKind | str, reason: str) -> None:
        self.kind = FailKind(kind)
        self.reason = reason
        super().__init__(f"{self.kind}: {reason}")

    @property
    def retryable(self) -> bool:
        return self.kind.policy is FailPolicy.RETRY

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self.kind), self.reason))


def _rebuild(cls: type[Exception], args: tuple[object, ...], kwargs: dict[str, object]) -> Exception:
    """Unpickle an exception whose constructor takes keyword-only state."""
    return cls(*args, **kwargs)


class ExitCode:
    """Process exit codes (sysexits.h where one fits); documented in README."""

    OK = 0
    ERROR = 1  # unexpected error (a bug): systemd restarts
    USAGE = 2  # bad command line
    UNAVAILABLE = 69  # a dependency (MongoDB, S3, health port) unreachable at start
    SOFTWARE = 70  # unexpected exception during run
    FORCED = 75  # a second SIGTERM/SIGINT forced exit before the drain finished
    CONFIG = 78  # configuration invalid: fix it, restarting will not help
