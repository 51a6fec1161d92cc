"""The one Prometheus registry; modules define their metrics against it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD_INFO = Info("footyd_build", "Version and build of the running daemon.", registry=REGISTRY)
CONFIG_RELOAD_SUCCESS = Gauge(
    "footyd_config_last_reload_success",
    "1 if the last config reload succeeded, else 0.",
    registry=REGISTRY,
)
CONFIG_RELOAD_TIMESTAMP = Gauge(
    "footyd_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful config load.",
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "footyd_config_reloads", "Config reload attempts by outcome.", ["outcome"], registry=REGISTRY
)
SCHEDULER_TICK = Gauge(
    "footyd_scheduler_last_tick_timestamp_seconds",
    "Unix time of the last scheduler heartbeat.",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("footyd_queue_depth", "Items waiting per stage queue.", ["stage"], registry=REGISTRY)
IN_FLIGHT = Gauge("footyd_in_flight", "Items being handled per stage.", ["stage"], registry=REGISTRY)
STAGE_OUTCOMES = Counter(
    "footyd_stage_outcomes", "Handled items per stage and outcome.", ["stage", "outcome"],
    registry=REGISTRY,
)
