"""cgroup v2 (unified hierarchy) driver."""
