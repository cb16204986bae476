"""The one table of namespace kinds: flags, /proc names and OCI names in every direction."""

from __future__ import annotations

import os

import pytest

from isoinspect.runtime.linux import namespaces
from isoinspect.runtime.linux import syscalls as sc


def test_flags_match_the_kernel_headers():
    assert namespaces.FLAG_BY_PROC == {
        "mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
        "pid": 0x20000000, "user": 0x10000000, "cgroup": 0x02000000, "time": 0x00000080}
    assert namespaces.ALL_FLAGS == 0x7E020080
    assert sc.CLONE_NEWNET is namespaces.CLONE_NEWNET  # one definition, re-exported


def test_oci_and_proc_names_convert_both_ways():
    assert namespaces.PROC_BY_OCI["network"] == "net" and namespaces.PROC_BY_OCI["mount"] == "mnt"
    assert namespaces.OCI_BY_PROC["net"] == "network" and namespaces.OCI_BY_PROC["pid"] == "pid"
    for oci, proc in namespaces.PROC_BY_OCI.items():
        assert namespaces.OCI_BY_PROC[proc] == oci
        assert namespaces.FLAG_BY_OCI[oci] == namespaces.FLAG_BY_PROC[proc]


def test_decode_encode_round_trip():
    assert namespaces.decode(namespaces.encode(["pid", "net"])) == ["net", "pid"]
    assert namespaces.decode(namespaces.ALL_FLAGS) == list(namespaces.PROC_NAMES)
    assert namespaces.decode(0x11) == []
    with pytest.raises(KeyError):
        namespaces.encode(["network"])  # an OCI name is not a /proc name


def test_proc_names_are_the_kernels():
    present = set(os.listdir("/proc/self/ns"))
    # pid_for_children, time_for_children are not kinds of their own
    assert set(namespaces.PROC_NAMES) <= present


def test_signal_names_in_dockers_and_runcs_forms():
    import signal

    from isoinspect.runtime.linux.signals import SIGNAL_NUMBERS, parse_signal
    for text in ("KILL", "SIGKILL", "kill", "sigkill", " 9 ", "9"):
        assert parse_signal(text) == 9, text
    assert parse_signal("sigterm") == 15 and parse_signal("TERM") == signal.SIGTERM
    assert parse_signal("RTMIN") == signal.SIGRTMIN and parse_signal("RTMAX") == signal.SIGRTMAX
    assert parse_signal("SIGRTMIN+2") == signal.SIGRTMIN + 2
    assert parse_signal("rtmax-1") == signal.SIGRTMAX - 1
    assert parse_signal("0") == 0  # kill(2)'s existence probe
    for bad in ("BOGUS", "SIGBOGUS", "", "65", "-9", "RTMIN+31", "RTMAX+1", "RTMIN+x", "SIG_DFL",
                "٩"):
        assert parse_signal(bad) is None, bad
    for name, number in SIGNAL_NUMBERS.items():  # the table is the kernel's, as Python has it
        assert getattr(signal, "SIG" + name) == number, name


def test_kill_and_wait_escalates_and_reaps(tmp_path):
    import signal

    from isoinspect.runtime import process
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like a PID 1 without a handler
        os.write(ready_w, b"x")
        while True:
            signal.pause()
    os.read(ready_r, 1)
    ticks = process.start_ticks(pid)
    assert not process.kill_and_wait(pid, ticks, ((signal.SIGTERM, 0.05),), reap=True)
    assert process.is_alive(pid, ticks)
    assert process.kill_and_wait(pid, ticks, ((0, 0.01), (signal.SIGTERM, 0.05),
                                              (signal.SIGKILL, 5.0)), reap=True)
    with pytest.raises(ChildProcessError):  # reaped
        os.waitpid(pid, os.WNOHANG)
    assert process.kill_and_wait(pid, ticks)  # gone already: nothing to do
