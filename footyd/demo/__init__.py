"""`footyd demo`: one scripted match day on the simulators; `run_demo` is the Python entry."""

from __future__ import annotations

from footyd.demo.runner import DemoOptions, DemoResult, run_demo, started_demo

__all__ = ["DemoOptions", "DemoResult", "run_demo", "started_demo"]
