"""``isoinspect doctor``: what this host can do, tried for real, and what isoinspect does about it.

Sections: Host, cgroups, Namespaces, eBPF/inspector, Peers. Columns: check, status (ok / n/a /
missing / degraded / unsupported / unknown), detail, what isoinspect does about it.

Exit status: 0 when the core works (root; mnt, pid, uts, ipc and net namespaces; overlayfs;
usable cgroups), 1 otherwise. Everything else (kprobes, KVM, peers, ...) only degrades.

The checks live in the library (runtime.hostcheck, inspector.capabilities, benches.peers), each
registered once in the diagnostics registry (runtime.diagnostics) under the groups below; this
module runs those groups, formats the results and decides the exit code. ``--json`` prints the
same as one JSON object.
"""

from __future__ import annotations

import importlib
import json
import shutil
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

import click

SECTIONS = ("Host", "cgroups", "Namespaces", "eBPF/inspector", "Peers")
GROUPS = ("host", "inspector", "peers")   # the registry groups doctor runs...
PROVIDERS = ("isoinspect.runtime.hostcheck", "isoinspect.inspector.capabilities",
             "isoinspect.benches.peers")   # ...registered when these are imported

# Without these isoinspect cannot run a container: doctor exits 1.
CORE_CHECKS = ("root", "namespace mnt", "namespace pid", "namespace uts", "namespace ipc",
               "namespace net", "overlayfs", "cgroups usable")

HEADERS = ("check", "status", "detail", "what isoinspect does about it")


# ----------------------------------------------------------------------------- collection

def _as_row(check: Any) -> dict[str, Any]:
    """A :class:`~isoinspect.runtime.diagnostics.Check`, or a row already made -> a row."""
    if isinstance(check, Mapping):
        row = dict(check)
    else:
        row = check.as_dict()
    row.setdefault("detail", "")
    row.setdefault("impact", "")
    if not row.get("status"):
        ok = row.get("ok")
        row["status"] = "ok" if ok is True else "unknown" if ok is None else "missing"
    return row


def collect() -> tuple[dict[str, list[Any]], str]:
    """Run the registry's doctor groups (in parallel): (section -> checks, inspector mode).
    A check that crashes is reported as its own "unknown" row; the others still run."""
    from isoinspect.runtime import diagnostics

    for module in PROVIDERS:
        importlib.import_module(module)
    sections: dict[str, list[Any]] = {name: [] for name in SECTIONS}
    with ThreadPoolExecutor(max_workers=len(GROUPS)) as pool:
        for results in pool.map(diagnostics.REGISTRY.run, GROUPS):
            for entry, check in results:
                sections.setdefault(entry.family, []).append(check)
    mode = next((c.data.get("mode", "unknown") for c in sections["eBPF/inspector"]
                 if c.name == "inspector mode"), "unknown")
    return sections, mode


# ----------------------------------------------------------------------------- verdict

def core_results(sections: Mapping[str, Iterable[Any]]) -> dict[str, bool]:
    """Each core check -> whether it passed (a core check that is absent counts as failed)."""
    seen: dict[str, bool] = {}
    for rows in sections.values():
        for row in map(_as_row, rows):
            if row.get("name") in CORE_CHECKS:
                seen[row["name"]] = row.get("ok") is True
    return {name: seen.get(name, False) for name in CORE_CHECKS}


def exit_code(sections: Mapping[str, Iterable[Any]]) -> int:
    return 0 if all(core_results(sections).values()) else 1


def summary(sections: Mapping[str, Iterable[Any]], mode: str) -> str:
    core = core_results(sections)
    counts: dict[str, int] = {}
    for rows in sections.values():
        for row in map(_as_row, rows):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    failed = [name for name, ok in core.items() if not ok]
    verdict = ("core OK: isoinspect can run containers" if not failed
               else f"core BROKEN ({', '.join(failed)}): isoinspect cannot run containers")
    return f"{verdict}; inspector mode: {mode}; checks: {tally}"


# ----------------------------------------------------------------------------- output

def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text or "", width=max(width, 8), break_long_words=True,
                         break_on_hyphens=False) or [""]


def format_report(sections: Mapping[str, Iterable[Any]], mode: str, width: int = 120) -> str:
    """The readable table. Long cells wrap inside their column."""
    rows_by_section = {name: [_as_row(r) for r in rows] for name, rows in sections.items()}
    all_rows = [r for rows in rows_by_section.values() for r in rows]
    w_check = min(max([len(HEADERS[0])] + [len(r["name"]) for r in all_rows]), 26)
    w_status = max([len(HEADERS[1])] + [len(r["status"]) for r in all_rows])
    rest = max(width - 2 - w_check - w_status - 6, 40)
    w_detail = max(rest * 11 // 20, 20)
    w_impact = max(rest - w_detail, 20)

    def line(cells: tuple[str, str, str, str]) -> list[str]:
        cols = [_wrap(cells[0], w_check), [cells[1]], _wrap(cells[2], w_detail),
                _wrap(cells[3], w_impact)]
        out = []
        for i in range(max(len(c) for c in cols)):
            parts = [c[i] if i < len(c) else "" for c in cols]
            out.append(("  " + parts[0].ljust(w_check) + "  " + parts[1].ljust(w_status) + "  "
                        + parts[2].ljust(w_detail) + "  " + parts[3]).rstrip())
        return out

    out: list[str] = []
    for section in [s for s in SECTIONS if s in rows_by_section] + \
            [s for s in rows_by_section if s not in SECTIONS]:
        rows = rows_by_section[section]
        if not rows:
            continue
        out.append(section)
        out.extend(line(HEADERS))
        for row in rows:
            impact = row["impact"] or ("-" if row["status"] == "ok" else "")
            out.extend(line((row["name"], row["status"], row["detail"], impact)))
        out.append("")
    out.append(summary(sections, mode))
    return "\n".join(out)


def to_json(sections: Mapping[str, Iterable[Any]], mode: str) -> str:
    rows = {name: [_as_row(r) for r in checks] for name, checks in sections.items()}
    code = exit_code(rows)
    return json.dumps({"ok": code == 0, "exit_code": code, "inspector_mode": mode,
                       "core": core_results(rows), "sections": rows},
                      indent=2, default=str)


# ----------------------------------------------------------------------------- command

def _run_doctor(as_json: bool, collector: Callable[[], tuple[dict, str]] | None = None) -> int:
    sections, mode = (collector or collect)()
    if as_json:
        click.echo(to_json(sections, mode))
    else:
        width = shutil.get_terminal_size(fallback=(120, 24)).columns
        click.echo(format_report(sections, mode, width=max(width, 100)))
    return exit_code(sections)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def doctor(as_json: bool) -> None:
    """Check what this host can do (tried for real) and what isoinspect does about it.

    Exit status 0 when the core works (root, mnt/pid/uts/ipc/net namespaces, overlayfs,
    cgroups), 1 otherwise.
    """
    raise SystemExit(_run_doctor(as_json))
