"""bench overhead: the same workload in every target and on the host (see bench.py)."""
