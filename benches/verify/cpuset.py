"""cpuset: a container limited to one CPU runs only there, however many burners it has.

Where each task ran comes from the kernel (field 39 of /proc/PID/stat, sampled), next to the
affinity the kernel gives the tasks (Cpus_allowed_list) and, on v1, cpuacct.usage_percpu.
"""

from __future__ import annotations

import os
import time

from isoinspect.benches.bundle import Limits
from isoinspect.benches.targets.base import Target
from isoinspect.benches.verify.context import Context
from isoinspect.benches.verify.cpu import burner
from isoinspect.benches.verify.result import make_result, unsupported
from isoinspect.runtime.cgroups import fs
from isoinspect.runtime.diagnostics import Status


def running_cpus(pid: int) -> list[int]:
    """The CPU each runnable thread of ``pid`` is on (field 39 of its stat). Sleeping threads
    are left out: their field is only where they last ran, maybe before the limit."""
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "R":
            found.append(int(fields[36]))
    return found


def allowed_list(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _percpu(view) -> list[int] | None:
    directory = view.dirs.get("cpuacct")
    text = fs.read_value(directory, "cpuacct.usage_percpu") if directory else None
    return [int(v) for v in text.split()] if text else None


def check_cpuset(rt: Target, ctx: Context) -> list[dict]:
    if ctx.cpus < 2:
        return [unsupported(rt.name, "cpuset", "cpuset", "needs at least 2 CPUs")]
    cpu = ctx.cpus - 1
    box = rt.start(burner(ctx.cpus), Limits(cpuset_cpus=str(cpu)))
    seen: dict[int, int] = {}
    allowed: set[str] = set()
    try:
        box.wait_for("burning", timeout=30)
        # the tasks the cpuset binds: those in the cpuset hierarchy (unified one on v2)
        directory = box.view.dirs.get("unified" if box.view.version == 2 else "cpuset")
        before = _percpu(box.view)
        deadline = time.monotonic() + ctx.window
        while time.monotonic() < deadline:
            for pid in fs.read_pids(directory) or ():
                for where in running_cpus(pid):
                    seen[where] = seen.get(where, 0) + 1
                allowed.add(allowed_list(pid) or "?")
            time.sleep(0.02)
        after = _percpu(box.view)
    finally:
        box.stop()
    percpu = None if before is None or after is None else \
        [round((a - b) / 1e9, 3) for a, b in zip(after, before)]
    cpus = sorted(set(seen) | {i for i, used in enumerate(percpu or []) if used > 0.001})
    ok = bool(cpus) and cpus == [cpu]
    why = (f"{sum(seen.values())} samples of running tasks and the cgroup's per-CPU time: all "
           f"on CPU {cpu}" if ok else
           f"tasks ran on CPU(s) {','.join(map(str, cpus)) or 'none'}, allowed only {cpu}")
    return [make_result(rt.name, "cpuset", "cpuset", Status.judge(ok),
                        measured=",".join(map(str, cpus)), expected=str(cpu), tolerance=0,
                        unit="cpus", why=why,
                        evidence={"samples_per_cpu": {str(k): v for k, v in seen.items()},
                                  "cpus_allowed_list": sorted(allowed),
                                  "usage_percpu_s": percpu})]
