"""Test session: real servers (MongoDB-wire, S3, simulator) started once, fresh state per test."""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.servers",
    "tests.plugins.daemon",
    "tests.plugins.sim",
    "tests.plugins.clips",
]
