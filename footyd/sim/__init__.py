"""Simulators for tests, demo and benchmarks: API-Football, clip host, sources."""
