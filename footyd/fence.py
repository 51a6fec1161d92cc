"""Fencing for the writes made under the leader lease (polls, ingest, retention).

Two checks, because a leader can be paused (SIGSTOP, a VM stall, a long GC) at any point:
`check()` before each write refuses at once when this replica no longer holds a live lease
(its own monotonic clock says the last renewal is `lease_ttl_s` old), and every fixture or goal
written carries `lease_epoch`, with a filter that matches only documents no newer leader has
written, so a write that left before the pause and lands after the takeover still cannot
overwrite what the new leader wrote.
"""

from __future__ import annotations

from typing import Any, Protocol

from footyd.errors import FootydError

FIELD = "lease_epoch"


class Fenced(FootydError):
    """This replica lost the leader lease: the write it was about to make is refused."""

    label = "fenced"


class Fence(Protocol):
    """What a writer under the lease asks before and while it writes."""

    def check(self) -> None:
        """Raise Fenced unless this replica leads now."""

    def guard(self, flt: dict[str, Any]) -> dict[str, Any]:
        """The filter, narrowed to documents no newer leader has written."""

    def stamp(self, update: dict[str, Any]) -> dict[str, Any]:
        """The update (operators, or a whole new document), marked with this leader's epoch."""


class Unfenced:
    """The only replica (tests, the demo, the CLI): every write goes through unchanged."""

    def check(self) -> None:
        return None

    def guard(self, flt: dict[str, Any]) -> dict[str, Any]:
        return flt

    def stamp(self, update: dict[str, Any]) -> dict[str, Any]:
        return update


UNFENCED = Unfenced()


def epoch_guard(flt: dict[str, Any], epoch: int) -> dict[str, Any]:
    # a document never written under a lease has no epoch: `$not $gt` matches it too
    return {**flt, FIELD: {"$not": {"$gt": epoch}}}


def epoch_stamp(update: dict[str, Any], epoch: int) -> dict[str, Any]:
    if not any(key.startswith("$") for key in update):
        return {**update, FIELD: epoch}  # a document to insert
    return {**update, "$set": {**update.get("$set", {}), FIELD: epoch}}
