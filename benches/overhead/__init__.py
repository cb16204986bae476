"""bench overhead: how much slower a workload runs inside each target than on the host."""
