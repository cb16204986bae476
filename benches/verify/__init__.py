"""``isoinspect verify``: start containers with limits, drive a workload against each limit and
check that the kernel enforced it (OOM kill, CFS throttling, pids.max, blkio/io.max), with the
evidence. One module per check family; ``runtimes`` holds the targets, ``verify`` the runner."""
