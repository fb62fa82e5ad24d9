"""Benchmarks: timings live here, not in tests (see bench/README.md)."""
