"""Every commented example in config.toml parses and validates when uncommented, one at a time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from footyd import config as config_mod

CONFIG_TOML = Path(__file__).resolve().parent.parent / "config.toml"
EXAMPLE = re.compile(r"^# (\[\[?[a-z_.]+\]\]?|[a-z_]+ = \S)")
CONTINUED = re.compile(r"^#\s{8,}\S")  # a comment continuing the line above, aligned right


def example_blocks(lines: list[str]) -> list[list[int]]:
    """Runs of commented example lines (a key = value, or a table header and its keys)."""
    blocks: list[list[int]] = []
    last = -2
    for i, line in enumerate(lines):
        if CONTINUED.match(line) and last == i - 1:
            last = i  # part of the example above, stays a comment
        elif EXAMPLE.match(line):
            if blocks and last == i - 1 and not line.startswith("# ["):
                blocks[-1].append(i)
            else:
                blocks.append([i])
            last = i
    return blocks


def _uncomment(line: str) -> str:
    return line[2:]


LINES = CONFIG_TOML.read_text().splitlines()
BLOCKS = example_blocks(LINES)


def test_the_file_has_the_examples_this_test_is_about() -> None:
    heads = [LINES[b[0]] for b in BLOCKS]
    assert any(h.startswith("# [[notify.webhooks]]") for h in heads)
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[LINES[b[0]][2:30] for b in BLOCKS])
def test_each_commented_example_validates_when_uncommented(block: list[int]) -> None:
    lines = list(LINES)
    for i in block:
        lines[i] = _uncomment(lines[i])
    tree = tomllib.loads("\n".join(lines))
    config_mod.build(tree, env={})
