"""Configuration: TOML loading, FOOTYD_* env overrides, *_file secrets, hot keys, diff().

The models live in config/models.py and are re-exported here (`from footyd.config import Config`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from footyd.config.models import (
    HOT,
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
    PoolConfig,
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
    "IngestConfig", "LevelName", "LogConfig", "MongoConfig", "MonitorConfig", "NotifyConfig", "PoolConfig",
    "RedditConfig", "RetentionConfig", "ScopeConfig", "SearchConfig", "SearchServiceConfig",
    "Section", "ShutdownConfig", "SnscrapeConfig", "SourceName", "SourcesConfig", "StorageConfig",
    "WebConfig", "WebhookConfig", "WebhookEvent", "XApiConfig", "build", "config_hash", "diff",
    "env_field_kind", "is_hot", "is_loopback", "load", "mask_uri", "masked", "secret_values",
]

ENV_PREFIX = "FOOTYD_"
MASK = "**********"


def _hot_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        if HOT in info.metadata:
            yield prefix + name
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _hot_keys(info.annotation, f"{prefix}{name}.")


# Keys that change behaviour live (marked HOT on their fields); the rest apply at the next start.
HOT_KEYS: frozenset[str] = frozenset(_hot_keys(Config))


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


def _field_at(path: list[str]) -> tuple[Any, bool] | None:
    """(annotation, is a `*_file` twin) of the key at path, or None when there is no such key."""
    model: type[BaseModel] = Config
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None and part.endswith("_file") and i == len(path) - 1:
            base = model.model_fields.get(part[: -len("_file")])
            return (base.annotation, True) if base is not None and _is_text(base.annotation) else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
            continue
        if i == len(path) - 1:
            return ann, False
        if get_origin(ann) is dict and i == len(path) - 2:  # log.libraries.X, search.team_aliases.X
            return get_args(ann)[1], False
        return None
    return None  # a whole section cannot be set from one variable


def env_field_kind(path: list[str]) -> Literal["text", "literal"] | None:
    """How an env override of this key path is parsed: raw text, a TOML literal, or None (no key)."""
    found = _field_at(path)
    if found is None:
        return None
    ann, is_file = found
    return "text" if is_file or _is_text(ann) else "literal"


def _is_list(annotation: Any) -> bool:
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(get_origin(a) is list for a in args)


def key_paths(model: type[BaseModel] = Config, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every settable key path (sections recursed into)."""
    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += key_paths(ann, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def _near(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)
    return found[0] if found else None


def env_name(path: Sequence[str]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


def _parse_env_value(raw: str) -> Any:
    """Env values are TOML literals when they parse as one (42, true, [1, 2]), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_value(path: list[str], raw: str) -> Any:
    found = _field_at(path)
    if found is not None and (found[1] or _is_text(found[0])):
        return raw  # secrets and other text keys take the raw string: "0123" stays a string
    value = _parse_env_value(raw)
    if found is not None and not isinstance(value, list) and _is_list(found[0]):
        # a list also reads as items separated by commas: FOOTYD_SCOPE__TEAMS=40,42 (or 40)
        value = [_parse_env_value(item.strip()) for item in raw.split(",") if item.strip()]
    return value


def _apply_env(tree: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Set every FOOTYD_SECTION__KEY variable into the tree; returns {dotted key: variable}.
    A variable naming no key is an error that names it (and the key it most likely meant)."""
    applied: dict[str, str] = {}
    errors: list[str] = []
    known = [".".join(p) for p in key_paths()]
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if _field_at(path) is None:
            near = _near(".".join(path), known)
            errors.append(f"{name}: matches no config key ({'.'.join(path)})"
                          + (f"; did you mean {env_name(near.split('.'))}?" if near else ""))
            continue
        _set_path(tree, path, _env_value(path, raw))
        applied[".".join(path)] = name
    if errors:
        raise ConfigError(errors)
    return applied


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


def _model_at(parts: Sequence[Any]) -> type[BaseModel] | None:
    model: Any = Config
    for part in parts:
        if isinstance(part, int):
            continue  # an item of a list of tables ([[notify.webhooks]])
        field = model.model_fields.get(part)
        ann = field.annotation if field is not None else None
        if get_origin(ann) is list:
            ann = get_args(ann)[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _format_errors(exc: ValidationError, from_env: Mapping[str, str] | None = None) -> list[str]:
    out = []
    for err in exc.errors():
        parts = err["loc"]
        loc = ".".join(str(p) for p in parts) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            model = _model_at(parts[:-1])
            near = _near(str(parts[-1]), list(model.model_fields)) if model else None
            if near:
                msg += f" (did you mean {near}?)"
        var = next((v for k, v in (from_env or {}).items()
                    if loc == k or loc.startswith(k + ".")), None)
        if var is not None:
            msg += f" (from {var}"
            if err["type"] in ("list_type", "int_parsing", "float_parsing", "bool_parsing"):
                msg += "; numbers, booleans and lists are TOML literals: 42, true, [40, 42] or 40,42"
            msg += ")"
        out.append(f"{loc}: {msg}")
    return out


def build(tree: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a config tree (after env overrides and *_file secrets) or raise ConfigError."""
    tree = json.loads(json.dumps(tree, default=str))  # deep copy, plain types
    from_env = _apply_env(tree, os.environ if env is None else env)
    errors: list[str] = []
    _resolve_files(tree, "", errors)
    if errors:
        raise ConfigError(errors)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, from_env)) from None


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
    # the MongoDB URI says where the data is: show it, with only its password masked
    result["mongo"]["uri"] = mask_uri(cfg.mongo.uri.get_secret_value())
    return result


_SENSITIVE_OPTION = re.compile(r"pass|secret|token|key|credential|authmechanismproperties", re.I)


def mask_uri(uri: str) -> str:
    """A MongoDB URI with its password and any credential-bearing option value masked."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return MASK if uri else ""
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}{':' + MASK if colon else ''}@{hosts}"
    path, qmark, query = tail.partition("?")
    if qmark:
        options = []
        for item in query.split("&"):
            name, eq, _value = item.partition("=")
            options.append(f"{name}={MASK}" if eq and _SENSITIVE_OPTION.search(name) else item)
        query = "&".join(options)
    return f"{scheme}://{authority}{slash}{path}{qmark}{query}"


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
