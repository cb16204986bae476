"""exposure without root: the probe's BPF text, map counts -> table figures, workloads, the
record kind and the command line's refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from isoinspect.benches import exposure
from isoinspect.benches.record import validate_result
from isoinspect.inspector.exposure import cost_between, summarize
from isoinspect.inspector.probes import program, tracepoints_used
from isoinspect.inspector.probes.syscall_counts import (ERRNO_BITS, TRACEPOINTS, Counts,
                                                        split_error_key)
from isoinspect.inspector.syscall_names import errno_name, name_of


def test_program_counts_in_maps_behind_the_filter():
    text = program(["syscall_counts"])
    assert set(tracepoints_used(text)) <= set(TRACEPOINTS)
    enter = text.split("TRACEPOINT_PROBE(raw_syscalls, sys_enter)")[1].split("return 0;")[0]
    # the filter comes first, and nothing is sent to user space per event
    assert enter.replace("{", "").split()[:4] == ["if", "(sc_counting()", "&&", "is_wanted())"]
    assert "ringbuf_output" not in enter and "perf_submit" not in enter
    assert "BPF_PERCPU_ARRAY(sc_calls" in text and "BPF_PERCPU_HASH(sc_errors" in text
    assert "SC_MAX_NR" in text and "MAX_NR_VALUE" not in text
    assert "ERRNO_BITS_VALUE" not in text


def test_default_probes_leave_raw_syscalls_out():
    assert "raw_syscalls" not in program()


def test_cli_prints_the_counting_program_without_root():
    out = subprocess.run([sys.executable, "-m", "isoinspect", "exposure", "--ebpf"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "TRACEPOINT_PROBE(raw_syscalls, sys_exit)" in out.stdout


def test_error_keys_round_trip():
    key = (110 << ERRNO_BITS) | 2
    assert split_error_key(key) == (110, 2)


def test_names_come_from_the_host_table():
    assert name_of(110) == "getppid" and name_of(0) == "read"
    assert name_of(1020).startswith("syscall_")
    assert errno_name(2) == "ENOENT" and errno_name(512) == "ERESTARTSYS"


def test_window_is_the_difference_of_two_snapshots():
    before = Counts({0: 5, 110: 10}, {(2, 2): 1}, {100: 15}, missed=0)
    after = Counts({0: 7, 110: 10, 39: 3}, {(2, 2): 4}, {100: 17, 101: 3}, missed=1)
    window = after.minus(before)
    assert window.calls == {0: 2, 39: 3}          # unchanged syscalls drop out
    assert window.errors == {(2, 2): 3}
    assert window.tgids == {100: 2, 101: 3}
    assert window.missed == 1


def test_summarize_totals_rates_failures_and_ranking():
    counts = Counts(calls={110: 10_000, 0: 40, 2: 60, 3: 60},
                    errors={(2, 2): 20, (2, 13): 10, (0, 11): 5},
                    tgids={7: 10_100, 8: 60}, missed=0)
    figures = summarize(counts, 2.0, {7: "getppid-loop", 8: "sh"}, top=3)
    assert figures.total == 10_160
    assert figures.distinct == 4
    assert figures.per_second == 5080.0
    assert figures.failed == 35
    assert figures.failed_share == round(35 / 10_160, 4)
    assert [row.name for row in figures.top] == ["getppid", "open", "close"]  # ties by nr
    assert figures.top[1].failed == 30
    assert figures.top_errors[0].name == "open" and figures.top_errors[0].errno == "ENOENT"
    assert figures.calls_by_name["read"] == 40
    assert figures.calls_by_process == {"getppid-loop": 10_100, "sh": 60}
    assert figures.processes[0].comm == "getppid-loop"


def test_summarize_an_empty_window():
    figures = summarize(Counts(), 1.0)
    assert (figures.total, figures.distinct, figures.per_second, figures.failed_share) == \
        (0, 0, 0.0, 0.0)


def test_cost_between_two_readings_reports_lost_as_zero_by_construction():
    cost = cost_between({"run_cnt": 100, "run_time_ns": 5_000},
                        {"run_cnt": 300, "run_time_ns": 25_000, "lost_events": 0,
                         "programs": 4, "bpf_stats": "fd"})
    assert cost["run_cnt"] == 200 and cost["ns_per_run"] == 100.0
    assert cost["lost_events"] == 0 and "by construction" in cost["lost_note"]


def test_workloads_and_their_marks():
    idle = exposure.make_workload("idle", None)
    text = idle.script('echo "$1"', stay=True)
    assert exposure.READY in text and exposure.END not in text and "wait" in text
    script = exposure.make_workload("script", None)
    text = script.script('echo "$1"', stay=False)
    assert text.index(exposure.READY) < text.index("busybox nc") < text.index(exposure.END)
    assert "sleep 100000" not in text
    command = exposure.make_workload("ignored", ["/bin/echo", "a b"])
    assert command.name == "command" and command.work == "/bin/echo 'a b'"


def test_bad_input_is_a_usage_error():
    with pytest.raises(exposure.UsageError) as excinfo:
        exposure.select_runtimes("runc,bogus")
    assert excinfo.value.exit_code == 125
    with pytest.raises(exposure.UsageError) as excinfo:
        exposure.make_workload("nosuch", None)
    assert "unknown workload" in str(excinfo.value)
    assert exposure.select_runtimes("all") == list(exposure.RUNTIMES)


def test_record_kind_and_table():
    figures = summarize(Counts({110: 100}, {}, {7: 100}), 1.0, {7: "x"})
    result = exposure.ExposureResult("runc", "script", "ok", figures=figures.to_dict(),
                                     work_seconds=1.0, allowed={
                                         "seccomp": "filter", "seccomp_allowed_syscalls": 307,
                                         "capabilities_effective": 14,
                                         "namespaces_shared_with_host": ["time"],
                                         "shares_host_kernel": True},
                                     bpf={"run_cnt": 10, "run_time_ns": 500})
    record = result.record()
    validate_result(record)
    assert record["kind"] == "exposure" and record["total"] == 100
    failed = exposure.ExposureResult("runsc", "script", "unavailable", "runsc not found")
    table = exposure.format_table([result, failed])
    assert "getppid 100" in table and "filter 307 ok" in table and "runsc not found" in table
    assert "BPF cost: 10 program runs" in table


def test_profile_allowed_count_is_the_host_table_minus_the_denied():
    from isoinspect.inspector.syscall_names import native_table

    count = exposure.profile_allowed_count()
    assert 250 < count < len(native_table())


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "nope"], "unknown runtime"),
    (["--duration", "0", "--runtime", "runc"], "--duration"),
    (["--workload", "what"], "unknown workload"),
])
def test_cli_refuses_bad_input_with_125(argv, message):
    out = subprocess.run([sys.executable, "-m", "isoinspect", "exposure", *argv],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, ISOINSPECT_RESULTS="/nonexistent-isoinspect"))
    assert out.returncode == 125, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_program_workloads_run_every_test_or_one_with_pauses():
    from isoinspect.benches.overhead.program import TEST_NAMES

    every = exposure.make_workload("overhead", None)
    assert every.tests == TEST_NAMES
    one = exposure.make_workload("getppid", None)
    assert one.tests == ("getppid",)
    assert one.work.startswith("/usr/local/bin/isoinspect-workload ")
    assert f"-p {exposure.DEFAULT_PROGRAM_PAUSE_MS}" in one.work and one.work.endswith(" getppid")
    assert f"-t {exposure.PROGRAM_TEST_MS}" in one.work
    text = one.script('echo "$1"', stay=True)
    assert text.index(exposure.READY) < text.index("isoinspect-workload") < \
        text.index(exposure.END)
    names = exposure.workload_names()
    assert names[:4] == ["idle", "startup", "script", "overhead"] and "tcp_rtt" in names


def test_unknown_test_name_is_refused_with_the_list():
    with pytest.raises(exposure.UsageError) as excinfo:
        exposure.make_workload("getpid", None)
    message = str(excinfo.value)
    assert "unknown workload 'getpid'" in message
    assert "overhead" in message and "getppid" in message and "file_direct" in message


def test_cli_help_lists_the_program_workloads():
    out = subprocess.run([sys.executable, "-m", "isoinspect", "exposure", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "overhead" in text and "getppid" in text and "tcp_rtt" in text
    assert "file_direct" in text


class FakeCounter:
    """Counts that grow by the calls made between the program's lines (a scripted run)."""

    def __init__(self):
        self.total = {}

    def add(self, nr, calls):
        self.total[nr] = self.total.get(nr, 0) + calls

    def snapshot(self, counting=True):
        return Counts(dict(self.total), {}, {7: sum(self.total.values())})


def test_program_windows_are_cut_at_the_pauses_and_divided_by_the_ops():
    """The output appears line by line; each poll of the output is a step of the program
    (calls made in the window, then its line); per test: calls / all_ops."""
    counter = FakeCounter()
    steps = [
        ("@@EXPOSURE-READY\n", {59: 30}),                      # exec etc.: before the window
        ("@@W-BEGIN test=getppid\n", {}),
        ("", {110: 1200, 1: 1}),                                 # the test (+ its line)
        ("@@W test=getppid status=ok ops=1000 ns_per_op=60.0 value=60.0 unit=ns "
         "all_ops=1200\n", {}),
        ("@@W-BEGIN test=tcp_rtt\n", {1: 1}),
        ("", {}),
        ("@@W test=tcp_rtt status=unsupported reason=no_loopback\n", {}),
        ("@@W-END tests=2 ok=1\n", {60: 1}),
    ]
    output = []

    def read():
        if steps:
            text, calls = steps.pop(0)
            for nr, n in calls.items():
                counter.add(nr, n)
            output.append(text)
        return "".join(output)

    window = exposure.measure_program(counter, ("getppid", "tcp_rtt"), read, lambda: True)
    assert [part.test for part in window.tests] == ["getppid", "tcp_rtt"]
    assert window.tests[0].counts.calls == {110: 1200, 1: 1}
    assert window.counts.calls == {110: 1200, 1: 2, 60: 1}   # first begin .. end: not exec
    tests = exposure.per_test_exposures(window, "".join(output), {7: "isoinspect-work"})
    getppid, tcp = tests
    assert getppid.ops == 1200 and getppid.calls == 1201
    assert getppid.calls_by_name["getppid"] == 1200 and getppid.top[0]["per_op"] == 1.0
    assert getppid.calls_per_op == pytest.approx(1201 / 1200, rel=1e-5)
    assert tcp.status == "unsupported" and tcp.calls_per_op is None and tcp.ops == 0


def test_a_window_shorter_than_the_test_is_an_error_not_a_figure():
    """The begin line was read after the test had started (the output lagged more than the
    pause): the window missed calls, so no calls-per-op figure comes of it."""
    window = exposure.Window(Counts(), 0.05, 0.05, [
        exposure.TestWindow("tcp_stream", Counts({1: 3}, {}, {7: 3}), 0.02)])
    line = ("@@W test=tcp_stream status=ok ops=20 ns_per_op=5000000.0 value=200.0 unit=MiB/s "
            "all_ops=25\n")
    (test,) = exposure.per_test_exposures(window, line, {})
    assert test.status == "error" and "window_shorter_than_the_test" in test.reason
    assert test.calls_per_op is None
    assert exposure.pause_ms("docker") > exposure.pause_ms("runc")


def test_per_op_table_has_a_row_per_test_and_a_column_per_runtime():
    rows = {"runc": 1.0002, "runsc": 7.5, "qemu": 1234.0}
    results = [exposure.ExposureResult(
        runtime, "overhead", "ok", figures=summarize(Counts({110: 5}, {}, {}), 1.0).to_dict(),
        tests=[exposure.TestExposure("getppid", "ok", ops=1000, calls=int(per_op * 1000),
                                     calls_per_op=per_op,
                                     top=[{"name": "futex", "calls": 3, "per_op": 0.003}]),
               exposure.TestExposure("file_direct", "unsupported", "o_direct")])
        for runtime, per_op in rows.items()]
    record = results[0].record()
    validate_result(record)
    assert record["tests"][0]["calls_per_op"] == 1.0002
    table = exposure.format_per_op(results)
    header, getppid, direct = table.splitlines()[1:4]
    assert header.split() == ["TEST", "runc", "runsc", "qemu"]
    assert getppid.split() == ["getppid", "1.000", "7.500", "1234"]
    assert direct.split() == ["file_direct"] + ["unsupported"] * 3
    assert "futex 0.003" in table
    assert exposure.format_per_op([exposure.ExposureResult("runc", "idle", "ok")]) == ""
