"""Test support shared across test folders and benchmarks (tests/ is on pytest's pythonpath)."""
