"""The running daemon: lifecycle, wiring, scheduler, health endpoint, heartbeat, systemd notify."""
