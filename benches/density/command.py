"""``isoinspect bench density``: every target's sweep into one RunRecord, and the final table.

Targets run one after another (each one's instances are all stopped before the next starts,
so MemAvailable and the daemons' growth belong to one target). ``--quick``: levels 1 and 8,
the VM at 1 and 2 (each TCG guest is a full system emulator: two or more keep both cores of
this host busy while they boot). ``--max N`` caps every level at N. The work directory (a
temporary ``isoinspect-density-*``) is removed at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
import time

from isoinspect.benches.choices import parse_names
from isoinspect.benches.density.instances import TARGET_NAMES, make_launcher
from isoinspect.benches.density.sweep import MIB, SETTLE_S, TargetSweep, progress
from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

DEFAULT_LEVELS = [1, 8, 32]
QUICK_LEVELS = [1, 8]
QUICK_VM_LEVELS = [1, 2]
VM_TARGETS = ("qemu",)


def parse_targets(text: str | None) -> list[str]:
    """'host,runc' -> ['host', 'runc'] (all when empty); UsageError naming unknown ones."""
    return parse_names(text, TARGET_NAMES, "density target", unique=True)


def plan_levels(levels: list[int] | None, maximum: int | None, quick: bool
                ) -> tuple[list[int], list[int]]:
    """(container levels, VM levels): sorted, unique, each capped at ``maximum``."""
    if maximum is not None and maximum < 1:
        raise UsageError(f"--max must be >= 1, not {maximum}", exit_code=USAGE_EXIT_CODE)
    chosen = list(levels) if levels else list(QUICK_LEVELS if quick else DEFAULT_LEVELS)
    vm = list(QUICK_VM_LEVELS) if quick else chosen

    def capped(values: list[int]) -> list[int]:
        if maximum is not None:
            values = [min(v, maximum) for v in values]
        return sorted(set(values))

    return capped(chosen), capped(vm)


def run_density(names: list[str], levels: list[int], vm_levels: list[int], *, record=None,
                json_out: str | None = None, settle: float | None = None,
                echo: bool = True) -> dict:
    """Sweep each target in turn; the summary (results, interrupted, wall seconds)."""
    from isoinspect.benches.targets.docker import DAEMONS

    begin = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="isoinspect-density-")
    if record is not None:
        record.set(config=record.data["config"] | {"workdir": workdir})
    summary = {"targets": names, "levels": levels, "vm_levels": vm_levels, "results": [],
               "errors": {}, "interrupted": False}
    try:
        for name in names:
            launcher = make_launcher(name)
            plan = vm_levels if name in VM_TARGETS else levels
            progress(f"density {name}: levels {','.join(map(str, plan))}")
            sweep = TargetSweep(launcher, plan, record, shared_daemons=DAEMONS,
                                **({"settle": settle} if settle is not None else {}))
            try:
                done = sweep.run(workdir)
            except KeyboardInterrupt:   # between a sweep's own guards
                summary["interrupted"] = True
                break
            summary["results"] += done.results
            if done.errors:
                summary["errors"][name] = done.errors
            if done.interrupted:
                summary["interrupted"] = True
                break
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if summary["interrupted"]:
        progress("interrupted: kept what was measured, everything started was removed")
    summary["wall_seconds"] = time.monotonic() - begin
    if record is not None:
        record.set(summary={"wall_seconds": summary["wall_seconds"],
                            "cleanup_errors": summary["errors"]})
        record.finish(interrupted=summary["interrupted"])
        summary["run_id"], summary["path"] = record.run_id, record.path
        if json_out:
            from isoinspect.benches.record import write_json_atomic

            write_json_atomic(json_out, record.data)
    if echo:
        print(format_table(summary))
    return summary


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.1f}"


def density_cells(result: dict) -> dict[str, str]:
    """One result's figures as text (the table here and ``results show``)."""
    estimate = result.get("per_instance_bytes") or {}
    n = max(1, result.get("instances") or 1)
    ci = estimate.get("ci")
    cells = {
        "mib": _mib(estimate.get("estimate")),
        "ci": f"[{_mib(ci[0])}, {_mib(ci[1])}]" if ci else "",
        "runtime": _mib(None if result.get("runtime_pss_bytes") is None
                        else result["runtime_pss_bytes"] / n),
        "cgroup": _mib(None if result.get("cgroup_bytes") is None
                       else result["cgroup_bytes"] / n),
        "daemons": _mib(result.get("daemon_growth_per_instance_bytes")),
        "host": _mib(result.get("host_used_per_instance_bytes")),
        "nth": _ms(result.get("nth_start_seconds")),
        "p50": _ms((result.get("stats") or {}).get("p50")),
    }
    return cells


def format_table(summary: dict) -> str:
    """target x level: MiB per instance [95% CI], its parts, and start times."""
    headers = ["target", "N", "MiB/inst", "95% CI", "runtime PSS", "cgroup", "daemons",
               "MemAvail", "Nth start ms", "p50 start ms", "status"]
    rows, notes = [], []
    for result in summary["results"]:
        if result.get("level") is None:
            notes.append(f"  {result['target']}: {result['status']}: {result['reason']}")
            continue
        cells = density_cells(result)
        rows.append([result["target"], str(result["level"]), cells["mib"], cells["ci"],
                     cells["runtime"], cells["cgroup"], cells["daemons"], cells["host"],
                     cells["nth"], cells["p50"], result["status"]])
        if result["status"] != "ok":
            notes.append(f"  {result['target']} at {result['level']}: {result['reason']}")
        setup = result.get("setup") or {}
        if setup.get("guest_memory_mb") and result["level"] == min(
                r["level"] for r in summary["results"]
                if r["target"] == result["target"] and r.get("level")):
            notes.append(f"  {result['target']}: {result['notes']}")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [f"density ({summary.get('wall_seconds', 0):.0f} s; MiB per instance: cgroup "
             f"charge + PSS of its processes outside it, mean [95% bootstrap CI]; runtime PSS, "
             f"cgroup, daemons' growth and MemAvailable drop per instance)"
             + ("  [INTERRUPTED]" if summary.get("interrupted") else ""),
             "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(c.rjust(w) if 1 <= i <= 9 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    if summary.get("path"):
        lines.append(f"record: {summary['path']} (run {summary['run_id']})")
    if notes:
        lines += ["notes:", *notes]
    return "\n".join(lines)


def run_command(targets: str | None, levels: str | None, maximum: int | None, quick: bool,
                json_out: str | None, results_dir: str | None = None) -> int:
    """What ``isoinspect bench density`` does. Exit code: 130 when interrupted, 1 when no
    target measured anything, else 0; bad arguments raise UsageError."""
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.startup import interrupt_on_signals, parse_levels, run_information

    names = parse_targets(targets)
    chosen, vm = plan_levels(parse_levels(levels) or None, maximum, quick)
    interrupt_on_signals()
    begin = time.monotonic()
    try:
        versions, capabilities = run_information()
        config = {"targets": names, "levels": chosen, "vm_levels": vm, "max": maximum,
                  "quick": quick, "idle_command": "sleep 3600",
                  "between_levels": "instances kept; each level starts the missing ones",
                  "settle_seconds": SETTLE_S,
                  "vm_note": "TCG guests are full system emulators: on this host's 2 cores "
                             "--quick keeps the VM at levels 1,2" if quick else ""}
        record = RunRecord.create("bench density", directory=results_dir, config=config,
                                  versions=versions, capabilities=capabilities)
    except KeyboardInterrupt:
        return 130
    summary = run_density(names, chosen, vm, record=record, json_out=json_out)
    progress(f"density: {time.monotonic() - begin:.1f} s in all")
    if summary["interrupted"]:
        return 130
    measured = [r for r in summary["results"] if r.get("per_instance_bytes")]
    return 0 if measured else 1
