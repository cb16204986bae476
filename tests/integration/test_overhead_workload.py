"""The workload program of bench overhead, for real on this host (as root): its output
contract, that its loops really run, that it is static, and the environments it must survive
(lo down in a fresh network namespace, a tmpfs without O_DIRECT)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import wait_for
from isoinspect.benches.overhead import program
from isoinspect.benches.overhead.program import TESTS, parse

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, unshare)")

# Plausible ns_per_op for this kind of machine, wide enough for a loaded 2-core VM.
PLAUSIBLE_NS = {
    "cpu": (1e5, 5e7),          # 0.1 .. 50 ms per 1e6 iterations
    "getppid": (20, 20_000),    # 20 ns .. 20 us
    "fork": (1e4, 5e7),         # 10 us .. 50 ms
    "pipe": (300, 5e6),         # 0.3 us .. 5 ms per round trip
    "tcp_rtt": (1e3, 5e7),      # 1 us .. 50 ms per round trip
    "file_write": (1e4, 1e8),   # 100 GB/s .. 10 MiB/s
}
TIME_UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6}


@pytest.fixture(scope="module")
def binary() -> str:
    return program.ensure_built()


def run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_all_prints_one_line_per_test_in_order_and_the_end(binary, tmp_path):
    result = run([binary, "-d", str(tmp_path), "-t", "50", "all"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(TESTS) + 1, result.stdout
    figures = parse(result.stdout)
    assert [f.test for f in figures] == [t.name for t in TESTS]
    ok = sum(f.ok for f in figures)
    assert lines[-1] == f"@@W-END tests={len(TESTS)} ok={ok}"
    by_name = {f.test: f for f in figures}
    for name, (low, high) in PLAUSIBLE_NS.items():
        figure = by_name[name]
        assert figure.ok, figure
        assert low <= figure.ns_per_op <= high, figure
    for test in TESTS:   # value is ns_per_op in the test's unit (or a rate of it)
        figure = by_name[test.name]
        if not figure.ok:
            continue
        assert figure.unit == test.unit and figure.ops > 0
        expected = (figure.ns_per_op / TIME_UNITS[test.unit] if test.unit in TIME_UNITS
                    else 1e9 / figure.ns_per_op)
        assert figure.value == pytest.approx(expected, rel=1e-3, abs=1e-3), figure
    assert os.listdir(tmp_path) == []   # every test removed its files
    # a file test's line names the file system it wrote in: statfs f_type, as stat(1) reads it
    magic = "0x" + run(["stat", "-f", "-c", "%t", str(tmp_path)]).stdout.strip()
    file_tests = {"open_read_close", "stat", "file_write", "file_read", "file_fsync",
                  "file_direct"}
    for figure in figures:
        if figure.test in file_tests:
            assert figure.fs_magic == magic and figure.fs, figure
            assert not figure.in_memory, figure          # tmp_path is on a disk here
        else:
            assert (figure.fs, figure.fs_magic) == ("", ""), figure
    if magic == "0xef53":
        assert by_name["file_fsync"].fs == "ext4"


def getppid_run(binary: str, ms: int) -> tuple[int, float, float, float]:
    """(ops, ns_per_op, wall seconds, CPU seconds) of one getppid run."""
    started = time.monotonic()
    process = subprocess.Popen([binary, "-t", str(ms), "getppid"], stdout=subprocess.PIPE,
                               text=True)
    stdout = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    assert os.waitstatus_to_exitcode(status) == 0
    (figure,) = parse(stdout)
    assert figure.ok, stdout
    return figure.ops, figure.ns_per_op, wall, usage.ru_utime + usage.ru_stime


def test_more_time_does_proportionally_more_real_work(binary):
    short_ops = long_ops = 0
    for _ in range(2):   # interleaved, so a change in the machine's load hits both lengths
        short_ops += getppid_run(binary, 100)[0]
        ops, ns_per_op, wall, cpu = getppid_run(binary, 400)
        long_ops += ops
        # the calls' own time is the time asked for (one batch may overshoot), it was spent,
        # and spent running (system calls), not sleeping; the CPU may be shared
        timed = ops * ns_per_op / 1e9
        assert 0.4 <= timed <= 0.6 and wall >= timed, (timed, wall)
        assert cpu >= 0.25 * timed, (cpu, timed)
    # 4x the time, about 4x the calls
    assert 2.0 <= long_ops / short_ops <= 8.0, (short_ops, long_ops)


def test_the_binary_is_static(binary):
    with open(binary, "rb") as handle:
        header = handle.read(64)
        assert header[:4] == b"\x7fELF" and header[4] == 2   # ELF64
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    assert 1 in types          # PT_LOAD: we did read the program headers
    assert 3 not in types      # PT_INTERP: no dynamic loader needed inside any target


def test_tcp_works_in_a_fresh_network_namespace_with_lo_down(binary):
    script = f"ip -o link show lo; {binary} -t 50 tcp_rtt tcp_stream; ip -o link show lo"
    result = run(["unshare", "-n", "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "<LOOPBACK>" in lines[0] and "state DOWN" in lines[0], lines[0]   # down at first
    assert ",UP" in lines[-1], lines[-1]                                    # brought up
    figures = parse(result.stdout)
    assert [(f.test, f.status) for f in figures] == [("tcp_rtt", "ok"), ("tcp_stream", "ok")]


def test_o_direct_on_tmpfs_is_unsupported_not_an_error(binary):
    folder = tempfile.mkdtemp(prefix="isoinspect-workload-tmpfs-")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "isoinspect-workload", folder],
                       check=True, timeout=30)
        try:
            result = run([binary, "-d", folder, "-t", "50", "file_direct", "file_write"])
            leftovers = os.listdir(folder)
        finally:
            subprocess.run(["umount", folder], check=True, timeout=30)
    finally:
        os.rmdir(folder)
    direct, write = parse(result.stdout)
    assert (direct.status, direct.reason) == ("unsupported",
                                              "o_direct_not_supported_by_tmpfs")
    assert write.ok
    for figure in (direct, write):   # TMPFS_MAGIC, a write that never leaves memory
        assert (figure.fs, figure.fs_magic, figure.in_memory) == ("tmpfs", "0x1021994", True)
    assert result.stdout.splitlines()[-1] == "@@W-END tests=2 ok=1"
    assert leftovers == []


def test_bad_arguments_exit_2(binary, tmp_path):
    for argv in (["nosuch"], [], ["-t", "0", "cpu"], ["-t", "x", "cpu"],
                 ["-d", str(tmp_path / "missing"), "cpu"], ["-t"], ["-p", "-1", "cpu"]):
        result = run([binary, *argv])
        assert result.returncode == 2, (argv, result.stdout)
        assert result.stdout == "" and result.stderr
    assert run([binary, "--noop"]).returncode == 0


def test_pauses_mark_each_test_and_count_the_warm_up_ops(binary):
    """-p (exposure's windows): a begin line, a pause in nanosleep, the test, a pause; the ok
    line's all_ops counts the warm-up too; without -p the lines are as before."""
    started = time.monotonic()
    result = run([binary, "-t", "20", "-p", "150", "getppid", "cpu"])
    took = time.monotonic() - started
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["@@W-BEGIN", "@@W", "@@W-BEGIN", "@@W",
                                                   "@@W-END"], lines
    assert lines[0] == "@@W-BEGIN test=getppid" and lines[2] == "@@W-BEGIN test=cpu"
    assert took >= 4 * 0.150
    for figure in parse(result.stdout):
        assert figure.ok and figure.all_ops > figure.ops, figure
    plain = parse(run([binary, "-t", "20", "getppid"]).stdout)
    assert plain[0].ok and plain[0].all_ops == 0


def terminate(process: subprocess.Popen) -> None:
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_interrupted_run_removes_its_file(binary, tmp_path):
    process = subprocess.Popen([binary, "-d", str(tmp_path), "-t", "20000", "file_write"],
                               stdout=subprocess.PIPE)
    wait_for(lambda: os.listdir(tmp_path), "the test file")
    terminate(process)
    assert os.listdir(tmp_path) == []


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"   # dead, not yet reaped
    except FileNotFoundError:
        return True


def test_interrupted_run_stops_its_helper_process(binary):
    process = subprocess.Popen([binary, "-t", "20000", "pipe"], stdout=subprocess.PIPE)
    children = f"/proc/{process.pid}/task/{process.pid}/children"

    def helper() -> int:
        with open(children) as handle:
            pids = handle.read().split()
        return int(pids[0]) if pids else 0

    child = wait_for(helper, "the pipe test's helper process")
    terminate(process)
    wait_for(lambda: gone(child), f"helper {child} to end", timeout=5)
