"""A late pre-start hook (bridge networking) runs while the container's first process has
already done everything but its exec: it waits for "go" with its privileges dropped, so
that work (~0.6 ms) overlaps the hook instead of following it."""

from __future__ import annotations

import os
import time

from isoinspect.runtime.container_state import ContainerState
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec


class WaitingChildProbe:
    """A late hook that finds the child blocked in read() on a pipe (the sync pipe) and
    notes its user ids there."""

    late = True

    def __init__(self) -> None:
        self.uids: list[str] = []

    def wants(self, record: ContainerState) -> bool:
        return True

    def prestart(self, runtime: Runtime, record: ContainerState, pid: int) -> None:
        deadline = time.monotonic() + 10  # a bound for a stuck child, not a speed check
        while time.monotonic() < deadline:
            with open(f"/proc/{pid}/syscall") as handle:
                fields = handle.read().split()
            if fields[0] == "0" and os.readlink(
                    f"/proc/{pid}/fd/{int(fields[1], 16)}").startswith("pipe:"):
                with open(f"/proc/{pid}/status") as handle:
                    self.uids += [line.split()[1] for line in handle
                                  if line.startswith("Uid:")]
                return
            time.sleep(0.001)
        raise AssertionError("the child never waited on its sync pipe")

    def poststop(self, runtime: Runtime, record: ContainerState) -> None:
        pass


def test_the_late_wait_comes_after_the_privileges_are_dropped(iso):
    runtime = Runtime(iso.root)
    probe = WaitingChildProbe()
    runtime.prestart_hooks.append(probe)
    devnull = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    try:
        code = runtime.run(ContainerSpec("busybox", ["true"], user="nobody", network="none",
                                         remove=True), stdio=(None, devnull, devnull))
    finally:
        os.close(devnull)
    assert code == 0
    assert probe.uids == ["65534"]  # root (0) while the wait still came before prepare()
