"""The MongoDB a bench runs against: FOOTYD_BENCH_MONGO_URI, or a SecantusDB subprocess."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SECANTUS_NOTE = "MongoDB = the SecantusDB stand-in (one request at a time: pessimistic)"


@contextmanager
def bench_mongo(tmp: Path) -> Iterator[tuple[str, str]]:
    """Yield (uri, a note naming what it is); a SecantusDB started here is stopped after."""
    uri = os.environ.get("FOOTYD_BENCH_MONGO_URI")
    if uri:
        yield uri, "MongoDB = real MongoDB (FOOTYD_BENCH_MONGO_URI)"
        return
    from footyd.sim.mongo import start_secantus

    proc, uri = start_secantus(tmp)
    try:
        yield uri, SECANTUS_NOTE
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
