"""A minimal sd_notify: datagrams to $NOTIFY_SOCKET, a no-op without it."""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends systemd notifications; every failure is logged, never raised."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send `KEY=VALUE` lines as one datagram; False when disabled or failed."""
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(addr)
                sock.sendall("\n".join(fields).encode())
        except OSError:
            log.warning("sd_notify_failed", fields=list(fields), exc_info=True)
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading config")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=draining")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")


def watchdog_interval_s() -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when systemd asks for pings for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return None
