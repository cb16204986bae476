"""bench overhead's statistics, ratios, checks and table from fixed figures (no targets run)."""

from __future__ import annotations

import os
import pytest

from isoinspect.benches import stats
from isoinspect.benches.choices import parse_names
from isoinspect.benches.overhead import bench, runners, summary
from isoinspect.benches.overhead.program import Figure, parse
from isoinspect.benches.overhead.suite import RunError, Suite
from isoinspect.benches.record import RunRecord, load, validate_result
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError


def ok(test: str, ns: float, value: float | None = None, unit: str = "ns") -> Figure:
    return Figure(test, "ok", 1000, ns, ns if value is None else value, unit)


def suite(layer: str = "/nonexistent") -> Suite:
    return Suite("fake", lambda: layer, "/usr/local/bin/isoinspect-workload",
                 lambda binary, tests, ms: [binary, "-t", str(ms), *tests], parse, "@@W-END",
                 lambda: ["cpu", "getppid", "fork"])


def collect(per_target: dict[str, list[dict[str, Figure]]]) -> dict:
    """{target: [round figures]} -> the bench's series."""
    series: dict = {}
    for target, rounds in per_target.items():
        for index, figures in enumerate(rounds):
            for test, figure in figures.items():
                series.setdefault((target, test), summary.Series(target, test)).add(index,
                                                                                   figure)
    return series


def rounds_of(cpu: list[float], getppid: list[float]) -> list[dict[str, Figure]]:
    return [{"cpu": ok("cpu", c, c / 1e3, "us"), "getppid": ok("getppid", g)}
            for c, g in zip(cpu, getppid)]


HOST = rounds_of([1000, 1010, 990, 1005, 995], [50, 51, 49, 50, 52])
INFOS = [summary.TargetInfo("host", "ok", container=False), summary.TargetInfo("runc", "ok"),
         summary.TargetInfo("qemu", "ok", container=False, batch=True,
                            labels={"accelerator": "tcg"})]


def test_ratio_to_host_is_time_per_op_and_paired_for_containers():
    series = collect({"host": HOST, "runc": rounds_of([1000, 1010, 990, 1005, 995],
                                                      [100, 102, 98, 100, 104]),
                      "qemu": rounds_of([20000] * 5, [4000, 4100, 3900, 4000, 4050])})
    cells = {(c.target, c.test): c for c in summary.cells_for(INFOS, series,
                                                               ["cpu", "getppid"])}
    runc = cells[("runc", "getppid")]
    assert runc.status == "ok" and runc.ratio["ratio"] == pytest.approx(2.0)
    assert runc.ratio["paired"] and runc.ratio["ci"][0] <= 2.0 <= runc.ratio["ci"][1]
    assert runc.summary["p50"] == pytest.approx(100e-9)  # seconds per op, like every record
    assert cells[("runc", "cpu")].ratio["ratio"] == pytest.approx(1.0)
    vm = cells[("qemu", "getppid")]
    assert not vm.ratio["paired"] and vm.ratio["ratio"] == pytest.approx(80.0)
    # TCG slows the cpu loop 20x; what is left once that is taken out is 4x
    assert vm.control["ratio"] == pytest.approx(4.0)
    assert vm.control["ci"][0] <= 4.0 <= vm.control["ci"][1]
    assert cells[("host", "getppid")].ratio is None
    assert not any(c.harness_suspect for c in cells.values())


def test_cpu_control_outside_the_band_flags_the_container_target():
    series = collect({"host": HOST, "runc": rounds_of([1500] * 5, [100] * 5),
                      "qemu": rounds_of([20000] * 5, [4000] * 5)})
    cells = summary.cells_for(INFOS, series, ["cpu", "getppid"])
    flagged = {c.target for c in cells if c.harness_suspect}
    assert flagged == {"runc"}  # the VM's emulated CPU is expected to be slower
    lines = summary.format_table(cells, INFOS, ["cpu", "getppid"])
    assert any("harness suspect: runc" in line and "[0.85, 1.18]" in line for line in lines)
    result = next(c for c in cells if c.target == "runc").to_result(
        series[("runc", "cpu")], INFOS[1])
    assert result["harness_suspect"] is True


def test_a_test_without_a_measurement_is_an_error_or_unsupported_never_a_zero():
    runc_rounds = [{"cpu": ok("cpu", 1000), "getppid": Figure("getppid", "error",
                                                              reason="EPERM")}] * 3
    series = collect({"host": HOST[:3], "runc": runc_rounds,
                      "docker": [{"cpu": ok("cpu", 1000),
                                  "getppid": Figure("getppid", "unsupported",
                                                    reason="no_loopback")}]})
    infos = INFOS[:2] + [summary.TargetInfo("docker", "ok"),
                         summary.TargetInfo("crun", "unsupported", "crun refuses hybrid"),
                         summary.TargetInfo("runsc", "error", "prepare failed: boom"),
                         summary.TargetInfo("qemu", "ready")]
    cells = {(c.target, c.test): c for c in summary.cells_for(infos, series,
                                                               ["cpu", "getppid"])}
    assert cells[("runc", "getppid")].status == "error"
    assert "EPERM" in cells[("runc", "getppid")].reason
    assert cells[("runc", "getppid")].value is None
    assert (cells[("docker", "getppid")].status, cells[("docker", "getppid")].reason) == \
        ("unsupported", "no_loopback")
    assert cells[("crun", "cpu")].status == "unsupported"
    assert cells[("runsc", "getppid")].status == "error"
    assert "boom" in cells[("runsc", "getppid")].reason
    assert cells[("qemu", "cpu")].status == "skipped"
    table = "\n".join(summary.format_table(list(cells.values()), infos, ["cpu", "getppid"]))
    assert "crun: unsupported: crun refuses hybrid" in table
    assert "runc getppid: error: round 3: error EPERM" in table


def test_table_rows_are_tests_columns_targets_vm_with_its_control():
    series = collect({"host": HOST, "runc": rounds_of([1000] * 5, [100] * 5),
                      "qemu": rounds_of([20000] * 5, [4000] * 5)})
    cells = summary.cells_for(INFOS, series, ["cpu", "getppid"])
    lines = summary.format_table(cells, INFOS, ["cpu", "getppid"])
    assert lines[0].split() == ["test", "host", "runc", "qemu", "(tcg)"]
    getppid = next(line for line in lines if line.startswith("getppid"))
    assert "50.0 ns" in getppid
    assert "100 ns (x2.00 [" in getppid
    assert "4000 ns (x80.00 [" in getppid and "/cpu x4.00 [" in getppid
    cpu = next(line for line in lines if line.startswith("cpu"))
    assert "1.00 us (x1.00 [0.99, 1.01])" in cpu


def fsync(ns: float, fs: str, magic: str) -> Figure:
    return Figure("file_fsync", "ok", 10, ns, 1e9 / ns, "MiB/s", fs=fs, fs_magic=magic)


def test_fsync_to_a_memory_file_system_is_flagged_in_cells_table_and_record(tmp_path):
    """gVisor's /tmp is its own tmpfs: its fsync is "faster than the host" because it never
    leaves memory; the cell says so (from the fs the workload found, not the target's name)."""
    def rounds(ns: float, fs: str, magic: str) -> list[dict[str, Figure]]:
        return [{"cpu": ok("cpu", 1000), "file_fsync": fsync(ns, fs, magic)}] * 3

    infos = INFOS[:2] + [summary.TargetInfo("runsc", "ok")]
    series = collect({"host": rounds(4e6, "ext4", "0xef53"),
                      "runc": rounds(4.2e6, "overlay", "0x794c7630"),
                      "runsc": rounds(2e5, "tmpfs", "0x1021994")})
    tests = ["cpu", "file_fsync"]
    cells = {(c.target, c.test): c for c in summary.cells_for(infos, series, tests)}
    assert cells[("runsc", "file_fsync")].no_device
    assert not cells[("host", "file_fsync")].no_device
    assert not cells[("runc", "file_fsync")].no_device
    assert not cells[("runsc", "cpu")].no_device   # no file, nothing to flag
    lines = summary.format_table(list(cells.values()), infos, tests)
    row = next(line for line in lines if line.startswith("file_fsync"))
    assert "[tmpfs]" in row and row.count("[tmpfs]") == 1
    assert ("  runsc file_fsync: fsync does not reach a device (tmpfs/overlay-in-memory): "
            "wrote to tmpfs (0x1021994)") in lines
    result = cells[("runsc", "file_fsync")].to_result(series[("runsc", "file_fsync")],
                                                      infos[2])
    assert result["no_device"] is True and result["fs"] == "tmpfs"
    assert result["fs_magic"] == "0x1021994" and "does not reach a device" in \
        result["device_note"]
    host = cells[("host", "file_fsync")].to_result(series[("host", "file_fsync")], infos[0])
    assert host["fs"] == "ext4" and "no_device" not in host
    from click.testing import CliRunner

    from isoinspect.cli.results_cmd import results

    record = RunRecord.create("bench overhead", directory=str(tmp_path), machine={})
    record.extend(r for _, r in bench.Overhead(tests, 3, 50, infos, series,
                                               list(cells.values())).results())
    out = CliRunner().invoke(results, ["show", record.path]).output
    shown = [line for line in out.splitlines() if "file_fsync" in line]
    assert [line.split()[1] for line in shown if "does not reach a device" in line] == ["runsc"]
    assert "tmpfs: fsync does not reach a device" in shown[-1]


def test_control_ratio_ci_of_constant_samples_is_exact():
    ratio = stats.control_ratio_ci([8.0] * 4, [2.0] * 4, [1.0] * 3, [1.0] * 3)
    assert ratio["ratio"] == 4.0 and ratio["ci"] == [4.0, 4.0]
    with pytest.raises(ValueError):
        stats.control_ratio_ci([1.0, 2.0], [1.0], [1.0], [1.0])


def test_suite_output_without_a_test_line_or_the_end_is_a_run_error():
    fake = suite()
    good = "@@W test=cpu status=ok ops=1 ns_per_op=5 value=5 unit=ns\n@@W-END tests=1 ok=1\n"
    assert fake.figures(good, ["cpu"])["cpu"].ns_per_op == 5
    with pytest.raises(RunError, match="no @@W-END"):
        fake.figures(good.replace("@@W-END", "@@W-EXIT"), ["cpu"])
    with pytest.raises(RunError, match="no line for test.*getppid"):
        fake.figures(good, ["cpu", "getppid"])
    with pytest.raises(RunError, match=r"\(no output\)"):
        fake.figures("", ["cpu"])


def test_split_rounds_cuts_the_guest_output_at_the_marks():
    text = (f"boot noise\n{runners.ROUND_MARK} 1\nA\n{runners.ROUND_MARK} 2\nB\nB2\n"
            f"{runners.ROUND_MARK} 9\nlost\n")
    assert runners.split_rounds(text, 3) == ["A\n", "B\nB2\n", ""]
    job = runners.QemuRunner.job(_vm_runner(), 3, ["cpu"], 50)
    assert f"cp -a {runners.VM_LAYER}/. {runners.VM_ROOT}/" in job
    assert f"{runners.VM_ROOT}/usr/local/bin/isoinspect-workload -t 50 cpu" in job


def _vm_runner():
    runner = runners.QemuRunner.__new__(runners.QemuRunner)
    runner.suite = suite()
    return runner


def test_host_runner_with_a_broken_binary_is_an_error(tmp_path):
    binary = tmp_path / "usr/local/bin/isoinspect-workload"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho '@@W test=cpu status=ok ops=1 ns_per_op=1 value=1 unit=ns'"
                      "\nexit 3\n")
    binary.chmod(0o755)
    runner = runners.HostRunner()
    runner.prepare(str(tmp_path), suite(str(tmp_path)))
    with pytest.raises(RunError, match="exited 3"):
        runner.run(["cpu"], 10)


def test_results_are_written_incrementally_and_replaced_in_place(tmp_path):
    record = RunRecord.create("bench overhead", directory=str(tmp_path), machine={})
    slots = __import__("isoinspect.benches.record", fromlist=["ResultSlots"]).ResultSlots(record)
    series = collect({"host": HOST[:2], "runc": rounds_of([1000] * 2, [100] * 2)})
    cells = summary.cells_for(INFOS[:2], series, ["cpu", "getppid"])
    overhead = bench.Overhead(["cpu", "getppid"], 2, 50, INFOS[:2], series, cells)
    slots.put(overhead.results())
    slots.put(overhead.results())
    data = load(record.path)
    assert len(data["results"]) == 4
    for result in data["results"]:
        validate_result(result)
    runc = next(r for r in data["results"] if r["target"] == "runc" and r["test"] == "getppid")
    assert runc["samples"] == [100e-9, 100e-9] and runc["value_unit"] == "ns"
    assert runc["ratio"]["vs"] == "host"


def test_results_show_prints_value_and_ratio_for_overhead(tmp_path):
    from click.testing import CliRunner

    from isoinspect.cli.results_cmd import results

    record = RunRecord.create("bench overhead", directory=str(tmp_path), machine={})
    series = collect({"host": HOST, "runc": rounds_of([1000] * 5, [100] * 5)})
    cells = summary.cells_for(INFOS[:2], series, ["cpu", "getppid"])
    record.extend(result for _, result in
                  bench.Overhead(["cpu", "getppid"], 5, 50, INFOS[:2], series, cells).results())
    out = CliRunner().invoke(results, ["show", record.path]).output
    line = next(line for line in out.splitlines() if line.startswith("overhead  runc")
                and "getppid" in line)
    assert "100 ns" in line and "x2.00 [" in line and "P50 ms" not in out


def test_bad_targets_and_tests_are_usage_errors():
    with pytest.raises(UsageError) as error:
        parse_names("runc,podman", list(runners.NAMES), "target")
    assert error.value.exit_code == USAGE_EXIT_CODE and "podman" in str(error.value)
    assert parse_names("runc,runc,host", list(runners.NAMES), "target") == ["runc", "host"]
    assert parse_names(None, ["a", "b"], "test") == ["a", "b"]
    with pytest.raises(UsageError):
        parse_names(",", ["a"], "test")


def test_every_target_name_has_a_runner():
    for name in runners.NAMES:
        runner = runners.make(name)
        assert runner.name == name
    assert os.path.basename(runners.VM_ROOT).startswith("isoinspect")


def test_cpu_pressure_is_read_from_psi_or_none(tmp_path):
    psi = tmp_path / "cpu"
    psi.write_text("some avg10=64.12 avg60=49.84 avg300=41.24 total=349717759\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert bench.cpu_pressure_total(str(psi)) == 349717759.0
    assert bench.cpu_pressure_total(str(tmp_path / "missing")) is None
    assert bench.time_text(58.71, 0.64) == "58.7 s wall, cpu pressure 64%"
