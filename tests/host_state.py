"""Does the test suite leave the host as it found it? Snapshot, compare, fail the session.

Snapshotted: network links (name, ifindex, admin up), main-table routes, iptables rules, mounts
and the cgroup hierarchies (/sys/fs/cgroup entries, cgroup mount options, /proc/cgroups). Left
out, because they come and go with containers and are checked elsewhere or are not ours to judge:
- links and routes that are ours (``isoinspect*`` bridges, ``iso<12 hex>`` veths) and the
  shared dockerd's per-container veths (``veth<7 hex>``); a link's carrier (docker0 is DOWN
  without containers, UP with them), hence admin state only, and route flags (``linkdown``);
- iptables rules naming our chain or bridges, chain counters, and Docker's per-container
  published-port rules (``--dport`` with one ``/32`` address or a DNAT target);
- mounts under temp roots (/tmp, /var/tmp: every test root, the private dockerd's), the
  shared dockerd's per-container mounts (under /var/lib/docker/ and /run/docker/), and ours that
  belong to one live container or daemon (/run/netns/isoinspect-*, under the default state
  roots /var/lib/isoinspect/ and /run/isoinspect/): a concurrent session on a shared host holds
  them while it runs; our own tests check each is removed (the ``iso`` fixture, the private
  dockerd's lifecycle test);
- /proc/cgroups' cgroup counts.
Docker's behaviour this guards against: ``dockerd --bridge=none`` deletes an existing docker0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

from isoinspect.runtime.network.bridge import BRIDGE_PREFIX, VETH_PREFIX

CGROUP_ROOT = "/sys/fs/cgroup"
TMP_ROOTS = ("/tmp", "/var/tmp")
PER_CONTAINER_TREES = ("/var/lib/docker", "/run/docker", "/var/lib/isoinspect", "/run/isoinspect")
OUR_NETNS = "/run/netns/isoinspect-"
_OUR_VETH = re.compile(rf"^{VETH_PREFIX}[0-9a-f]{{12}}$")
_DOCKER_VETH = re.compile(r"^veth[0-9a-f]{7}$")
_COUNTERS = re.compile(r"\s*\[\d+:\d+\]$")
_ONE_CONTAINER = re.compile(r"/(32|128)\b|--to-destination ")


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    up: bool


@dataclass(frozen=True)
class HostState:
    """One snapshot; a field is None where it could not be read (tool missing, not root)."""
    links: dict[str, Link] | None = None
    routes: frozenset[str] | None = None
    iptables: tuple[str, ...] | None = None
    mounts: Counter | None = None
    cgroups: frozenset[str] | None = None


def transient_link(name: str) -> bool:
    """Links that are ours or one shared-dockerd container's (see module docstring)."""
    return (name.startswith(BRIDGE_PREFIX) or bool(_OUR_VETH.match(name))
            or bool(_DOCKER_VETH.match(name)))


def _ip_json(*args: str) -> list[dict] | None:
    if not shutil.which("ip"):
        return None
    result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout or "[]") if result.returncode == 0 else None


def parse_links(data: list[dict]) -> dict[str, Link]:
    return {entry["ifname"]: Link(entry["ifname"], entry["ifindex"],
                                  "UP" in entry.get("flags", []))
            for entry in data if not transient_link(entry["ifname"])}


def parse_routes(data: list[dict], family: str) -> frozenset[str]:
    keys = ("dst", "gateway", "dev", "protocol", "scope", "prefsrc", "metric", "type")
    return frozenset(f"{family} " + " ".join(f"{key}={entry[key]}" for key in keys
                                             if key in entry)
                     for entry in data if not transient_link(entry.get("dev", "")))


def filter_iptables(text: str) -> tuple[str, ...]:
    """iptables-save output without comments, counters, our rules and Docker's per-container
    port rules, in order (a rule moved before another is a change)."""
    kept = []
    for line in text.splitlines():
        line = _COUNTERS.sub("", line.strip())
        if not line or line.startswith("#") or "isoinspect" in line.lower():
            continue
        if line.startswith(("-A DOCKER ", "-A POSTROUTING ")) and "--dport" in line \
                and _ONE_CONTAINER.search(line):
            continue
        kept.append(line)
    return tuple(kept)


def _iptables() -> tuple[str, ...] | None:
    if os.geteuid() != 0:
        return None
    lines: list[str] = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            result = subprocess.run([tool], capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                return None
            lines += [f"{tool}: {line}" for line in filter_iptables(result.stdout)]
    return tuple(lines)


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def parse_mounts(mountinfo: str) -> Counter:
    """(mount point, type, source, options) of each mount outside temp roots and per-container
    trees; a Counter, so a mount stacked twice on one point counts twice."""
    found: Counter = Counter()
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 6 or len(extra) < 3:
            continue
        point = _unescape(fields[4])
        if _under(point, TMP_ROOTS) or point.startswith(OUR_NETNS) or any(
                point.startswith(root + "/") for root in PER_CONTAINER_TREES):
            continue
        found[f"{point} {extra[0]} {extra[1]} {fields[5]} {extra[2]}"] += 1
    return found


def cgroup_hierarchies(mountinfo: str, root: str = CGROUP_ROOT,
                       proc_cgroups: str | None = None) -> frozenset[str]:
    """Entries of /sys/fs/cgroup (and symlink targets), each cgroup mount with its options, and
    /proc/cgroups without its live counts."""
    items = set()
    if os.path.isdir(root):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            target = os.readlink(path) if os.path.islink(path) else ""
            items.add(f"entry {name} {target}".rstrip())
    for point, count in parse_mounts(mountinfo).items():
        if point.split()[1] in ("cgroup", "cgroup2"):
            items.add(f"mount {point} x{count}")
    for line in (proc_cgroups or "").splitlines():
        if line and not line.startswith("#"):
            name, hierarchy, _count, enabled = line.split()
            items.add(f"controller {name} hierarchy={hierarchy} enabled={enabled}")
    return frozenset(items)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def snapshot() -> HostState:
    links = _ip_json("link", "show")
    routes = [_ip_json(flag, "route", "show", "table", "main") for flag in ("-4", "-6")]
    mountinfo = _read("/proc/self/mountinfo")
    return HostState(
        links=parse_links(links) if links is not None else None,
        routes=(parse_routes(routes[0], "v4") | parse_routes(routes[1], "v6"))
        if None not in routes else None,
        iptables=_iptables(),
        mounts=parse_mounts(mountinfo) if mountinfo else None,
        cgroups=cgroup_hierarchies(mountinfo, proc_cgroups=_read("/proc/cgroups")))


def _set_diff(what: str, before, after) -> list[str]:
    before, after = set(before), set(after)
    gone, new = sorted(before - after), sorted(after - before)
    return [f"{what} removed: {item}" for item in gone] + [f"{what} added: {item}"
                                                           for item in new]


def compare(before: HostState, after: HostState) -> list[str]:
    """One line per difference; empty when the host is as it was."""
    problems: list[str] = []
    if before.links is not None and "docker0" in before.links:
        old, new = before.links["docker0"], (after.links or {}).get("docker0")
        if new is None:
            problems.append(f"docker0 (ifindex {old.index}) was deleted: the shared dockerd's "
                            "default bridge network is broken until it restarts")
        elif new.index != old.index:
            problems.append(f"docker0 was recreated (ifindex {old.index} -> {new.index})")
    for name in ("links", "routes", "iptables", "mounts", "cgroups"):
        old, new = getattr(before, name), getattr(after, name)
        if old is None and new is None:
            continue
        if old is None or new is None:
            problems.append(f"{name}: could be read {'after' if old is None else 'before'} "
                            f"the tests but not {'before' if old is None else 'after'}")
        elif name == "links":
            problems += _set_diff("link", [str(v) for v in old.values()],
                                  [str(v) for v in new.values()])
        elif name == "mounts":
            problems += _set_diff("mount", old, new)
            problems += [f"mount count changed: {key} x{old[key]} -> x{new[key]}"
                         for key in sorted(set(old) & set(new)) if old[key] != new[key]]
        elif name == "iptables":
            diff = _set_diff("iptables rule", old, new)
            problems += diff or (["iptables rules reordered"] if old != new else [])
        else:
            problems += _set_diff(name[:-1], old, new)
    return problems


def session_start(session) -> None:
    session.config._isoinspect_host_before = snapshot()


def session_finish(session) -> list[str]:
    """Compare with the session's start; on a difference print every line and make the run
    fail: pytest exits with ``session.exitstatus``, which it reads after this hook."""
    before = getattr(session.config, "_isoinspect_host_before", None)
    if before is None:
        return []
    problems = compare(before, snapshot())
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        title = "the tests changed the host (tests/host_state.py)"
        if reporter is not None:
            reporter.write_sep("!", title, red=True, bold=True)
            for line in problems:
                reporter.write_line(f"  {line}", red=True)
        else:
            sys.stderr.write("\n".join([title, *problems]) + "\n")
        if session.exitstatus in (0, 5):  # passed, or nothing collected
            session.exitstatus = 1
    return problems
