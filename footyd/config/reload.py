"""What a SIGHUP would change: a pure plan the daemon only applies (hot keys now, the rest later)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from footyd.config import Config, diff, is_hot
from footyd.errors import ConfigError

RESTART_REASON = ("with restart-only keys kept at their running values the config is invalid; "
                  "change them together at the next restart")


@dataclass(frozen=True)
class ReloadPlan:
    """The config to run after the reload, and which changed keys it applies or defers."""

    config: Config  # the new file with every restart-only key at its running value
    hot: list[str]  # applied now
    cold: list[str]  # changed in the file, applied at the next start


class ReloadRejected(ConfigError):
    """The new file is valid alone but not with its restart-only keys kept at running values."""

    def __init__(self, errors: list[str], *, keys: list[str], restart_only: list[str]) -> None:
        self.keys = keys
        self.restart_only = restart_only
        super().__init__(errors)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.errors, self.keys, self.restart_only))


def _rebuild(errors: list[str], keys: list[str], restart_only: list[str]) -> ReloadRejected:
    return ReloadRejected(errors, keys=keys, restart_only=restart_only)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Split the change into hot and restart-only keys; raise ReloadRejected if they do not fit."""
    changed = diff(old, new)
    hot = [k for k in changed if is_hot(k)]
    cold = [k for k in changed if not is_hot(k)]
    try:
        merged = _merge_hot(old, new, cold)
    except ValidationError as exc:
        # a hot key validated against a restart-only key that keeps its running value
        errors = {".".join(str(p) for p in err["loc"]): err["msg"] for err in exc.errors()}
        keys = [k for k in changed if any(k == loc or k.startswith(loc + ".") for loc in errors)]
        raise ReloadRejected([f"{loc}: {msg}" for loc, msg in errors.items()], keys=keys,
                             restart_only=[k for k in cold if k in keys]) from None
    return ReloadPlan(config=merged, hot=hot, cold=cold)


def _merge_hot(old: Config, new: Config, cold: list[str]) -> Config:
    """The new config with every restart-only key kept at its running value."""
    data = new.model_dump()
    running = old.model_dump()
    for key in cold:
        parts = key.split(".")
        src, dst = running, data
        for p in parts[:-1]:
            src, dst = src[p], dst[p]
        dst[parts[-1]] = src[parts[-1]]
    return Config.model_validate(data)
