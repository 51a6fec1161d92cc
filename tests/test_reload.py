"""SIGHUP reloads whose hot keys are validated against restart-only keys never crash the daemon."""

from __future__ import annotations

import itertools
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, ValidationError
from structlog.testing import capture_logs

from footyd import config as config_mod
from footyd.config import Config
from footyd.errors import ExitCode
from footyd.metrics import CONFIG_RELOAD_SUCCESS
from footyd.runtime.daemon import Daemon
from tests.plugins.daemon import DaemonFactory, base_config, write_toml
from tests.plugins.servers import MongoServer, S3Server

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips it

FACTORS = (0.01, 0.1, 0.5, 2.0, 10.0, 100.0)


def _validated_models(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """Every config model (dotted prefix, class) that carries a model validator."""
    found = [(prefix, cls)] if cls.__pydantic_decorators__.model_validators else []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found += _validated_models(ann, f"{prefix}{name}.")
    return found


def _numeric_leaves(model: BaseModel, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.update(_numeric_leaves(value, f"{prefix}{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{name}"] = value
    return out


def _with(tree: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    for key, value in values.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node[p] = dict(node[p])
            node = node[p]
        node[parts[-1]] = value
    return tree


def _valid(cls: type[BaseModel], tree: dict[str, Any]) -> bool:
    try:
        cls.model_validate(tree)
    except ValidationError:
        return False
    return True


def validated_pairs() -> list[tuple[str, str, dict[str, float]]]:
    """(restart-only key, hot key, new values): a valid file whose merge with the running
    restart-only value is invalid, for every such pair under every model validator."""
    pairs = []
    for prefix, cls in _validated_models(Config):
        default = cls()
        tree = default.model_dump()
        leaves = _numeric_leaves(default)
        cold = [k for k in leaves if not config_mod.is_hot(prefix + k)]
        hot = [k for k in leaves if config_mod.is_hot(prefix + k)]
        for c, h in itertools.product(cold, hot):
            for fc, fh in itertools.product(FACTORS, FACTORS):
                new = {c: leaves[c] * fc or fc, h: leaves[h] * fh or fh}
                if isinstance(leaves[c], int):
                    new[c] = max(1, round(new[c]))
                if isinstance(leaves[h], int):
                    new[h] = max(1, round(new[h]))
                if _valid(cls, _with(tree, new)) and not _valid(cls, _with(tree, {h: new[h]})):
                    pairs.append((prefix + c, prefix + h, {prefix + k: v for k, v in new.items()}))
                    break
            else:
                continue
    return pairs


PAIRS = validated_pairs()


def test_the_enumeration_finds_the_known_pair() -> None:
    assert ("monitor.poll_floor_s", "monitor.poll_interval_s") in {(c, h) for c, h, _ in PAIRS}


@pytest.mark.parametrize(("cold", "hot", "values"), PAIRS, ids=[f"{c}+{h}" for c, h, _ in PAIRS])
async def test_reload_that_breaks_a_cross_field_rule_keeps_the_old_config(
    tmp_path: Path, cold: str, hot: str, values: dict[str, float]
) -> None:
    running = Config()
    path = write_toml(tmp_path / "c.toml", _nested(values))
    daemon = Daemon(running, path, install_signals=False)
    CONFIG_RELOAD_SUCCESS.set(1)
    with capture_logs() as logs:
        assert await daemon.reload() is False
    assert daemon.cfg is running
    assert CONFIG_RELOAD_SUCCESS._value.get() == 0
    failed = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed and {cold, hot} <= set(failed[0]["keys"]), failed
    assert failed[0]["restart_only"] == [cold]


def _nested(values: dict[str, float]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


async def test_sighup_lowering_floor_and_interval_keeps_running(
    daemon_factory: DaemonFactory, mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    tree = base_config(mongo_server, s3_server, tmp_path, f"r_{uuid.uuid4().hex[:10]}")
    tree["monitor"] = {"poll_floor_s": 15.0, "poll_interval_s": 30.0}
    proc = await daemon_factory(tree)
    await proc.wait_notify("READY=1")
    tree["monitor"] = {"poll_floor_s": 5.0, "poll_interval_s": 10.0}  # valid on its own
    write_toml(proc.config_path, tree)
    proc.send(signal.SIGHUP)
    failed = await proc.wait_log("config_reload_failed")
    assert {"monitor.poll_floor_s", "monitor.poll_interval_s"} <= set(failed["keys"])
    await proc.wait_notify("READY=1", count=2)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{tree['health']['listen']}/metrics") as resp:
            metrics = await resp.text()
        async with session.get(f"http://{tree['health']['listen']}/healthz") as resp:
            assert resp.status == 200
    assert "footyd_config_last_reload_success 0.0" in metrics
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit() == ExitCode.OK, proc.tail()
