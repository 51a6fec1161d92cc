"""Judge a valid config as a whole: problems that stop a run, and settings that leave it idle."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri

from footyd.config import ENV_PREFIX, Config, env_field_kind
from footyd.config.findings import Finding, Verdict, is_set
from footyd.runtime import scratch

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
# FOOTYD_* variables that are not config keys
ENV_NOT_KEYS = ("FOOTYD_CONFIG", "FOOTYD_BUILD_COMMIT", "FOOTYD_TEST_", "FOOTYD_BENCH_",
                "FOOTYD_DEMO_")


def mongo_hosts(uri: str) -> str:
    """The host[:port] list of a MongoDB URI, never its user name or password."""
    rest = uri.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    return authority.rsplit("@", 1)[-1] or "(no host)"


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0] + "://" if "://" in uri else uri[:12] + "..."


def _mongo(cfg: Config) -> list[Finding]:
    uri = cfg.mongo.uri.get_secret_value()
    fix = "set mongo.uri (FOOTYD_MONGO__URI) to mongodb://HOST:PORT or mongodb+srv://HOST"
    if not uri.startswith(MONGO_SCHEMES):
        return [Finding("mongo.uri", f"scheme {_scheme(uri)!r} is not mongodb:// or mongodb+srv://",
                        fix)]
    if uri.startswith("mongodb://"):  # +srv needs DNS: left to the connection
        try:
            parse_uri(uri)
        except (InvalidURI, ConfigurationError, ValueError) as exc:
            reason = str(exc).replace(uri, "(mongo.uri)")
            return [Finding("mongo.uri", f"not a valid MongoDB URI ({reason[:200]})", fix)]
    return []


def _sources(cfg: Config) -> tuple[list[Finding], list[Finding]]:
    errors: list[Finding] = []
    warnings: list[Finding] = []
    usable = 0
    # every source's HTTP client comes with it: only a check of enabled sources pays for that
    from footyd.sources.registry import SOURCES

    for name in dict.fromkeys(cfg.search.sources):
        verdict = SOURCES[name].check(getattr(cfg.sources, name))
        errors += verdict.errors
        warnings += verdict.warnings
        usable += verdict.can_search
    if not cfg.search.sources:
        warnings.append(Finding(
            "search.sources", "no video source is enabled: goals are detected but never searched",
            "FOOTYD_SEARCH__SOURCES=reddit with a free Reddit app (FOOTYD_SOURCES__REDDIT__CLIENT_ID,"
            " FOOTYD_SOURCES__REDDIT__CLIENT_SECRET), and/or x_api (the paid X API: "
            "FOOTYD_SOURCES__X_API__BEARER_TOKEN)"))
    elif usable == 0 and not errors:
        warnings.append(Finding("search.sources", "no enabled source can search",
                                "enable reddit (free), search_service or x_api (paid)"))
    return errors, warnings


def _storage(cfg: Config) -> list[Finding]:
    st = cfg.storage
    if st.kind == "local" and st.local_dir is None:
        return [Finding("storage.local_dir", 'required when storage.kind = "local"',
                        "FOOTYD_STORAGE__LOCAL_DIR=/var/lib/footyd/clips")]
    if st.kind == "s3" and is_set(st.access_key_id) != is_set(st.secret_access_key):
        return [Finding("storage.access_key_id", "S3 credentials need both access_key_id and "
                        "secret_access_key (or neither: the AWS credential chain)",
                        "FOOTYD_STORAGE__ACCESS_KEY_ID and FOOTYD_STORAGE__SECRET_ACCESS_KEY")]
    return []


def env_warnings(env: Mapping[str, str]) -> list[Finding]:
    """FOOTYD_* variables that set no config key (they would be silently ignored)."""
    out = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_NOT_KEYS):
            continue
        if "__" in name:
            continue  # a wrong double-underscore name is already an "unknown key" error
        meant = _meant(name[len(ENV_PREFIX):])
        fix = (f"did you mean {meant}?" if meant else
               "sections and keys are joined by a double underscore, e.g. "
               "FOOTYD_API_FOOTBALL__API_KEY")
        out.append(Finding(name, "matches no config key and is ignored", fix))
    return out


def _meant(rest: str) -> str | None:
    """The FOOTYD_ name a single-underscore variable most likely meant, if exactly one fits."""
    words = rest.lower().split("_")
    if len(words) > 12:
        return None
    fits = []
    for mask in range(1, 1 << (len(words) - 1)):
        path, cur = [], words[0]
        for i, word in enumerate(words[1:]):
            if mask >> i & 1:
                path.append(cur)
                cur = word
            else:
                cur += "_" + word
        path.append(cur)
        if env_field_kind(path) is not None:
            fits.append(ENV_PREFIX + "__".join(path).upper())
    return fits[0] if len(fits) == 1 else None


def judge(cfg: Config, env: Mapping[str, str] | None = None) -> Verdict:
    """Every hard error and idle warning of a validated config (env: unused FOOTYD_* names)."""
    errors = _mongo(cfg) + _storage(cfg) + [
        Finding(*line.split(": ", 1)) for line in scratch.problems(cfg)]
    src_errors, warnings = _sources(cfg)
    errors += src_errors
    if not is_set(cfg.api_football.api_key):
        warnings.insert(0, Finding(
            "api_football.api_key", "not set: no fixtures are ingested or monitored",
            "FOOTYD_API_FOOTBALL__API_KEY or api_football.api_key_file"))
    if not cfg.scope.teams and not cfg.scope.leagues:
        warnings.insert(1 if warnings else 0, Finding(
            "scope", "no teams and no leagues: nothing is tracked",
            'FOOTYD_SCOPE__TEAMS="[40, 42]" or FOOTYD_SCOPE__LEAGUES="[39]" (scope.teams, '
            "scope.leagues)"))
    warnings += _dedup(cfg) + env_warnings(os.environ if env is None else env)
    return Verdict(errors, warnings)


def _dedup(cfg: Config) -> list[Finding]:
    found: list[Finding] = []
    if cfg.dedup.sample_fps is not None:
        found.append(Finding("dedup.sample_fps", "unused: both sides are fingerprinted at "
                             "dedup.reference_fps", "remove dedup.sample_fps"))
    if cfg.dedup.workers > cfg.pool.workers:
        found.append(Finding(
            "dedup.workers", f"{cfg.dedup.workers} dedup workers share {cfg.pool.workers} pool "
            "processes (pool.workers): the extra ones wait", f"pool.workers = {cfg.dedup.workers}"))
    return found

