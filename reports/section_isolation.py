"""The report's isolation matrix: property x runtime, from ``isolation`` results.

Each row is one property measured from a running instance (``isoinspect isolation``), with a
short legend of what it means; the verdicts and the sandboxes' own host privileges follow as
notes. Cell texts are the command's own (benches/isolation.py ``cells``), so the terminal
table and the report say the same thing.
"""

from __future__ import annotations

from typing import Sequence

from isoinspect.benches.isolation import NAMESPACES, IsolationResult, cells
from isoinspect.reports.render import Section
from isoinspect.reports.tables import Cell, Table

#: row key -> (label, legend)
ROWS = {
    "verdict_level": ("verdict", "against Docker's default container (the reference); the "
                      "sentence is in the notes"),
    **{f"ns:{n}": (f"{n} namespace", "own: not the host's; shared: the host's own "
                   "(Docker shares user and time by default)") for n in NAMESPACES},
    "user_namespace": ("root is not host root", "the workload's uid 0 is not the host's (a "
                       "user namespace, or a separate kernel)"),
    "runs_as_root": ("runs as root", "the workload's uid is 0 where it runs"),
    "capabilities": ("capabilities", "effective capabilities of the workload (Docker's "
                     "default: 14)"),
    "dangerous_capabilities": ("dangerous capabilities", "SYS_ADMIN, SYS_MODULE, NET_ADMIN, "
                               "BPF and the like among them"),
    "seccomp": ("seccomp", "the workload's filter mode, with the syscalls its profile allows "
                "when countable"),
    "no_new_privs": ("no_new_privs", "setuid binaries cannot raise privileges (Docker's "
                     "default: no)"),
    "masked_paths": ("masked paths", "of Docker's 11 masked /proc and /sys paths, how many "
                     "the workload cannot read (under runsc and QEMU: the guest kernel's own)"),
    "readonly_paths": ("read-only paths", "of Docker's 5 read-only /proc paths, how many it "
                       "cannot write (likewise)"),
    "shares_host_kernel": ("shares the host kernel", "yes: its system calls are the host "
                           "kernel's; via the Sentry: gVisor's kernel makes them; no: a guest "
                           "kernel"),
    "host_syscalls": ("host syscalls reached", "distinct host system calls its host "
                      "processes made (newest `isoinspect exposure` record)"),
}
LEVEL_CSS = {"confined": "status-pass", "sandboxed": "status-pass",
             "separate kernel": "status-pass", "weaker than Docker's default": "status-fail",
             "not confined": "status-error"}


def _frame(frames: dict, runs: Sequence[dict]):
    from isoinspect.reports import load

    frame = frames.get("isolation")
    return frame if frame is not None else load.isolation(runs)


def _cell(key: str, result: IsolationResult, texts: dict[str, str]) -> Cell:
    if key.startswith("ns:"):
        state = result.properties["namespaces"][key[3:]]
        return Cell(state, "" if state == "own" else "status-none")
    if key == "verdict_level":
        return Cell(texts[key], LEVEL_CSS.get(texts[key], ""), result.properties["verdict"])
    if key == "dangerous_capabilities":
        return Cell(texts[key], title=", ".join(result.properties[key]))
    return Cell(texts[key])


def matrix(results: list[IsolationResult]) -> Table:
    """Property x runtime; a runtime that could not run shows its status in every row."""
    table = Table(["property", *[r.runtime for r in results]], css="matrix",
                  caption="Measured from one running instance (sleep) of each runtime; the "
                          "second line of each property says what it means.")
    texts = {r.runtime: cells(r) for r in results if r.status == "ok"}
    for key, (label, legend) in ROWS.items():
        shown = "" if key.startswith("ns:") and key != f"ns:{NAMESPACES[0]}" else legend
        row = [Cell(label, "key", legend, shown)]      # the namespaces' legend once
        for r in results:
            row.append(_cell(key, r, texts[r.runtime]) if r.status == "ok"
                       else Cell(r.status, f"status-{r.status}", r.reason))
        table.rows.append(row)
    return table


def section(frames: dict, runs: Sequence[dict]) -> Section:
    """The isolation matrix of the newest ``isolation`` results in ``runs``."""
    out = Section("isolation", "Isolation matrix",
                  lead="What each runtime's workload can reach, measured from a running "
                       "instance: namespaces, capabilities, seccomp, no_new_privs, masked "
                       "and read-only paths, and whether it shares the host kernel.")
    frame = _frame(frames, runs)
    if frame.empty:
        out.empty = "No isolation matrix in these runs (`isoinspect isolation` records one)."
        return out
    results = [IsolationResult(row.runtime, row.status, row.reason, row.properties,
                               row.evidence) for row in frame.itertuples()]
    out.tables = [matrix(results)]
    for r in results:
        if r.status != "ok":
            out.notes.append(f"{r.runtime}: {r.status} ({r.reason or 'no reason given'})")
            continue
        out.notes.append(f"{r.runtime}: {r.properties['verdict']}")
        for role, facts in (r.properties.get("sandbox_privileges") or {}).items():
            out.notes.append(f"{r.runtime} · {role} on the host (pid {facts.get('pid')}): "
                             f"{facts.get('summary', '')}")
    return out
