"""Config: key-path errors, unknown keys, env and *_file overrides, masking, diff and hot keys."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from footyd import config as config_mod
from footyd import logs
from footyd.config import Config
from footyd.config.check import judge
from footyd.config.reload import ReloadRejected, plan_reload
from footyd.errors import ConfigError, ExitCode

ROOT = Path(__file__).resolve().parent.parent
SECRET = "api-key-0123456789abcdef"


def _errors(tree: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_mod.build(tree, env or {})
    return info.value.errors


def test_example_config_is_complete_and_valid() -> None:
    cfg = config_mod.load(ROOT / "config.toml", env={})
    assert cfg == Config()  # the example documents the defaults
    text = (ROOT / "config.toml").read_text()
    for key in config_mod.diff(Config(), Config(monitor={"poll_interval_s": 99})) + [
        k for k in _all_keys(cfg)
    ]:
        assert key.rsplit(".", 1)[-1] in text, f"{key} is not documented in config.toml"


def _all_keys(cfg: Config) -> list[str]:
    flat = config_mod._flatten(cfg)
    return sorted(flat)


def test_every_error_names_its_key_path() -> None:
    errors = _errors(
        {
            "monitor": {"poll_interval_s": "soon"},
            "download": {"concurrency": 0, "max_size_mb": -1},
            "goals": {"on_cancel": "shred"},
        }
    )
    prefixes = {e.split(":")[0] for e in errors}
    assert prefixes == {
        "monitor.poll_interval_s",
        "download.concurrency",
        "download.max_size_mb",
        "goals.on_cancel",
    }


def test_cross_field_rules_name_their_section() -> None:
    assert _errors({"monitor": {"poll_interval_s": 5}})[0].startswith("monitor:")
    assert "below poll_floor_s" in _errors({"monitor": {"poll_interval_s": 5}})[0]
    assert _errors({"download": {"aspect_min": 2.0, "aspect_max": 1.5}})[0].startswith("download:")


def test_unknown_keys_and_sections_are_rejected() -> None:
    errors = _errors({"monitor": {"poll_intervall_s": 30}, "extras": {"x": 1},
                      "notify": {"webhooks": [{"url": "https://h.example/x", "formatt": "json"}]}})
    assert "monitor.poll_intervall_s: unknown key (did you mean poll_interval_s?)" in errors
    assert "extras: unknown key" in errors  # nothing near: no guess
    assert "notify.webhooks.0.formatt: unknown key (did you mean format?)" in errors


def test_env_overrides_any_key_with_toml_literals() -> None:
    cfg = config_mod.build(
        {"monitor": {"poll_interval_s": 30}},
        {
            "FOOTYD_MONITOR__POLL_INTERVAL_S": "20",
            "FOOTYD_SCOPE__TEAMS": "[40, 42]",
            "FOOTYD_STORAGE__BUCKET": "my-bucket",
            "FOOTYD_SOURCES__X_API__MAX_RESULTS": "100",
            "OTHER_VAR": "ignored",
        },
    )
    assert cfg.monitor.poll_interval_s == 20
    assert cfg.scope.teams == [40, 42]
    assert cfg.storage.bucket == "my-bucket"
    assert cfg.sources.x_api.max_results == 100


def test_env_unknown_key_names_the_variable_and_the_one_it_meant() -> None:
    assert _errors({}, {"FOOTYD_MONITOR__POL_INTERVAL_S": "20"}) == [
        "FOOTYD_MONITOR__POL_INTERVAL_S: matches no config key (monitor.pol_interval_s); "
        "did you mean FOOTYD_MONITOR__POLL_INTERVAL_S?"]
    assert _errors({}, {"FOOTYD_API_FOOTBALL__APIKEY": "abc"}) == [
        "FOOTYD_API_FOOTBALL__APIKEY: matches no config key (api_football.apikey); "
        "did you mean FOOTYD_API_FOOTBALL__API_KEY?"]
    assert _errors({}, {"FOOTYD_NOPE__XYZZY": "1"}) == [
        "FOOTYD_NOPE__XYZZY: matches no config key (nope.xyzzy)"]


def test_env_lists_take_commas_and_a_bad_value_names_its_variable() -> None:
    cfg = config_mod.build({}, {"FOOTYD_SCOPE__TEAMS": "40,42", "FOOTYD_SCOPE__LEAGUES": "39",
                                "FOOTYD_SEARCH__SOURCES": "reddit, x_api"})
    assert cfg.scope.teams == [40, 42] and cfg.scope.leagues == [39]
    assert cfg.search.sources == ["reddit", "x_api"]
    (err,) = _errors({}, {"FOOTYD_SCOPE__TEAMS": "forty"})
    assert err.startswith("scope.teams.0: ") and "(from FOOTYD_SCOPE__TEAMS; " in err
    assert "[40, 42] or 40,42" in err


def test_secrets_from_files_and_env(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    cfg = config_mod.build(
        {"api_football": {"api_key_file": str(key_file)}},
        {"FOOTYD_SOURCES__X_API__BEARER_TOKEN_FILE": str(key_file),
         "FOOTYD_MONGO__URI": "mongodb://u:pw-secret@db:27017"},
    )
    assert cfg.api_football.api_key is not None
    assert cfg.api_football.api_key.get_secret_value() == SECRET
    assert cfg.sources.x_api.bearer_token is not None
    assert cfg.sources.x_api.bearer_token.get_secret_value() == SECRET
    assert SECRET not in repr(cfg) and "pw-secret" not in repr(cfg)
    errors = _errors({"api_football": {"api_key_file": str(tmp_path / "missing")}})
    assert errors[0].startswith("api_football.api_key_file: cannot read secret file")


def test_check_config_masks_secrets_and_reports_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[api_football]\napi_key = "{SECRET}"\n[mongo]\nuri = "mongodb://u:pw-x@h/"\n')
    ok = subprocess.run([sys.executable, "-m", "footyd", "check-config", "-c", str(path), "--json"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["config"]["api_football"]["api_key"] == config_mod.MASK
    assert data["config"]["mongo"]["uri"] == "mongodb://u:" + config_mod.MASK + "@h/"  # host shown
    assert SECRET not in ok.stdout + ok.stderr and "pw-x" not in ok.stdout
    text = subprocess.run([sys.executable, "-m", "footyd", "check-config", "-c", str(path)],
                          capture_output=True, text=True, check=False)
    assert "monitor.poll_interval_s = 30.0  # hot" in text.stdout
    assert "mongo.uri = " in text.stdout and "# restart" in text.stdout
    path.write_text("[download]\nconcurrency = -1\n[nope]\n")
    bad = subprocess.run([sys.executable, "-m", "footyd", "check-config", "-c", str(path)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == ExitCode.CONFIG
    assert "download.concurrency:" in bad.stderr and "nope: unknown key" in bad.stderr


def test_diff_and_hot_classification() -> None:
    old = Config()
    new = config_mod.build({"log": {"level": "debug"}, "mongo": {"database": "other"},
                            "api_football": {"api_key": "k-1234"}}, {})
    changed = config_mod.diff(old, new)
    assert changed == ["api_football.api_key", "log.level", "mongo.database"]
    assert config_mod.is_hot("log.level") and config_mod.is_hot("scope.teams")
    assert not config_mod.is_hot("mongo.database")
    assert config_mod.config_hash(old) != config_mod.config_hash(new)


def test_the_hot_marker_on_a_field_makes_its_key_live() -> None:
    # dedup reads its match thresholds on every run: a reload applies them
    assert {"dedup.min_match_s", "dedup.min_match_ratio", "dedup.min_match_coverage",
            "dedup.match_mirrored", "dedup.match_crops"} <= config_mod.HOT_KEYS
    assert config_mod.is_hot("notify.webhooks.0.url")  # a marked list covers its items
    assert not config_mod.is_hot("dedup.reference_fps") and not config_mod.is_hot("dedup.workers")


def test_plan_reload_applies_hot_keys_and_keeps_restart_only_ones_running() -> None:
    old = Config()
    new = config_mod.build({"log": {"level": "debug"}, "mongo": {"database": "other"},
                            "dedup": {"min_match_s": 3.0}}, {})
    plan = plan_reload(old, new)
    assert plan.hot == ["dedup.min_match_s", "log.level"] and plan.cold == ["mongo.database"]
    assert plan.config.log.level == "debug" and plan.config.dedup.min_match_s == 3.0
    assert plan.config.mongo.database == old.mongo.database  # waits for the restart


def test_plan_reload_refuses_hot_keys_that_need_their_restart_only_partner() -> None:
    new = config_mod.build({"monitor": {"poll_floor_s": 5.0, "poll_interval_s": 10.0}}, {})
    with pytest.raises(ReloadRejected) as caught:
        plan_reload(Config(), new)
    assert caught.value.keys == ["monitor.poll_floor_s", "monitor.poll_interval_s"]
    assert caught.value.restart_only == ["monitor.poll_floor_s"]
    assert any("poll_interval_s" in e and "poll_floor_s" in e for e in caught.value.errors)


def test_logs_redact_secret_values_and_bridge_stdlib() -> None:
    out = io.StringIO()
    logs.setup(level="info", fmt="json", secrets=[SECRET], stream=out, libraries={"pymongo": "warning"})
    try:
        structlog.get_logger("t").info("api_call_failed", url=f"https://x/?key={SECRET}")
        logging.getLogger("pymongo").warning("stdlib line %s", SECRET)
        logging.getLogger("pymongo").info("below the library level")
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            structlog.get_logger("t").error("crash", exc_info=True)
    finally:
        logs.setup(level="info", fmt="json", stream=sys.stderr)
    text = out.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert SECRET not in text
    assert [ln["event"] for ln in lines] == ["api_call_failed", "stdlib line [redacted]", "crash"]
    assert lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    assert "boom [redacted]" in lines[2]["exception"]


def test_an_old_sample_fps_loads_with_a_warning_and_the_pool_has_its_own_size() -> None:
    old_file = config_mod.build({"dedup": {"sample_fps": 2.0, "workers": 4}}, {})
    warned = {f.key: f for f in judge(old_file, env={}).warnings}
    assert "remove dedup.sample_fps" in warned["dedup.sample_fps"].fix
    assert warned["dedup.workers"].fix == "pool.workers = 4"  # dedup no longer sizes the pool
    sized = config_mod.build({"dedup": {"workers": 4}, "pool": {"workers": 4}}, {})
    assert {"dedup.sample_fps", "dedup.workers"}.isdisjoint(f.key for f in judge(sized, env={}).warnings)
