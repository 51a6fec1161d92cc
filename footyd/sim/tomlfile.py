"""A tiny TOML writer for the configs that tests, benches and simulators hand the daemon."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any


def write_toml(path: Path, tree: dict[str, Any]) -> Path:
    """Write a config tree as TOML (tables of scalars, lists and inline dicts); checks it parses."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) or not v or k == "team_aliases"}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if k not in scalars:
                table(f"{name}.{k}", v)

    for section, body in tree.items():
        table(section, body)
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # the writer must produce valid TOML
    return path
