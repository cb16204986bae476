"""``isoinspect isolation``: the isolation matrix, measured from one running instance (``sleep``)
of each runtime, not typed in.

Containers (isoinspect, runc, docker) start with ``Target.start(argv, Limits())`` (Docker's
defaults, the same adapters as verify and exposure) and are read from the host's /proc; runsc
too, but its workload is read inside the sandbox (``runsc exec`` of the probe) and the
Sentry's and Gofer's host privileges are named apart; the VM is a detached QEMU guest whose
job runs the probe and then execs ``sleep``. Every property is the inspector's (guest_view,
scorecard, verdict); ``host_syscalls`` comes from the newest ``exposure`` record of the runtime.
One result of kind ``isolation`` per runtime.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from isoinspect.benches.exposure import RUNTIMES, make_target, profile_allowed_count, \
    select_runtimes
from isoinspect.runtime.errors import IsoinspectError

SLEEP = ["/bin/sleep", "100000"]
VM_MEMORY_MB = 256
VM_TIMEOUT_S = 180.0
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
#: the matrix's columns: property -> short header
COLUMNS = {"verdict_level": "LEVEL", "namespaces_own": "OWN NS", "user_namespace": "USERNS",
           "capabilities": "CAPS", "dangerous_capabilities": "DANGEROUS", "seccomp": "SECCOMP",
           "no_new_privs": "NNP", "masked_paths": "MASKED", "readonly_paths": "RO",
           "shares_host_kernel": "HOST KERNEL", "host_syscalls": "HOST SYSC",
           "runs_as_root": "ROOT"}


@dataclass
class IsolationResult:
    """One runtime's row of the matrix (kind "isolation")."""

    runtime: str
    status: str                             # ok | unsupported | error
    reason: str = ""
    properties: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"kind": "isolation", **asdict(self)}


def properties_of(runtime: str, card: dict, host_syscalls: int | None) -> dict:
    """The record contract's properties from a unit's card."""
    caps = card["capabilities"]
    return {
        "namespaces": {n: "own" if card["namespaces"].get(n) == "own" else "shared"
                       for n in NAMESPACES},
        "user_namespace": card["user_namespace"] or card["kernel"] != "host",
        "capabilities": len(caps["effective"]),
        "dangerous_capabilities": list(caps["dangerous"]),
        "seccomp": card["seccomp"],
        "seccomp_allowed": (profile_allowed_count() if runtime in ("isoinspect", "runc")
                            and card["seccomp"] == "filter" else None),
        "no_new_privs": card["no_new_privs"],
        "masked_paths": len(card["paths"]["masked"]),
        "readonly_paths": len(card["paths"]["read_only"]),
        "shares_host_kernel": card["shares_host_kernel"],
        "host_syscalls": host_syscalls,
        "runs_as_root": card["runs_as_root"],
        "verdict": card["verdict"]["text"],
        "sandbox_privileges": card["sandbox_privileges"],
    }


def evidence_of(runtime: str, card: dict, syscalls_from: dict | None) -> dict:
    from isoinspect.benches.exposure import PROFILES

    return {"pid": card["pid"], "cgroup": (card.get("cgroup") or {}).get("path"),
            "seccomp_profile": PROFILES[runtime],
            "capabilities": card["capabilities"]["effective"],
            "seccomp_filters": card["seccomp_filters"], "uid": card["uid"],
            "paths": card["paths"], "guest": card.get("guest"), "verdict": card["verdict"],
            "host_syscalls_from": syscalls_from}


def newest_exposure(runtime: str, directory: str | None) -> tuple[int | None, dict | None]:
    """Distinct host syscalls the runtime's unit reached in the newest exposure record that
    measured it (its ``script`` workload if that record has one), and where that came from."""
    from isoinspect.benches.record import RecordError, load, results_dir
    from isoinspect.benches.results_index import list_runs

    folder = results_dir(directory)
    for run in reversed(list_runs(folder)):
        if "exposure" not in (run.get("kinds") or "").split(","):
            continue
        try:
            data = load(run["path"])
        except RecordError:
            continue
        found = [r for r in data["results"] if r.get("kind") == "exposure"
                 and r.get("runtime") == runtime and r.get("status") == "ok"
                 and isinstance(r.get("distinct"), int)]
        if found:
            best = next((r for r in found if r.get("workload") == "script"), found[0])
            return best["distinct"], {"run_id": data["run_id"], "workload": best["workload"],
                                      "distinct": best["distinct"], "total": best.get("total")}
    return None, None


def measure_container(runtime: str, workdir: str):
    """(card, reason): the card of a running ``sleep`` of ``runtime``, or why not."""
    from isoinspect.benches.bundle import Limits
    from isoinspect.inspector.guest_view import unit_card

    target = make_target(runtime)
    ok, why = target.available()
    if not ok:
        return None, why
    box = None
    try:
        target.prepare(workdir)
        box = target.start(SLEEP, Limits())
        return unit_card(box.pid), ""
    finally:
        try:
            if box is not None:
                box.stop()
        finally:
            target.cleanup()


def measure_vm():
    """(card, reason) of a detached QEMU guest whose job prints the probe, then sleeps."""
    import shlex

    from isoinspect.benches.vm import GuestVM
    from isoinspect.benches.vm.instance import DetachedGuest
    from isoinspect.inspector.guest_view import END, probe_script, qemu_card

    if not shutil.which("qemu-system-x86_64"):
        return None, "qemu-system-x86_64 not installed"
    vm = GuestVM(cpus=1, memory_mb=VM_MEMORY_MB)
    script = probe_script("$$") + f"\nexec {shlex.join(SLEEP)}"
    guest = DetachedGuest(vm, f"sh -c {shlex.quote(script)}", VM_MEMORY_MB)
    try:
        guest.start(VM_TIMEOUT_S)
        stdout = os.path.join(guest.run_dir, "stdout")
        deadline = time.monotonic() + 60
        text = ""
        while END not in text:
            if time.monotonic() > deadline or not guest.alive():
                raise IsoinspectError(f"no probe output from the guest: {text[-300:]!r}")
            time.sleep(0.05)
            with open(stdout, errors="replace") as handle:
                text = handle.read()
        card = qemu_card(guest.pid, text)
        card.setdefault("guest", {})["accelerator"] = guest.accel
        return card, ""
    finally:
        guest.stop()


def run_one(runtime: str, workdir: str, results_dir: str | None) -> IsolationResult:
    """One runtime's row; never raises for the runtime's own failure."""
    try:
        card, why = measure_vm() if runtime == "qemu" else measure_container(runtime, workdir)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one runtime's failure, recorded
        return IsolationResult(runtime, "error", f"{type(exc).__name__}: {str(exc)[:400]}")
    if card is None:
        return IsolationResult(runtime, "unsupported", why)
    syscalls, source = newest_exposure(runtime, results_dir)
    return IsolationResult(runtime, "ok", properties=properties_of(runtime, card, syscalls),
                           evidence=evidence_of(runtime, card, source))


# --------------------------------------------------------------------------------- output


def cells(result: IsolationResult) -> dict[str, str]:
    """The matrix's cells of one row, as text (shared by the table and the report)."""
    p = result.properties
    own = [n for n in NAMESPACES if p["namespaces"][n] == "own"]
    level = result.evidence.get("verdict", {}).get("level", "")
    seccomp = p["seccomp"] + (f" {p['seccomp_allowed']}" if p["seccomp_allowed"] else "")
    return {"verdict_level": level,
            "namespaces_own": "all 8" if len(own) == 8 else ",".join(own) or "none",
            "user_namespace": "yes" if p["user_namespace"] else "no",
            "capabilities": str(p["capabilities"]),
            "dangerous_capabilities": _listed(p["dangerous_capabilities"]),
            "seccomp": seccomp, "no_new_privs": "yes" if p["no_new_privs"] else "no",
            "masked_paths": str(p["masked_paths"]), "readonly_paths": str(p["readonly_paths"]),
            "shares_host_kernel": p["shares_host_kernel"],
            "host_syscalls": "-" if p["host_syscalls"] is None else str(p["host_syscalls"]),
            "runs_as_root": "yes" if p["runs_as_root"] else "no"}


def _listed(names: list[str], most: int = 2) -> str:
    """A short list of names: all of them, or how many with the first."""
    if len(names) <= most:
        return ",".join(names) or "none"
    return f"{len(names)}: {names[0]},…"


WIDTHS = {"verdict_level": 16, "namespaces_own": 26, "dangerous_capabilities": 22,
          "shares_host_kernel": 14, "seccomp": 11}


def format_table(results: list[IsolationResult]) -> str:
    def width(key: str) -> int:
        return WIDTHS.get(key, max(len(COLUMNS[key]), 4))

    lines = [f"{'RUNTIME':<11} " + " ".join(f"{h:<{width(k)}}" for k, h in COLUMNS.items())]
    for r in results:
        if r.status != "ok":
            lines.append(f"{r.runtime:<11} {r.status}: {r.reason[:150]}")
            continue
        row = cells(r)
        lines.append(f"{r.runtime:<11} " + " ".join(f"{row[k][:width(k)]:<{width(k)}}"
                                                    for k in COLUMNS))
    lines.append("")
    for r in results:
        if r.status == "ok":
            lines.append(f"{r.runtime}: {r.properties['verdict']}")
            for role, facts in (r.properties["sandbox_privileges"] or {}).items():
                lines.append(f"  {role} (host pid {facts['pid']}): {facts['summary']}")
    return "\n".join(lines)


def run_command(runtime: str, json_out: str | None, results_dir: str | None) -> int:
    """``isoinspect isolation``: the exit code (0 unless no runtime was measured)."""
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.startup import interrupt_on_signals

    runtimes = select_runtimes(runtime)
    interrupt_on_signals()
    workdir = tempfile.mkdtemp(prefix="isoinspect-isolation-")
    record = RunRecord.create("isolation", directory=results_dir,
                              config={"runtimes": runtimes, "workload": SLEEP})
    results: list[IsolationResult] = []
    interrupted = False
    try:
        for name in runtimes:
            sys.stderr.write(f"  {name}: starting one instance ...\n")
            result = run_one(name, workdir, results_dir)
            results.append(result)
            record.add(result.record())
            if result.status != "ok":
                sys.stderr.write(f"  {name}: {result.status}: {result.reason[:200]}\n")
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        record.finish(interrupted=interrupted)
        shutil.rmtree(workdir, ignore_errors=True)
    from isoinspect.benches.publish import publish

    publish(record, [r.record() for r in results], json_out, format_table(results))
    return 0 if any(r.status == "ok" for r in results) else 1


__all__ = ["RUNTIMES", "IsolationResult", "cells", "format_table", "run_command", "run_one"]
