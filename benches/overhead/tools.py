"""The real-tools suite of ``bench overhead``: Debian's sysbench, fio and iperf3 as figures.

One run is one ``sh -c`` command line (``command()``) that runs every chosen test in sequence
inside a target and wraps each tool's raw output between markers:

    @@T-INFO dir=<dir> fstype=<stat -f %T of dir>
    @@T-BEGIN <test>
    <the tool's stdout and stderr>
    @@T-END <test> rc=<exit code>
    ...
    @@T-DONE

``parse()`` turns that text into the same ``Figure`` records as the own workload program's
``program.parse()`` (ns_per_op = time per unit of work, lower is better), so a runner treats both
suites alike: run an argv in a target, parse its stdout. The parsers run on the host, not in the
target, because the tools' JSON and text reports would otherwise need jq or Python in every
target; this way a target needs only the tools, and each parser is tested against output
captured from the real tools (tests/fixtures/tools/).

stress-ng is left out: the figures it would add (fork, context switches over pipes, signals,
page faults, get* syscalls) are the own workload's tests already, measured in real units, while
stress-ng reports "bogo ops", which are not comparable between its versions or stressors.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from dataclasses import dataclass
from typing import Callable

from isoinspect.benches.overhead.program import Figure
from isoinspect.runtime.errors import UsageError

FIO_FILE = "isoinspect-tools-fio.dat"
FIO_SIZE = "32M"  # small enough for a tmpfs /tmp in a 1 GiB guest; writes loop over it
MIB = 1024 * 1024


@dataclass(frozen=True)
class RunParams:
    """What one suite run needs: where fio's private directory is made (``mktemp -d`` under
    ``directory``: parallel runs on one host never share a file), seconds per test, iperf3's
    port."""

    directory: str = "/tmp"
    seconds: int = 1
    port: int = 5201


@dataclass(frozen=True)
class Block:
    """One test's raw output as the driver captured it."""

    test: str
    rc: int
    text: str
    fstype: str = "unknown"


@dataclass(frozen=True)
class ToolTest:
    """One figure of the suite: the tool it needs, how to run it, how to read its output."""

    name: str
    tool: str
    unit: str
    description: str
    argv: Callable[[RunParams], list[str]]
    parse: Callable[[Block], Figure]


class ToolOutputError(Exception):
    """The tool ran but its output is not what the parser knows; the reason has no spaces."""


def reason_of(text: str) -> str:
    """A contract-safe reason: letters, digits and '_' only, short."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text.strip()).strip("_").lower()[:80] or "unknown"


def _ok(block: Block, units: float, seconds: float, unit: str) -> Figure:
    """A figure of ``units`` of work done in ``seconds``: value per second, ns per unit."""
    if units <= 0 or seconds <= 0:
        raise ToolOutputError("no_work_done")
    return Figure(test=block.test, status="ok", ops=int(round(units)),
                  ns_per_op=seconds * 1e9 / units, value=units / seconds, unit=unit, reason="")


# ---------------------------------------------------------------- sysbench
def _sysbench_argv(test: str, *extra: str) -> Callable[[RunParams], list[str]]:
    def argv(params: RunParams) -> list[str]:
        return ["sysbench", test, f"--time={params.seconds}", *extra, "run"]
    return argv


def _sysbench_general(text: str) -> tuple[float, int]:
    """(total time in seconds, total number of events) from sysbench's general statistics."""
    time_match = re.search(r"total time:\s+([0-9.]+)s", text)
    events_match = re.search(r"total number of events:\s+([0-9]+)", text)
    if not time_match or not events_match:
        raise ToolOutputError("no_sysbench_statistics")
    return float(time_match.group(1)), int(events_match.group(1))


def parse_sysbench_events(block: Block) -> Figure:
    """sysbench cpu / threads: events per second; ns per event."""
    seconds, events = _sysbench_general(block.text)
    return _ok(block, events, seconds, "events/s")


def parse_sysbench_memory(block: Block) -> Figure:
    """sysbench memory: MiB/s written; ns per MiB."""
    seconds, _events = _sysbench_general(block.text)
    moved = re.search(r"([0-9.]+) MiB transferred", block.text)
    if not moved:
        raise ToolOutputError("no_sysbench_mib_transferred")
    return _ok(block, float(moved.group(1)), seconds, "MiB/s")


# ---------------------------------------------------------------- fio
def _fio_argv(rw: str, bs: str, *extra: str) -> Callable[[RunParams], list[str]]:
    def argv(params: RunParams) -> list[str]:
        # the file is relative: the driver runs every test in the run's own directory
        return ["fio", "--name=isoinspect", f"--filename={FIO_FILE}", f"--size={FIO_SIZE}",
                f"--rw={rw}", f"--bs={bs}",
                "--ioengine=psync", "--time_based", f"--runtime={params.seconds}",
                "--output-format=json", *extra]
    return argv


def _json_from(text: str) -> dict:
    """The first JSON object in ``text`` (tools print warnings before it)."""
    start = text.find("{")
    if start < 0:
        raise ToolOutputError("no_json_output")
    try:
        document, _end = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise ToolOutputError("bad_json_output") from exc
    if not isinstance(document, dict):
        raise ToolOutputError("bad_json_output")
    return document


def _fio_direct_refused(block: Block) -> bool:
    return "does not support direct" in block.text or "not support O_DIRECT" in block.text


def _fio_figure(block: Block, direction: str, per_io: bool) -> Figure:
    """MiB/s (ns per MiB), or with ``per_io`` I/Os per second (ns per I/O: write + its fsync)."""
    if _fio_direct_refused(block):
        return Figure(test=block.test, status="unsupported",
                      reason=f"o_direct_not_supported_by_{reason_of(block.fstype)}")
    if block.rc != 0 and "{" not in block.text:
        raise ToolOutputError(f"fio_exit_{block.rc}_{reason_of(block.text)}")
    jobs = _json_from(block.text).get("jobs") or []
    if not jobs:
        raise ToolOutputError("fio_no_jobs")
    job = jobs[0]
    if job.get("error"):
        raise ToolOutputError(f"fio_error_{job['error']}")
    stats = job.get(direction) or {}
    seconds = stats.get("runtime", 0) / 1000.0  # ms
    if per_io:
        return _ok(block, stats.get("total_ios", 0), seconds, "IOPS")
    return _ok(block, stats.get("io_bytes", 0) / MIB, seconds, "MiB/s")


def parse_fio_write(block: Block) -> Figure:
    return _fio_figure(block, "write", per_io=False)


def parse_fio_read(block: Block) -> Figure:
    return _fio_figure(block, "read", per_io=False)


def parse_fio_fsync_write(block: Block) -> Figure:
    return _fio_figure(block, "write", per_io=True)


# ---------------------------------------------------------------- iperf3
def iperf3_argv(params: RunParams) -> list[str]:
    """Server and client on 127.0.0.1 in the same target; the client retries while the server
    is not listening yet, the server is one-off and killed if the client never came."""
    port, seconds = params.port, params.seconds
    script = (
        f"iperf3 -s -1 -B 127.0.0.1 -p {port} >/dev/null 2>&1 </dev/null & s=$!; i=0; "
        f"while :; do out=$(iperf3 -c 127.0.0.1 -p {port} -t {seconds} -J 2>&1 </dev/null); "
        "rc=$?; "  # iperf3 3.12 -J exits 0 even when it could not connect
        'case "$out" in *"unable to connect"*) ;; *) break ;; esac; '
        "i=$((i+1)); [ $i -ge 50 ] && break; sleep 0.1; done; "
        "kill $s 2>/dev/null; wait $s 2>/dev/null; "
        'printf "%s\\n" "$out"; exit $rc')
    return ["sh", "-c", script]


def parse_iperf3_tcp(block: Block) -> Figure:
    """iperf3 client -J: MiB/s received; ns per MiB."""
    document = _json_from(block.text)
    if document.get("error"):
        raise ToolOutputError(f"iperf3_{reason_of(document['error'])}")
    received = (document.get("end") or {}).get("sum_received") or {}
    return _ok(block, received.get("bytes", 0) / MIB, received.get("seconds", 0.0), "MiB/s")


TESTS: tuple[ToolTest, ...] = (
    ToolTest("sysbench_cpu", "sysbench", "events/s",
             "sysbench cpu, 1 thread: primes up to 10000 per event (the control)",
             _sysbench_argv("cpu", "--threads=1", "--cpu-max-prime=10000"),
             parse_sysbench_events),
    ToolTest("sysbench_memory", "sysbench", "MiB/s",
             "sysbench memory, 1 thread: sequential writes of a 64 MiB block",
             _sysbench_argv("memory", "--threads=1", "--memory-block-size=64M",
                            "--memory-total-size=100T", "--memory-oper=write"),
             parse_sysbench_memory),
    ToolTest("sysbench_threads", "sysbench", "events/s",
             "sysbench threads, 1 thread: 1000 sched_yield calls + 8 mutex lock/unlock per event",
             _sysbench_argv("threads", "--threads=1"), parse_sysbench_events),
    ToolTest("fio_write", "fio", "MiB/s",
             "fio sequential 64 KiB writes into a 32 MiB file (page cache)",
             _fio_argv("write", "64k"), parse_fio_write),
    ToolTest("fio_read", "fio", "MiB/s",
             "fio sequential 64 KiB reads of the same file (page cache hot)",
             _fio_argv("read", "64k", "--invalidate=0"), parse_fio_read),
    ToolTest("fio_fsync_write", "fio", "IOPS",
             "fio 4 KiB sequential writes, each followed by fsync",
             _fio_argv("write", "4k", "--fsync=1"), parse_fio_fsync_write),
    ToolTest("fio_direct_write", "fio", "MiB/s",
             "fio O_DIRECT sequential 1 MiB writes (unsupported where the fs refuses O_DIRECT)",
             _fio_argv("write", "1M", "--direct=1"), parse_fio_write),
    ToolTest("iperf3_tcp", "iperf3", "MiB/s",
             "iperf3 TCP stream over 127.0.0.1 inside the target (server + client)",
             iperf3_argv, parse_iperf3_tcp),
)
BY_NAME = {test.name: test for test in TESTS}
TOOLS = tuple(dict.fromkeys(test.tool for test in TESTS))


def select(names: list[str] | None = None) -> list[ToolTest]:
    """The tests named (all when none), in the suite's order; an unknown name is a UsageError."""
    if not names:
        return list(TESTS)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown tool test(s): {', '.join(unknown)} "
                         f"(known: {', '.join(BY_NAME)})")
    return [test for test in TESTS if test.name in names]


def random_port() -> int:
    """A port for iperf3 that a parallel run on the host is unlikely to hold too."""
    return random.randint(30000, 39999)


def script(tests: list[ToolTest], params: RunParams) -> str:
    """The POSIX sh driver: each test's output between markers; fio's directory is removed when
    the shell exits (also on SIGINT/SIGTERM)."""
    directory = shlex.quote(params.directory)
    lines = [f"d=$(mktemp -d {directory}/isoinspect-tools.XXXXXX) && cd \"$d\" && d=$(pwd) || "
             f"{{ echo '@@T-FAIL cannot make a directory under '{directory}; exit 1; }}",
             "trap 'cd /; rm -f \"$d\"/" + FIO_FILE + "; rmdir \"$d\"' EXIT",
             "trap 'exit 130' INT TERM",
             'printf "@@T-INFO dir=%s fstype=%s\\n" "$d" '
             '"$(stat -f -c %T "$d" 2>/dev/null || echo unknown)"']
    for test in tests:
        lines += [f"printf '@@T-BEGIN %s\\n' {test.name}",
                  f"{shlex.join(test.argv(params))} </dev/null 2>&1; rc=$?",
                  f"printf '\\n@@T-END %s rc=%s\\n' {test.name} \"$rc\""]
    lines += ["printf '@@T-DONE\\n'"]
    return "\n".join(lines) + "\n"


def command(tests: list[ToolTest] | None = None, params: RunParams | None = None) -> list[str]:
    """The argv a runner starts inside a target for one run of the suite."""
    chosen = list(TESTS) if tests is None else list(tests)
    return ["sh", "-c", script(chosen, params or RunParams(port=random_port()))]


_BEGIN = re.compile(r"^@@T-BEGIN (\S+)$")
_END = re.compile(r"^@@T-END (\S+) rc=(\d+)$")
_INFO = re.compile(r"^@@T-INFO dir=.* fstype=(.*)$")  # stat may say "UNKNOWN (0x...)"


def blocks(text: str) -> dict[str, Block]:
    """Each finished test's raw output by name (a test without its END marker is absent)."""
    found: dict[str, Block] = {}
    fstype, current, body = "unknown", None, []
    for line in text.splitlines():
        if match := _INFO.match(line):
            fstype = match.group(1) or "unknown"
        elif match := _BEGIN.match(line):
            current, body = match.group(1), []
        elif (match := _END.match(line)) and match.group(1) == current:
            found[current] = Block(current, int(match.group(2)), "\n".join(body), fstype)
            current = None
        elif current is not None:
            body.append(line)
    return found


def error_figure(test: str, reason: str) -> Figure:
    return Figure(test=test, status="error", reason=reason)


def parse_block(test: ToolTest, block: Block) -> Figure:
    """One test's figure; a tool that is missing or printed nonsense is an error, never a zero."""
    if block.rc == 127 and "not found" in block.text:
        return error_figure(test.name, f"{test.tool}_not_found")
    try:
        return test.parse(block)
    except ToolOutputError as exc:
        return error_figure(test.name, str(exc))


def parse(text: str, tests: list[ToolTest] | None = None) -> list[Figure]:
    """The suite's output -> one Figure per test, in order; a test that did not finish (no END
    marker: the target died or timed out) is an error figure."""
    found = blocks(text)
    figures = []
    for test in TESTS if tests is None else tests:
        block = found.get(test.name)
        figures.append(parse_block(test, block) if block is not None
                       else error_figure(test.name, "did_not_finish"))
    return figures


# ---------------------------------------------------------------- as a bench overhead suite
def seconds_for(duration_ms: int) -> int:
    """The tools take whole seconds: the bench's per-test duration rounded, at least 1 s."""
    return max(1, round(duration_ms / 1000))


def tools_suite(with_every_own_test: bool = False):
    """The tools as a ``Suite`` of bench overhead: one ``sh -c`` per run, in debian:bookworm-tools
    on container targets (the host's tools on the host and in the VM, whose /usr is the host's).

    The workload program's layer still goes on top, for its ``cpu`` test: the control every
    ratio is judged by is then the same loop in both suites (sysbench_cpu is a figure, not the
    control). ``with_every_own_test``: ``--suite all``, every workload test runs first.
    """
    from isoinspect.benches.overhead import program
    from isoinspect.benches.overhead.base_image import debian_tools
    from isoinspect.benches.overhead.suite import Suite

    own_tests = list(program.TEST_NAMES) if with_every_own_test else ["cpu"]

    def command(binary: str, tests, duration_ms: int) -> list[str]:
        own = [test for test in tests if test in own_tests]
        chosen = [test for test in TESTS if test.name in tests]
        params = RunParams("/tmp", seconds_for(duration_ms), random_port())
        # alone, the control runs as long as each tool (a 50 ms loop is noise on a busy host)
        own_ms = duration_ms if with_every_own_test else params.seconds * 1000
        first = shlex.join([binary, "-d", "/tmp", "-t", str(own_ms), *own]) + "\n" \
            if own else ""
        return ["sh", "-c", first + script(chosen, params)]

    def parse_both(text: str) -> list[Figure]:
        return program.parse(text) + parse(text)

    return Suite(name="all" if with_every_own_test else "tools", layer=program.layer_dir,
                 binary="/usr/local/bin/" + program.BINARY_NAME, command=command,
                 parse=parse_both, end="@@T-DONE",
                 tests=lambda: own_tests + [test.name for test in TESTS], base=debian_tools())
