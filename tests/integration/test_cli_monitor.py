"""The monitor of ``run -d`` (runtime/monitor.c): a small static process, not Python, parent
of the container's PID 1, that records its exit and hands the teardown to Python
(runtime/monitor_exit.py). Docker keeps containerd-shim (~2.7 MiB PSS) per container; podman
keeps conmon, which this one imitates. Timing is never asserted (a shared, loaded machine).
"""

from __future__ import annotations

import os
import signal

from conftest import wait_for
from isoinspect.runtime.process import is_alive

NONE = ("--network", "none")


def _pid(iso, name: str) -> int:
    return int(iso("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rpartition(")")[2].split()[1])


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError(f"no Pss line for {pid}")


def _monitor_exe(monitor: int) -> str:
    """The monitor's executable once it is the C program: the Python one that started the
    container execs it after ``run -d`` has returned, so this waits for that exec."""
    def c_program() -> str | None:
        exe = os.readlink(f"/proc/{monitor}/exe")
        return exe if os.path.basename(exe) == "isoinspect-monitor" else None
    return wait_for(c_program, "the monitor to become isoinspect-monitor", 60, 0.05)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(word) for word in handle.read().split()]


def test_the_monitor_is_a_small_static_program_not_python(iso):
    iso("run", "-d", *NONE, "--name", "mon-small", "busybox", "sleep", "300", check=True)
    pid = _pid(iso, "mon-small")
    monitor = _parent(pid)
    exe = _monitor_exe(monitor)
    assert "python" not in exe
    assert _children(monitor) == [pid]          # nothing else of ours stays alive
    with open(exe, "rb") as handle:
        assert handle.read(4) == b"\x7fELF"
    pss = _pss_kib(monitor)
    assert 0 < pss < 1024, f"monitor PSS {pss} KiB"
    iso("rm", "-f", "mon-small", check=True)
    wait_for(lambda: not os.path.exists(f"/proc/{monitor}"), "the monitor to exit", 30)


def test_an_exit_code_of_7_is_recorded_and_the_logs_kept(iso):
    iso("run", "-d", *NONE, "--name", "mon-seven", "busybox", "sh", "-c",
        "echo out; echo err >&2; exit 7", check=True)
    assert iso("wait", "mon-seven", check=True, timeout=60).stdout.strip() == "7"
    state = iso("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "mon-seven",
                check=True).stdout.split()
    assert state == ["exited", "7"]
    done = iso("logs", "mon-seven", check=True)
    assert (done.stdout, done.stderr) == ("out\n", "err\n")
    events = iso("events", "--since", "10m", "--until", "0s", "--filter", "event=die",
                 check=True, timeout=30).stdout
    assert "exitCode=7" in events
    assert "Exited (7)" in iso("ps", "-a", check=True).stdout


def test_rm_container_is_removed_by_its_monitor(iso):
    iso("run", "-d", "--rm", *NONE, "--name", "mon-rm", "busybox", "true", check=True)
    wait_for(lambda: "mon-rm" not in iso("ps", "-a", check=True).stdout,
             "the --rm container to be removed", 60, 0.1)
    assert iso.cgroup_dirs() == []


def test_a_killed_monitor_leaves_what_gc_cleans(iso):
    iso("run", "-d", "--rm", *NONE, "--name", "mon-kill-rm", "busybox", "sleep", "300",
        check=True)
    iso("run", "-d", *NONE, "--name", "mon-kill", "busybox", "sleep", "300", check=True)
    pids = [_pid(iso, name) for name in ("mon-kill-rm", "mon-kill")]
    ids = {iso("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
           for name in ("mon-kill-rm", "mon-kill")}
    for pid in pids:
        monitor = _parent(pid)
        _monitor_exe(monitor)
        os.kill(monitor, signal.SIGKILL)
        wait_for(lambda: _parent(pid) != monitor, "the container to be re-parented", 30)
        os.kill(pid, signal.SIGKILL)    # nobody is left to record this exit
        wait_for(lambda: not is_alive(pid, None), "the container to exit", 30)
    assert {os.path.basename(path) for path in iso.cgroup_dirs()} == ids   # no teardown ran
    done = iso("gc", check=True, timeout=60).stdout
    assert "removed --rm container mon-kill-rm" in done
    assert "marked mon-kill exited (its monitor died)" in done
    assert "removed cgroup of stopped container mon-kill" in done
    assert iso.cgroup_dirs() == []
    listed = iso("ps", "-a", check=True).stdout
    assert "mon-kill-rm" not in listed and "Exited (255)" in listed and "mon-kill" in listed


def test_without_gcc_the_python_monitor_does_the_same(iso, tmp_path):
    """No cached build and no gcc to make one: the Python monitor stays, silently."""
    tools = tmp_path / "bin"          # every /usr/bin program but gcc's
    tools.mkdir()
    for name in os.listdir("/usr/bin"):
        if not name.startswith(("gcc", "cc", "c89", "c99", "x86_64-linux-gnu-gcc")):
            os.symlink(os.path.join("/usr/bin", name), tools / name)
    iso.env = dict(iso.env, PATH=f"{tools}:/usr/sbin", ISOINSPECT_CACHE=str(tmp_path / "cache"))
    done = iso("run", "-d", *NONE, "--name", "mon-py", "busybox", "sh", "-c",
               "echo out; echo err >&2; sleep 2; exit 7", check=True)
    assert done.stderr == ""
    monitor = _parent(_pid(iso, "mon-py"))
    # its first line logged: the monitor is past the choice between C and Python
    wait_for(lambda: iso("logs", "mon-py").stdout, "the first line logged", 60, 0.05)
    assert "python" in os.path.basename(os.readlink(f"/proc/{monitor}/exe"))
    assert iso("wait", "mon-py", check=True, timeout=60).stdout.strip() == "7"
    logs = iso("logs", "mon-py", check=True)
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    built = [name for _, _, names in os.walk(tmp_path / "cache") for name in names]
    assert "isoinspect-monitor" not in built


def test_rm_f_waits_for_the_monitor_recording_the_exit(iso):
    """rm -f kills the container; its monitor's teardown then writes the record in the
    container's directory: the removal waits for it rather than failing (ENOTEMPTY)."""
    for round_ in range(25):
        name = f"mon-rmf-{round_}"
        iso("run", "-d", *NONE, "--name", name, "busybox", "sleep", "300", check=True)
        _monitor_exe(_parent(_pid(iso, name)))
        iso("rm", "-f", name, check=True)
        assert name not in iso("ps", "-a", check=True).stdout


def _record(iso, name: str):
    from isoinspect.runtime.records import ContainerStore

    store = ContainerStore(iso.roots)
    return store.load(store.lookup(name))


def test_the_monitor_marks_its_teardown_done_so_rm_skips_it(iso):
    """Issue 20: a monitor that released the cgroup (and the network) says so in the record,
    and `rm` does not build the cgroup manager again; a restart makes them again."""
    iso("run", *NONE, "--name", "mon-fg", "busybox", "true", check=True)
    iso("run", "-d", *NONE, "--name", "mon-bg", "busybox", "sleep", "300", check=True)
    iso("stop", "-t", "0", "mon-bg", check=True)
    wait_for(lambda: _record(iso, "mon-bg").released, "the monitor's teardown", 30, 0.02)
    assert _record(iso, "mon-fg").released
    assert iso.cgroup_dirs() == []
    iso("start", "mon-bg", check=True)
    assert not _record(iso, "mon-bg").released   # a new run: its cgroup exists again
    iso("rm", "-f", "mon-fg", "mon-bg", check=True)
    assert iso("ps", "-aq", check=True).stdout == ""


def test_rm_after_a_killed_monitor_still_removes_the_cgroup(iso):
    """No teardown ran (its monitor died): `rm` releases the cgroup itself."""
    iso("run", "-d", *NONE, "--name", "mon-dead", "busybox", "sleep", "300", check=True)
    pid = _pid(iso, "mon-dead")
    monitor = _parent(pid)
    _monitor_exe(monitor)
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: _parent(pid) != monitor, "the container to be re-parented", 30)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(pid, None), "the container to exit", 30)
    assert len(iso.cgroup_dirs()) > 0
    assert iso("rm", "mon-dead", check=True).stdout == "mon-dead\n"
    assert iso.cgroup_dirs() == []
