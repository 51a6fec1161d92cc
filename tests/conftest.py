"""Test session: real servers (MongoDB-wire, S3, simulator) started once, fresh state per test."""

from __future__ import annotations

import pytest

# order matters: a plugin is registered before any plugin that imports it
pytest_plugins = [
    "tests.plugins.secrets",
    "tests.plugins.servers",
    "tests.plugins.seaweed",
    "tests.plugins.sim",
    "tests.plugins.clips",
    "tests.plugins.search",
    "tests.plugins.daemon",
    "tests.plugins.monitoring",
    "tests.plugins.web",
    "tests.plugins.browser",
    "tests.plugins.demo",
    "tests.plugins.corpus",
]

# The longest files first (measured with --durations, 2026-12-05): `--dist loadfile` hands files
# to workers in collection order, and the 2.5-minute chaos file picked up late kept one worker
# busy a minute after the other three were done. Only the order changes (stable within a file).
LONGEST_FIRST = ("test_chaos.py", "test_dedup_order.py", "test_demo_interrupt.py",
                 "test_fault_matrix.py", "test_blobs.py", "test_web_browser.py", "test_replicas.py",
                 "test_demo.py", "test_ops_commands.py", "test_monitor_hostile.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
