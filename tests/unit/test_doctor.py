"""`isoinspect doctor` formatting, JSON and exit-code logic, with fake check results."""

from __future__ import annotations

import importlib
import json

import pytest
from click.testing import CliRunner

from isoinspect.cli import doctor_cmd
from isoinspect.cli.doctor_cmd import CORE_CHECKS, core_results, exit_code, format_report, to_json
from isoinspect.runtime import diagnostics
from isoinspect.runtime.diagnostics import Check, Status


def healthy_sections() -> dict[str, list]:
    """A host where the core works, kprobes are missing and crun is unsupported."""
    return {
        "Host": [Check("root", Status.OK, "running as uid 0"),
                 Check("overlayfs", Status.OK, "overlay mounted and written (upper on ext4)")],
        "cgroups": [Check("cgroup mode", Status.OK, "hybrid",
                          "containers use the v1 controllers"),
                    Check("cgroups usable", Status.OK, "created a cgroup")],
        "Namespaces": [Check(f"namespace {ns}", Status.OK, "created")
                       for ns in ("mnt", "pid", "uts", "ipc", "net", "time")],
        "eBPF/inspector": [
            Check("attach: kprobe", Status.DEGRADED, "kernel has no kprobes",
                  "the inspector runs on tracepoints only"),
            Check("inspector mode", Status.DEGRADED, "tracepoints", "phases from tracepoints")],
        "Peers": [Check("crun", Status.UNSUPPORTED, "refuses hybrid cgroups", "left out"),
                  {"name": "runc", "ok": True, "detail": "ran /bin/true"}],
    }


def test_healthy_host_exits_zero_even_with_degraded_extras():
    sections = healthy_sections()
    assert exit_code(sections) == 0
    assert all(core_results(sections).values())


@pytest.mark.parametrize("core", CORE_CHECKS)
def test_each_failing_core_check_exits_one(core):
    sections = healthy_sections()
    for rows in sections.values():
        for i, row in enumerate(rows):
            if getattr(row, "name", None) == core:
                rows[i] = Check(core, Status.FAIL, "broken")
    assert exit_code(sections) == 1
    assert core_results(sections)[core] is False


@pytest.mark.parametrize("core", CORE_CHECKS)
def test_absent_core_check_counts_as_failed(core):
    sections = {name: [r for r in rows if getattr(r, "name", None) != core]
                for name, rows in healthy_sections().items()}
    assert exit_code(sections) == 1


def test_unknown_core_result_is_not_ok():
    sections = healthy_sections()
    sections["Host"][1] = Check("overlayfs", Status.ERROR, "could not test")
    assert exit_code(sections) == 1


def test_non_core_failures_do_not_fail():
    sections = healthy_sections()
    sections["Namespaces"].append(Check("namespace user", Status.FAIL, "EPERM"))
    sections["Peers"].append(Check("docker", Status.FAIL, "not running"))
    assert exit_code(sections) == 0


def test_status_words():
    assert Status.judge(True) == "ok" and Status.judge(False) == "missing"
    assert Status.judge(False, degraded=True) == "degraded"
    assert Status.judge(None) == "unknown"
    assert [s.value for s in Status] == ["ok", "missing", "degraded", "unsupported", "n/a",
                                         "unknown"]
    assert [s.ok for s in Status] == [True, False, False, False, None, None]
    row = Check("a", Status.DEGRADED).as_dict()
    assert row["status"] == "degraded" and row["ok"] is False and row["degraded"] is True
    assert json.loads(json.dumps(Check("a", Status.SKIP).as_dict()))["status"] == "n/a"


def test_verify_verdicts_share_the_status():
    assert diagnostics.VERDICTS == ("PASS", "FAIL", "UNSUPPORTED", "ERROR")
    assert [Status.from_verdict(v) for v in diagnostics.VERDICTS] == [
        Status.OK, Status.FAIL, Status.UNSUPPORTED, Status.ERROR]
    assert Status.DEGRADED.verdict is None and Status.SKIP.verdict is None
    with pytest.raises(ValueError):
        Status.from_verdict("OK")


def test_registry_registers_each_check_once_and_reports_crashes():
    registry = diagnostics.Registry()

    @registry.register("host", "a", "Host")
    def a():
        return Check("a", Status.OK)

    def b():
        raise RuntimeError("kaboom")

    registry.add(diagnostics.Entry("host", "b", b, "Host"))
    registry.register("other", "c")(lambda: [Check("c1", Status.SKIP), Check("c2", Status.OK)])
    with pytest.raises(ValueError, match="already registered"):
        registry.register("host", "a")(b)
    assert registry.register("host", "a", "Host")(a) is a  # the same function again: a reload
    assert [e.name for e in registry.entries("host")] == ["a", "b"]
    results = registry.run("host")
    assert [(e.name, c.status) for e, c in results] == [("a", Status.OK), ("b", Status.ERROR)]
    assert "kaboom" in results[1][1].detail
    assert diagnostics.by_family(registry.run("other")) == {
        "": [Check("c1", Status.SKIP), Check("c2", Status.OK)]}


def test_registry_runs_the_named_entries_only():
    registry = diagnostics.Registry()
    registry.register("peers", "qemu", "Peers")(
        lambda: Check("qemu", Status.FAIL, "qemu-system-x86_64 not installed"))
    registry.register("peers", "kvm", "Peers")(lambda: Check("kvm", Status.OK))
    assert [c.name for _, c in registry.run("peers", ["kvm"])] == ["kvm"]
    with pytest.raises(KeyError, match="no check nope"):
        registry.run("peers", ["nope"])


def test_test_suite_skips_say_what_doctor_says(monkeypatch):
    from doctor_facts import lacks

    registry = diagnostics.Registry()
    registry.register("peers", "qemu", "Peers")(
        lambda: Check("qemu", Status.FAIL, "qemu-system-x86_64 not installed"))
    registry.register("peers", "kvm", "Peers")(lambda: Check("kvm", Status.OK))
    _use_registry(monkeypatch, registry)
    assert lacks("peers", "qemu") == ("isoinspect doctor: qemu: missing: "
                                      "qemu-system-x86_64 not installed")
    assert lacks("peers", "kvm") is None


def test_doctor_groups_are_registered():
    for module in doctor_cmd.PROVIDERS:
        importlib.import_module(module)
    from isoinspect.runtime import hostcheck

    host = {e.name: e.family for e in diagnostics.REGISTRY.entries("host")}
    assert {"root", "kernel", "overlayfs", "seccomp", "pivot_root", "cgroups",
            "bridge networking"} <= set(host)
    assert {f"namespace {ns}" for ns in hostcheck.NAMESPACE_TYPES} <= set(host)
    assert set(host.values()) == {"Host", "cgroups", "Namespaces"}
    assert [e.name for e in diagnostics.REGISTRY.entries("peers")] == [
        "docker", "runc", "crun", "runsc", "qemu", "kvm"]
    assert [e.family for e in diagnostics.REGISTRY.entries("inspector")] == ["eBPF/inspector"]
    core = set(CORE_CHECKS) - {"cgroups usable"}  # one of the "cgroups" entry's results
    assert core <= set(host)


def test_report_has_sections_columns_and_summary():
    text = format_report(healthy_sections(), "tracepoints", width=120)
    lines = text.splitlines()
    for section in ("Host", "cgroups", "Namespaces", "eBPF/inspector", "Peers"):
        assert section in lines
    header = next(l for l in lines if l.strip().startswith("check"))
    for column in ("check", "status", "detail", "what isoinspect does about it"):
        assert column in header
    crun = next(l for l in lines if l.strip().startswith("crun"))
    assert "unsupported" in crun and "refuses hybrid cgroups" in crun
    kprobe = next(l for l in lines if "attach: kprobe" in l)
    assert "degraded" in kprobe
    assert "core OK" in lines[-1] and "inspector mode: tracepoints" in lines[-1]
    # dict rows are accepted and get a derived status
    assert any(l.strip().startswith("runc") and " ok " in l for l in lines)


def test_report_wraps_long_cells_within_width():
    sections = healthy_sections()
    sections["Host"].append(Check("kernel", Status.OK, "word " * 60, "impact " * 40))
    text = format_report(sections, "tracepoints", width=100)
    body = [l for l in text.splitlines()[:-1]]
    assert max(len(l) for l in body) <= 100
    assert sum("word" in l for l in body) > 3  # wrapped over several lines


def test_broken_core_is_named_in_summary():
    sections = healthy_sections()
    sections["Host"][0] = Check("root", Status.FAIL, "uid 1000")
    text = format_report(sections, "cgroup readers only")
    assert "core BROKEN (root)" in text.splitlines()[-1]


def test_json_output_is_complete():
    data = json.loads(to_json(healthy_sections(), "tracepoints"))
    assert data["ok"] is True and data["exit_code"] == 0
    assert data["inspector_mode"] == "tracepoints"
    assert set(data["core"]) == set(CORE_CHECKS)
    crun = next(r for r in data["sections"]["Peers"] if r["name"] == "crun")
    assert crun["status"] == "unsupported" and crun["ok"] is False
    assert {"name", "ok", "status", "detail", "impact"} <= set(crun)


@pytest.mark.parametrize("as_json", [False, True])
def test_command_exit_codes(monkeypatch, as_json):
    args = ["--json"] if as_json else []
    monkeypatch.setattr(doctor_cmd, "collect", lambda: (healthy_sections(), "tracepoints"))
    result = CliRunner().invoke(doctor_cmd.doctor, args)
    assert result.exit_code == 0, result.output
    if as_json:
        assert json.loads(result.output)["ok"] is True

    broken = healthy_sections()
    broken["cgroups"][1] = Check("cgroups usable", Status.FAIL, "mkdir: EACCES")
    monkeypatch.setattr(doctor_cmd, "collect", lambda: (broken, "tracepoints"))
    result = CliRunner().invoke(doctor_cmd.doctor, args)
    assert result.exit_code == 1
    assert "cgroups usable" in result.output


def _use_registry(monkeypatch, registry):
    """Stand *registry* in for the real one; the real check modules are imported first, so
    their import-time registration cannot land in the stand-in."""
    for module in doctor_cmd.PROVIDERS:
        importlib.import_module(module)
    monkeypatch.setattr(diagnostics, "REGISTRY", registry)


def test_collect_survives_a_crashing_check(monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    registry = diagnostics.Registry()
    registry.register("host", "root", "Host")(lambda: Check("root", Status.OK))
    registry.register("inspector", "capabilities", "eBPF/inspector")(boom)
    registry.register("peers", "runc", "Peers")(lambda: Check("runc", Status.OK))
    registry.register("verify", "x", "cpu")(boom)  # not a doctor group: not run
    _use_registry(monkeypatch, registry)
    sections, mode = doctor_cmd.collect()
    assert mode == "unknown"
    crashed = sections["eBPF/inspector"][0]
    assert crashed.status == "unknown" and "kaboom" in crashed.detail
    assert crashed.name == "capabilities"
    assert sections["Host"][0].name == "root" and sections["Peers"][0].name == "runc"
    assert sum(len(rows) for rows in sections.values()) == 3


def test_collect_takes_the_mode_from_the_inspector_mode_check(monkeypatch):
    registry = diagnostics.Registry()
    registry.register("inspector", "capabilities", "eBPF/inspector")(
        lambda: [Check("inspector mode", Status.DEGRADED, "tracepoints",
                       data={"mode": "tracepoints"})])
    _use_registry(monkeypatch, registry)
    assert doctor_cmd.collect()[1] == "tracepoints"


def test_doctor_is_a_click_command_named_doctor():
    import click

    assert isinstance(doctor_cmd.doctor, click.Command)
    assert doctor_cmd.doctor.name == "doctor"
    assert any(p.name == "as_json" and "--json" in p.opts for p in doctor_cmd.doctor.params)
