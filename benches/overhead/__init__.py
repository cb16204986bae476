"""bench overhead: how much slower a workload runs inside each target than on the host
(program.py: the workload; runners.py: one runner per target; bench.py: the rounds)."""
