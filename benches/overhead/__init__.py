"""Workload overhead of each isolation target (issue 15)."""
