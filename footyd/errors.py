"""The typed exceptions footyd raises across module boundaries."""

from __future__ import annotations

from datetime import datetime


class FootydError(Exception):
    """Base of every footyd error."""


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

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only state survives pickling (errors cross the process pool)
        return (_rebuild, (type(self), self.args, {"retry_after_s": self.retry_after_s}))


class Permanent(FootydError):
    """A failure that will not go away by retrying (404, invalid media, filtered)."""


class RateLimited(Retryable):
    """A per-minute (or per-window) rate limit was hit."""


class QuotaExhausted(FootydError):
    """The daily API quota is spent; nothing may be sent before `reset_at`."""

    def __init__(self, message: str, *, reset_at: datetime) -> None:
        self.reset_at = reset_at
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"reset_at": self.reset_at}))


class ApiError(Permanent):
    """The API answered with a non-empty `errors` object (often under HTTP 200)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("API-Football errors: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errors,))


class MalformedPayload(FootydError):
    """A response or one item of it does not have the documented shape; `kind` is a short code."""

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        # kinds: invalid, out_of_range, bad_date, too_deep, too_large, not_json
        self.kind = kind
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, {"kind": self.kind}))


class DownloadFailed(FootydError):
    """A clip could not be fetched or was refused; `kind` decides the retry policy."""

    RETRYABLE_KINDS = frozenset({"rate_limited", "timeout", "network", "server_error"})

    def __init__(self, kind: str, reason: str) -> None:
        # kinds: not_found, forbidden, rate_limited, timeout, network, server_error,
        # too_large, invalid_media, filtered, unsupported_url, skipped
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")

    @property
    def retryable(self) -> bool:
        return self.kind in self.RETRYABLE_KINDS

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.kind, self.reason))


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
