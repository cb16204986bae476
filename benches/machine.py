"""Facts about the machine a benchmark ran on (for the result record; cheap, never raises)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from isoinspect.runtime.cgroups.layout import ROOT, read_layout


def cgroup_mode(cgroup_root: str = ROOT) -> str:
    """unified / hybrid / legacy as the runtime sees it (layout.read_layout); none without any
    cgroup hierarchy."""
    try:
        return read_layout(cgroup_root).mode
    except OSError:
        return "none"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def source_commit() -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        result = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def machine_info() -> dict:
    uname = os.uname()
    # host: which machine, for reports combining several (a Kubernetes pod passes its node's
    # name in ISOINSPECT_NODE_NAME: its own host name is the pod's)
    return {"host": os.environ.get("ISOINSPECT_NODE_NAME") or uname.nodename,
            "kernel": uname.release, "arch": uname.machine, "cpu": cpu_model(),
            "cpus": os.cpu_count(), "memory_bytes": memory_bytes(),
            "cgroup_mode": cgroup_mode(), "python": sys.version.split()[0],
            "commit": source_commit()}
