"""The library API as benchmarks and other parts use it: start-to-exec, hooks, cleanup."""

from __future__ import annotations

import os

import pytest

from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.runtime import Runtime
from isoinspect.runtime.spec import ContainerSpec


@pytest.fixture
def runtime(iso):
    return Runtime(iso.root)


class RecordingHook:
    """Sees the container between clone and exec: its command must not run yet."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[tuple[str, str]] = []
        self.stopped: list[str] = []

    def wants(self, record: ContainerState) -> bool:
        return True

    def prestart(self, runtime: Runtime, record: ContainerState, pid: int) -> None:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().split(b"\0")[0].decode()
        self.seen.append((record.id, cmdline))
        if self.fail:
            raise IsoinspectError("hook refused the container")

    def poststop(self, runtime: Runtime, record: ContainerState) -> None:
        self.stopped.append(record.id)


def test_library_start_reports_time_to_exec(runtime):
    devnull = os.open("/dev/null", os.O_WRONLY)
    record = runtime.create(ContainerSpec("busybox", ["true"]))
    started = runtime.start(record, stdio=(None, devnull, devnull))
    assert 0 < started.startup_seconds < 5
    assert runtime.wait_child(started) == 0
    assert runtime.get(record.id).status == Status.STOPPED
    assert started.record.status == Status.STOPPED and started.record.exit_code == 0
    assert record.status == Status.CREATED  # what create returned is not changed
    runtime.remove(record.id)
    os.close(devnull)


def test_prestart_hook_runs_before_exec_and_poststop_after(runtime):
    hook = RecordingHook()
    runtime.prestart_hooks.append(hook)
    code = runtime.run(ContainerSpec("busybox", ["sh", "-c", "exit 5"], remove=True))
    assert code == 5
    assert len(hook.seen) == 1
    cid, cmdline = hook.seen[0]
    assert "python" in cmdline, "the hook must see the container before its exec"
    assert hook.stopped == [cid]


def test_failing_hook_aborts_the_start_and_leaves_nothing(runtime, iso):
    runtime.prestart_hooks.append(RecordingHook(fail=True))
    with pytest.raises(IsoinspectError, match="hook refused"):
        runtime.run(ContainerSpec("busybox", ["true"], remove=True))
    assert runtime.list(all_containers=True) == []
    assert iso.cgroup_dirs() == []
