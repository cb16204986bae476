"""The report's isolation matrix renders a record's ``isolation`` results."""

from __future__ import annotations

import json

from isoinspect.reports import load, render, section_isolation

NS = {"cgroup": "shared", "ipc": "own", "mnt": "own", "net": "own", "pid": "own",
      "time": "shared", "user": "shared", "uts": "own"}


def props(**changes) -> dict:
    base = {"namespaces": dict(NS), "user_namespace": False, "capabilities": 14,
            "dangerous_capabilities": [], "seccomp": "filter", "seccomp_allowed": 307,
            "no_new_privs": False, "masked_paths": 11, "readonly_paths": 5,
            "shares_host_kernel": "yes", "host_syscalls": 42, "runs_as_root": True,
            "verdict": "confined like Docker's default; runs as root <b>", "sandbox_privileges": None}
    base.update(changes)
    return base


def record(tmp_path) -> str:
    results = [
        {"kind": "isolation", "runtime": "docker", "status": "ok", "reason": "",
         "properties": props(), "evidence": {"verdict": {"level": "confined"}}},
        {"kind": "isolation", "runtime": "runsc", "status": "ok", "reason": "",
         "properties": props(namespaces={n: "own" for n in NS}, shares_host_kernel="via the Sentry",
                             seccomp="disabled", seccomp_allowed=None, host_syscalls=None,
                             verdict="sandboxed: ...",
                             sandbox_privileges={"sentry": {"pid": 7, "summary": "uid 65534, "
                                                            "2 capabilities (SYS_ADMIN)"}}),
         "evidence": {"verdict": {"level": "sandboxed"}}},
        {"kind": "isolation", "runtime": "qemu", "status": "unsupported",
         "reason": "qemu-system-x86_64 not installed", "properties": {}, "evidence": {}},
    ]
    data = {"schema": "isoinspect.run", "schema_version": 1, "run_id": "20260101T000000Z-iso",
            "command": "isolation", "created": 1.0, "finished": 2.0, "interrupted": False,
            "machine": {}, "versions": {}, "capabilities": {}, "config": {}, "results": results}
    path = tmp_path / "iso.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_matrix_rows_are_properties_and_columns_runtimes(tmp_path):
    runs = load.load_runs([record(tmp_path)])
    out = section_isolation.section({}, runs)
    table = out.tables[0]
    assert table.header == ["property", "docker", "runsc", "qemu"]
    rows = {row[0].text: [c.text for c in row[1:]] for row in table.rows}
    assert rows["verdict"] == ["confined", "sandboxed", "unsupported"]
    assert rows["user namespace"] == ["shared", "own", "unsupported"]
    assert rows["shares the host kernel"] == ["yes", "via the Sentry", "unsupported"]
    assert rows["seccomp"][:2] == ["filter 307", "disabled"]
    assert rows["host syscalls reached"][:2] == ["42", "-"]
    assert all(row[0].title for row in table.rows)              # the legend
    assert sum(bool(row[0].note) for row in table.rows) == len(table.rows) - 7
    assert any("sentry on the host (pid 7)" in n for n in out.notes)
    assert "qemu: unsupported (qemu-system-x86_64 not installed)" in out.notes


def test_the_report_shows_the_section_escaped(tmp_path):
    text = render.render(load.load_runs([record(tmp_path)]))
    assert 'id="isolation"' in text and "Isolation matrix" in text
    assert "runs as root &lt;b&gt;" in text and "runs as root <b>" not in text


def test_no_isolation_results_says_so():
    out = section_isolation.section({}, [{"run_id": "r", "results": []}])
    assert out.empty.startswith("No isolation matrix")
