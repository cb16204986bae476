"""`isoinspect doctor` formatting, JSON and exit-code logic, with fake check results."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from isoinspect.cli import doctor_cmd
from isoinspect.cli.doctor_cmd import CORE_CHECKS, core_results, exit_code, format_report, to_json
from isoinspect.inspector.capabilities import Check as InspectorCheck
from isoinspect.runtime.hostcheck import Check


def healthy_sections() -> dict[str, list]:
    """A host where the core works, kprobes are missing and crun is unsupported."""
    return {
        "Host": [Check("root", True, "running as uid 0"),
                 Check("overlayfs", True, "overlay mounted and written (upper on ext4)")],
        "cgroups": [Check("cgroup mode", True, "hybrid", "containers use the v1 controllers"),
                    Check("cgroups usable", True, "created a cgroup")],
        "Namespaces": [Check(f"namespace {ns}", True, "created")
                       for ns in ("mnt", "pid", "uts", "ipc", "net", "time")],
        "eBPF/inspector": [
            InspectorCheck("attach: kprobe", False, "kernel has no kprobes",
                           "the inspector runs on tracepoints only", degraded=True),
            InspectorCheck("inspector mode", False, "tracepoints", "phases from tracepoints",
                           degraded=True)],
        "Peers": [Check("crun", False, "refuses hybrid cgroups", "left out",
                        status_override="unsupported"),
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
                rows[i] = Check(core, False, "broken")
    assert exit_code(sections) == 1
    assert core_results(sections)[core] is False


@pytest.mark.parametrize("core", CORE_CHECKS)
def test_absent_core_check_counts_as_failed(core):
    sections = {name: [r for r in rows if getattr(r, "name", None) != core]
                for name, rows in healthy_sections().items()}
    assert exit_code(sections) == 1


def test_unknown_core_result_is_not_ok():
    sections = healthy_sections()
    sections["Host"][1] = Check("overlayfs", None, "could not test")
    assert exit_code(sections) == 1


def test_non_core_failures_do_not_fail():
    sections = healthy_sections()
    sections["Namespaces"].append(Check("namespace user", False, "EPERM"))
    sections["Peers"].append(Check("docker", False, "not running"))
    assert exit_code(sections) == 0


def test_status_words():
    assert Check("a", True).status == "ok"
    assert Check("a", False).status == "missing"
    assert Check("a", False, degraded=True).status == "degraded"
    assert Check("a", None).status == "unknown"
    assert Check("a", False, status_override="unsupported").status == "unsupported"
    assert InspectorCheck("a", False, degraded=True).status == "degraded"
    assert Check("a", False, degraded=True).as_dict()["status"] == "degraded"


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
    sections["Host"].append(Check("kernel", True, "word " * 60, "impact " * 40))
    text = format_report(sections, "tracepoints", width=100)
    body = [l for l in text.splitlines()[:-1]]
    assert max(len(l) for l in body) <= 100
    assert sum("word" in l for l in body) > 3  # wrapped over several lines


def test_broken_core_is_named_in_summary():
    sections = healthy_sections()
    sections["Host"][0] = Check("root", False, "uid 1000")
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
    broken["cgroups"][1] = Check("cgroups usable", False, "mkdir: EACCES")
    monkeypatch.setattr(doctor_cmd, "collect", lambda: (broken, "tracepoints"))
    result = CliRunner().invoke(doctor_cmd.doctor, args)
    assert result.exit_code == 1
    assert "cgroups usable" in result.output


def test_collect_survives_a_crashing_check_group(monkeypatch):
    from isoinspect.benches import peers
    from isoinspect.inspector import capabilities
    from isoinspect.runtime import hostcheck

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(hostcheck, "run_all", lambda: {"Host": [Check("root", True)]})
    monkeypatch.setattr(capabilities, "check_all", boom)
    monkeypatch.setattr(peers, "check_all", lambda: [Check("runc", True)])
    sections, mode = doctor_cmd.collect()
    assert mode == "unknown"
    crashed = sections["eBPF/inspector"][0]
    assert crashed["status"] == "unknown" and "kaboom" in crashed["detail"]
    assert sections["Peers"][0]["name"] == "runc"


def test_doctor_is_a_click_command_named_doctor():
    import click

    assert isinstance(doctor_cmd.doctor, click.Command)
    assert doctor_cmd.doctor.name == "doctor"
    assert any(p.name == "as_json" and "--json" in p.opts for p in doctor_cmd.doctor.params)
