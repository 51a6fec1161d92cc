"""Configuration: TOML loading, FOOTYD_* env overrides, *_file secrets, hot keys, diff().

The models live in config_models.py and are re-exported here (`from footyd.config import Config`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from footyd.config_models import (
    WEBHOOK_EVENTS,
    ApiFootballConfig,
    Config,
    DedupConfig,
    DownloadConfig,
    FakeSourceConfig,
    GoalsConfig,
    HealthConfig,
    IngestConfig,
    LevelName,
    LogConfig,
    MongoConfig,
    MonitorConfig,
    NotifyConfig,
    RedditConfig,
    RetentionConfig,
    ScopeConfig,
    SearchConfig,
    SearchServiceConfig,
    Section,
    ShutdownConfig,
    SnscrapeConfig,
    SourceName,
    SourcesConfig,
    StorageConfig,
    WebConfig,
    WebhookConfig,
    WebhookEvent,
    XApiConfig,
    is_loopback,
)
from footyd.errors import ConfigError

__all__ = [  # the models are re-exported: callers import them from here
    "ENV_PREFIX", "HOT_KEYS", "MASK", "WEBHOOK_EVENTS", "ApiFootballConfig", "Config",
    "DedupConfig", "DownloadConfig", "FakeSourceConfig", "GoalsConfig", "HealthConfig",
    "IngestConfig", "LevelName", "LogConfig", "MongoConfig", "MonitorConfig", "NotifyConfig",
    "RedditConfig", "RetentionConfig", "ScopeConfig", "SearchConfig", "SearchServiceConfig",
    "Section", "ShutdownConfig", "SnscrapeConfig", "SourceName", "SourcesConfig", "StorageConfig",
    "WebConfig", "WebhookConfig", "WebhookEvent", "XApiConfig", "build", "config_hash", "diff",
    "env_field_kind", "is_hot", "is_loopback", "load", "masked", "secret_values",
]

ENV_PREFIX = "FOOTYD_"
MASK = "**********"


# Keys that change behaviour live; everything else is applied on the next start.
HOT_KEYS: frozenset[str] = frozenset(
    {
        "scope.teams",
        "scope.leagues",
        "scope.season",
        "ingest.days_ahead",
        "ingest.at",
        "monitor.poll_interval_s",
        "monitor.staging_check_interval_s",
        "monitor.activate_before_s",
        "monitor.complete_grace_s",
        "monitor.max_poll_interval_s",
        "monitor.keep_raw",
        "monitor.poll_shape",
        "goals.confirm_polls",
        "goals.cancel_polls",
        "goals.match_window_min",
        "goals.on_cancel",
        "search.attempts",
        "search.interval_s",
        "search.schedule",
        "search.window_margin_s",
        "search.team_aliases",
        "search.max_candidates_per_attempt",
        "search.workers",
        "search.due_scan_s",
        "download.concurrency",
        "download.timeout_s",
        "download.socket_timeout_s",
        "download.max_size_mb",
        "download.min_duration_s",
        "download.max_duration_s",
        "download.min_short_side_px",
        "download.aspect_min",
        "download.aspect_max",
        "download.max_attempts",
        "download.retry_backoff_s",
        "download.allow_private_addresses",
        "download.allowed_networks",
        "dedup.max_hamming",
        "dedup.min_consecutive",
        "api_football.daily_reserve",
        "log.level",
        "log.libraries",
        "shutdown.intake_s",
        "shutdown.search_s",
        "shutdown.download_s",
        "shutdown.dedup_s",
        "shutdown.close_s",
        "notify.webhooks",
        "notify.max_attempts",
        "notify.backoff_base_s",
        "notify.backoff_max_s",
        "notify.max_event_age_s",
        "notify.url_ttl_s",
        "retention.days",
        "retention.at",
        "retention.stale_upload_s",
    }
)


def is_hot(key: str) -> bool:
    """True when a dotted key can change without a restart."""
    return key in HOT_KEYS or any(key.startswith(k + ".") for k in HOT_KEYS)


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError([f"{'.'.join(path)}: cannot override, {part} is not a section"])
        node = child
    node[path[-1]] = value


def _is_text(annotation: Any) -> bool:
    """True for str, SecretStr, Path and string Literal fields (and their optional forms)."""
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    kinds = [a for a in args if a is not type(None)]
    return bool(kinds) and all(
        a in (str, SecretStr, Path)
        or (get_origin(a) is Literal and all(isinstance(v, str) for v in get_args(a)))
        for a in kinds
    )


def env_field_kind(path: list[str]) -> Literal["text", "literal"] | None:
    """How an env override of this key path is parsed: raw text, a TOML literal, or None (no key)."""
    model: type[BaseModel] = Config
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None and part.endswith("_file") and i == len(path) - 1:
            base = model.model_fields.get(part[: -len("_file")])
            return "text" if base is not None and _is_text(base.annotation) else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
            continue
        if i == len(path) - 1:
            return "text" if _is_text(ann) else "literal"
        if get_origin(ann) is dict and i == len(path) - 2:  # log.libraries.X, search.team_aliases.X
            return "text" if _is_text(get_args(ann)[1]) else "literal"
        return None
    return None  # a whole section cannot be set from one variable


def _parse_env_value(raw: str) -> Any:
    """Env values are TOML literals when they parse as one (42, true, [1, 2]), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(tree: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        # secrets and other text keys take the raw string: an all-digit API key stays a string
        value = raw if env_field_kind(path) == "text" else _parse_env_value(raw)
        _set_path(tree, path, value)


def _resolve_files(tree: dict[str, Any], prefix: str, errors: list[str]) -> None:
    """Replace `<key>_file = PATH` with `<key> = contents` (docker/systemd credentials)."""
    for key in list(tree):
        value = tree[key]
        where = f"{prefix}{key}"
        if isinstance(value, dict):
            _resolve_files(value, where + ".", errors)
        elif isinstance(value, list):  # arrays of tables ([[notify.webhooks]])
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _resolve_files(item, f"{where}.{i}.", errors)
        elif key.endswith("_file") and key != "cookies_file" and isinstance(value, str):
            target = key[: -len("_file")]
            try:
                tree[target] = Path(value).read_text().strip()
            except OSError as exc:
                errors.append(f"{where}: cannot read secret file ({exc.strerror})")
            del tree[key]


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{loc}: {msg}")
    return out


def build(tree: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a config tree (after env overrides and *_file secrets) or raise ConfigError."""
    tree = json.loads(json.dumps(tree, default=str))  # deep copy, plain types
    _apply_env(tree, os.environ if env is None else env)
    errors: list[str] = []
    _resolve_files(tree, "", errors)
    if errors:
        raise ConfigError(errors)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def load(path: Path | str | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file at path (None: defaults only) and build the effective config."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            tree = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError([f"(file): {path} does not exist"]) from None
        except OSError as exc:
            raise ConfigError([f"(file): cannot read {path}: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"(file): {path} is not valid TOML: {exc}"]) from None
    return build(tree, env)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            out.update(_flatten(getattr(obj, name), f"{prefix}{name}."))
        return out
    key = prefix[:-1]
    if isinstance(obj, SecretStr):
        # compare secrets by digest so diff() never holds the value itself
        out[key] = ("secret", hashlib.sha256(obj.get_secret_value().encode()).hexdigest())
    elif isinstance(obj, Path):
        out[key] = str(obj)
    else:
        out[key] = obj
    return out


def diff(old: Config, new: Config) -> list[str]:
    """Dotted keys whose effective values differ between two configs."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, every secret replaced by a mask."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return {name: walk(getattr(obj, name)) for name in type(obj).model_fields}
        if isinstance(obj, SecretStr):
            return MASK if obj.get_secret_value() else ""
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    result = walk(cfg)
    assert isinstance(result, dict)
    return result


def config_hash(cfg: Config) -> str:
    """A short stable digest of the effective config (secrets included only as digests)."""
    flat = _flatten(cfg)
    blob = json.dumps(flat, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def secret_values(cfg: Config) -> list[str]:
    """Every non-empty secret value, for log redaction."""
    values = []
    for v in _flatten_raw(cfg):
        if isinstance(v, SecretStr) and v.get_secret_value():
            values.append(v.get_secret_value())
    return values


def _flatten_raw(obj: Any) -> list[Any]:
    if isinstance(obj, BaseModel):
        out: list[Any] = []
        for name in type(obj).model_fields:
            out.extend(_flatten_raw(getattr(obj, name)))
        return out
    if isinstance(obj, list):  # e.g. notify.webhooks: their URLs and secrets are redacted too
        return [v for item in obj for v in _flatten_raw(item)]
    return [obj]
