"""cgroup v1 (legacy and hybrid hierarchies) driver."""
