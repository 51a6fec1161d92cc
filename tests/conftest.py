"""Test session: real servers (MongoDB-wire, S3, simulator) started once, fresh state per test."""

from __future__ import annotations

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
