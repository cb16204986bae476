"""The report's overhead, density and exposure sections, and every record kind the suite writes.

full.json holds every kind of benches/record.py RESULT_KINDS (the overhead, density and exposure
results come from real runs on this machine: measured.json, see capture.py). Each kind alone
must render its section with its data, never the "No ... in this run" placeholder; a kind the
report does not know (a newer producer's) must render without error.
"""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from isoinspect.benches.exposure import per_op_text
from isoinspect.benches.record import RESULT_KINDS, RecordError
from isoinspect.reports import load, palette, render
from isoinspect.reports import section_density, section_exposure, section_overhead

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
#: record kind -> the id of the section that shows it
SECTION_OF = {"startup": "startup", "concurrency": "concurrency",
              "namespace_cost": "namespaces", "verify": "verification",
              "trace_overhead": "overhead", "trace": "traces",
              "overhead": "workload-overhead", "density": "density", "exposure": "exposure",
              "isolation": "isolation"}     # helper I's kind and section, once they land


def full() -> dict:
    with open(os.path.join(FIXTURES, "full.json")) as handle:
        return json.load(handle)


def record_of(results: list[dict], run_id: str = "20261206T100000Z-0a0b0c",
              created: float = 1796551200.0) -> dict:
    data = {k: v for k, v in full().items() if k != "results"}
    data.update(run_id=run_id, created=created, finished=created + 60, results=results)
    return data


def write(tmp_path, data: dict) -> str:
    path = tmp_path / f"{data['run_id']}.json"
    path.write_text(json.dumps(data))
    return str(path)


def section_html(text: str, section_id: str) -> str:
    start = text.index(f'<section id="{section_id}">')
    end = text.find("<section", start + 1)
    return text[start:end if end > 0 else len(text)]


def table_cells(part: str) -> list[list[str]]:
    """The first text of every cell of every body row (the header row left out)."""
    rows = re.findall(r"<tr>(.*?)</tr>", part, re.S)[1:]
    return [re.findall(r"<td[^>]*>([^<]*)", row) for row in rows]


def test_the_fixture_holds_every_kind_and_each_has_a_section():
    kinds = {r["kind"] for r in full()["results"]}
    assert set(RESULT_KINDS) <= kinds, set(RESULT_KINDS) - kinds
    assert set(RESULT_KINDS) <= set(SECTION_OF), (
        "a new record kind needs a section (and a line here): "
        f"{set(RESULT_KINDS) - set(SECTION_OF)}")


@pytest.mark.parametrize("kind", sorted(RESULT_KINDS))
def test_each_kind_alone_renders_its_section_with_data(tmp_path, kind):
    results = [r for r in full()["results"] if r["kind"] == kind]
    runs = load.load_runs([write(tmp_path, record_of(results))])
    text = render.render(runs)
    part = section_html(text, SECTION_OF[kind])
    assert 'class="empty"' not in part, part[:600]
    assert "<table" in part or "<figure" in part
    assert "Traceback" not in text


def test_a_kind_the_report_does_not_know_renders_without_error(tmp_path):
    future = {"kind": "isolation-v9", "runtime": "runc", "status": "ok",
              "properties": {"namespaces": {"pid": "own"}, "verdict": "confined"},
              "samples": "not a list: the report must not read it"}
    startup = [r for r in full()["results"] if r["kind"] == "startup"][:2]
    for results in ([future], [future, *startup]):
        runs = load.load_runs([write(tmp_path, record_of(results))])
        text = render.render(runs)
        ids = re.findall(r'<section id="([^"]+)">', text)
        assert {"summary", "workload-overhead", "density", "exposure", "runs"} <= set(ids)
        assert "isolation-v9" not in section_html(text, "workload-overhead")


@pytest.fixture(scope="module")
def full_text() -> str:
    return render.render(load.load_runs([os.path.join(FIXTURES, "full.json")]))


def test_overhead_table_has_values_ratios_the_vm_control_flags_and_reasons(full_text):
    part = section_html(full_text, "workload-overhead")
    header = re.findall(r"<th>([^<]*)</th>", part)
    assert header == ["test", "host", "isoinspect", "runc", "crun", "qemu (tcg)"]
    getppid = re.search(r"<tr><td>getppid</td>.*?</tr>", part, re.S).group(0)
    assert "113 ns<small>host (1×)</small>" in getppid
    assert "94.4 ns<small>0.834× [0.666, 1.49]</small>" in getppid          # runc
    assert "774 ns<small>6.84× [3.16, 10.4] · /cpu 2.42× [1.60, 3.34]</small>" in getppid
    assert getppid.count('class="warn"') == 1 and "· suspect" in getppid   # isoinspect
    assert getppid.count('class="status-unsupported"') == 1
    assert "crun · every test: unsupported: crun 1.8.1 refuses hybrid cgroups" in part
    assert "isoinspect: harness suspect" in part
    assert "The cpu control (a pure CPU loop, expected ~1.0× the host&#39;s time): " \
           "isoinspect 1.26× [0.941, 1.93] (harness suspect), runc 1.03× [1.01, 1.76], " \
           "qemu (tcg) 2.83× [1.56, 3.97] (its CPU is virtual)." in part
    assert "qemu (tcg): slowest against the host in fork, 62× [3.10, 140]" in part
    assert "5545 µs<small>62× [3.10, 140] · /cpu 21.9× [2.11, 45.7]</small>" in part
    assert 'id="chart-workload-overhead"' in part and "1.0× costs nothing" in part


def test_density_table_has_per_instance_runtime_pss_cgroup_and_failures(full_text):
    part = section_html(full_text, "density")
    cells = table_cells(part)
    assert [c[0] for c in cells] == ["host", "host", "isoinspect", "isoinspect", "runc", "runc",
                                     "crun", "docker", "docker", "runsc", "runsc"]
    runsc = cells[-2]
    assert runsc[1:8] == ["1", "12.0 [12.0, 12.0]", "29.5", "12.0", "–", "166", "ok"]
    docker = cells[7]
    assert docker[3:6] == ["7.08", "0.30", "0.53"]    # shim PSS, cgroup, containerd growth
    assert cells[6][1:3] == ["–", "–"] and cells[6][7] == "unsupported"
    assert "Memory per instance with 2 running, lightest first: isoinspect 0.18 MiB" in part
    assert "crun: unsupported: crun 1.8.1" in part and 'id="chart-density"' in part


def test_exposure_table_has_counts_top_syscalls_and_what_was_allowed(full_text):
    part = section_html(full_text, "exposure")
    cells = table_cells(part)
    assert [(c[0], c[1]) for c in cells] == [("runc", "idle"), ("isoinspect", "script"),
                                             ("runc", "script"), ("docker", "script"),
                                             ("runsc", "script")]
    runsc = cells[-1]
    assert runsc[2:6] == ["602,023", "30", "126,312", "0.2%"]
    assert runsc[6].startswith("ptrace 466,926, wait4 92,082")
    assert runsc[7:] == ["filter", "2", "cgroup, pid, time", "via the Sentry"]
    assert cells[2][7:] == ["filter, 307 allowed", "14", "cgroup, time, user", "yes"]
    assert cells[0][2] == "0"                        # an idle runc reached nothing
    assert "script: host syscalls from fewest, docker 19,607 (33 distinct)" in part
    assert 'title="SYS_CHROOT, SYS_ADMIN"' in part and 'id="chart-exposure"' in part


def test_the_newest_of_a_measurement_wins_when_runs_are_combined(tmp_path):
    """Two runs measuring the same (target, test), (target, level), (runtime, workload): one
    row each in the report, the newer run's."""
    results = [r for r in full()["results"] if r["kind"] in ("overhead", "density", "exposure")]
    newer = copy.deepcopy(results)
    for result in newer:
        if result["kind"] == "exposure":
            result["total"] = 7
    old_path = write(tmp_path, record_of(results))
    new_path = write(tmp_path, record_of(newer, "20261207T100000Z-0d0e0f", 1796637600.0))
    view = [load.merged(load.load_runs([old_path, new_path]))]
    assert len(load.overhead(view)) == len(load.overhead([record_of(results)]))
    assert len(load.density(view)) == 11
    exposure = load.exposure(view)
    assert len(exposure) == 5 and set(exposure.total) == {7}
    render.render(load.load_runs([old_path, new_path]))


@pytest.mark.parametrize("kind, field, value", [
    ("overhead", "ratio", {"ratio": "fast", "ci": [1, 2]}),
    ("overhead", "samples", ["1 ms"]),
    ("density", "per_instance_bytes", {"estimate": "a lot"}),
    ("exposure", "top", "brk"),
])
def test_a_malformed_field_is_one_clear_record_error(tmp_path, kind, field, value):
    result = copy.deepcopy(next(r for r in full()["results"] if r["kind"] == kind))
    result[field] = value
    with pytest.raises(RecordError, match=f"\\({kind}\\) is malformed: {field} must be"):
        load.load_runs([write(tmp_path, record_of([result]))])


def test_sections_say_when_their_kind_is_missing():
    frames: dict = {}
    view = [{"run_id": "x", "sources": [{}], "results": []}]
    for module, words in ((section_overhead, "No workload overhead"),
                          (section_density, "No density"), (section_exposure, "No exposure")):
        section = module.section(frames, view)
        assert section.empty.startswith(words) and section.empty.endswith("in this run.")
        assert not section.tables and not section.charts


def test_runtimes_keep_the_report_order_and_one_colour():
    assert palette.ordered(["qemu", "runsc", "docker", "runc", "isoinspect",
                            "zz-new", "host"]) == \
        ["host", "isoinspect", "runc", "docker", "runsc", "qemu", "zz-new"]
    assert palette.colour("runc") == palette.colour("runc")
    assert len({palette.colour(n) for n in ("host", "isoinspect", "runc",
                                            "docker", "runsc", "qemu")}) == 6


def test_tracer_overhead_of_the_tracer_process_is_one_row_per_target(tmp_path):
    """Real trace_overhead results (bench startup --trace-runs: one per target, paired) and a
    target whose pass failed: a row each, the setup, the untraced BPF background, the reason."""
    with open(os.path.join(FIXTURES, "measured.json")) as handle:
        measured = [r for r in json.load(handle)["results"] if r["kind"] == "trace_overhead"]
    failed = {"kind": "trace_overhead", "target": "docker", "metric": "lifecycle",
              "status": "failed", "reason": "tracer: the tracer process exited", "pairs": 0,
              "setup": "tracer in a separate process, interleaved, 0 pairs"}
    text = render.render(load.load_runs([write(tmp_path, record_of([*measured, failed]))]))
    part = section_html(text, "overhead")
    rows = re.findall(r'<tr><td>(?:<span class="swatch"[^>]*></span>)?([^<]*)</td>', part)
    assert rows == ["isoinspect-lib", "runc", "docker"]
    assert "tracer in a separate process, interleaved, 5 pairs" in part
    assert "0.953× [0.687, 1.25]" in part and "143<small>untraced runs: 52</small>" in part
    assert "failed<small>tracer: the tracer process exited</small>" in part


def test_every_kind_with_only_its_required_fields_renders(tmp_path):
    """A producer's failure result carries little more than the contract's fields: every kind
    so bare renders (its section may say what failed, the page must not break)."""
    bare = [{"kind": kind, **{f: 1 if f == "level" else "error" if f == "status" else "x"
                              for f in fields}}
            for kind, fields in RESULT_KINDS.items()]
    text = render.render(load.load_runs([write(tmp_path, record_of(bare))]))
    ids = re.findall(r'<section id="([^"]+)">', text)
    assert {SECTION_OF[kind] for kind in RESULT_KINDS} <= set(ids)


def test_a_device_test_written_to_memory_is_flagged_in_the_overhead_table(tmp_path):
    """An fsync figure from a tmpfs (gVisor's /tmp, the VM's root) is memory's: its cell and
    the notes say so, and its ratio is not called slower or faster than the host's."""
    results = [r for r in full()["results"] if r["kind"] == "overhead"]
    for target, fs, magic in (("host", "ext4", "0xef53"), ("runc", "tmpfs", "0x1021994")):
        fsync = copy.deepcopy(next(r for r in results
                                   if (r["target"], r["test"]) == (target, "getppid")))
        fsync.update(test="file_fsync", value_unit="MiB/s", fs=fs, fs_magic=magic)
        if fs == "tmpfs":
            fsync.update(no_device=True, device_note="fsync does not reach a device")
        results.append(fsync)
    text = render.render(load.load_runs([write(tmp_path, record_of(results))]))
    part = section_html(text, "workload-overhead")
    row = re.search(r"<tr><td>file_fsync</td>.*?</tr>", part, re.S).group(0)
    assert row.count(" · tmpfs, no device") == 1 and 'class="warn"' in row
    assert "runc · file_fsync: fsync does not reach a device (tmpfs/overlay-in-memory) — it " \
           "wrote to tmpfs" in part
    assert "host · file_fsync: fsync does not reach" not in part


def _exposure_overhead() -> list[dict]:
    """Real per-operation exposure results (isoinspect exposure --workload overhead, runc,
    isoinspect, runsc, docker, qemu on this machine: capture.py -o exposure-overhead.json)."""
    with open(os.path.join(FIXTURES, "exposure-overhead.json")) as handle:
        return json.load(handle)["results"]


def test_exposure_shows_host_syscalls_per_operation_of_each_program_test(tmp_path):
    results = _exposure_overhead()
    text = render.render(load.load_runs([write(tmp_path, record_of(results))]))
    part = section_html(text, "exposure")
    assert "Host syscalls per workload operation</h" in part
    table = part[part.index("Host syscalls per workload operation</h"):]
    header = re.findall(r"<th>([^<]*)</th>", table[:table.index("</tr>")])
    order = ["isoinspect", "runc", "docker", "runsc", "qemu"]     # the report's order
    assert header == ["test", *order]
    by_runtime = {r["runtime"]: {t["test"]: t for t in r["tests"]} for r in results}
    rows = {cells[0]: cells[1:] for cells in table_cells(table)}
    from isoinspect.benches.overhead.program import TEST_NAMES

    assert list(rows) == list(TEST_NAMES)
    for test, cells in rows.items():
        for runtime, cell in zip(order, cells):
            figure = by_runtime[runtime][test]
            if figure["calls_per_op"] is None:
                assert cell == figure["status"], (test, runtime, cell)
            else:
                assert cell == per_op_text(figure["calls_per_op"]), (test, runtime, cell)
    getppid = re.search(r"<tr><td[^>]*>getppid</td>.*?</tr>", table, re.S).group(0)
    runc = by_runtime["runc"]["getppid"]
    assert f"1.000<small>{runc['distinct']} distinct</small>" in getppid
    assert 'title="getppid 1/op' in getppid
    assert rows["file_direct"][order.index("runsc")] == "unsupported"   # gVisor's /tmp: tmpfs
    assert "Host syscalls per workload operation, median over the program&#39;s tests: " \
           "isoinspect " in part
    assert "Most distinct host syscalls reached by one test: isoinspect " in part


def test_exposure_without_program_tests_has_no_per_operation_table(full_text):
    part = section_html(full_text, "exposure")
    assert "per workload operation" not in part
