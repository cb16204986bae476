"""``isoinspect gc``: clean what crashed or killed runtimes left behind.

A runtime killed at any point can leave: a record still marked running whose process is gone,
a --rm container never removed, a cgroup directory with no container, a half-created container
directory (no record), staging directories and temporary files, and (if a future feature mounts
on the host) mounts under our directories. Mounts of a container live in its own mount namespace
and vanish with it, so normally there are none on the host.
"""

from __future__ import annotations

import os
import shutil
import time

from isoinspect.runtime import process
from isoinspect.runtime.cgroups import list_children, make_manager
from isoinspect.runtime.container_state import Status
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.runtime import Runtime

_GRACE_SECONDS = 60.0  # a directory younger than this may belong to a start in progress

# A label on the containers `build` runs its RUN steps in: they belong to the build that created
# them (its pid is their record's creator) and are removed once that process is dead.
BUILD_STEP_LABEL = "io.isoinspect.build-step"


def collect(runtime: Runtime, grace: float = _GRACE_SECONDS) -> list[str]:
    """Clean up; return one line per thing cleaned."""
    done: list[str] = []
    live = set()
    now = time.time()
    for cid in runtime.containers.ids():
        try:
            record = runtime.containers.load(cid)
        except IsoinspectError:
            if _being_created(runtime, cid, now, grace):
                live.add(cid)
            else:
                shutil.rmtree(runtime.containers.dir(cid), ignore_errors=True)
                done.append(f"removed incomplete container directory {cid[:12]}")
            continue
        if (record.spec.get("labels") or {}).get(BUILD_STEP_LABEL):
            if _being_created(runtime, cid, now, grace):
                live.add(cid)  # its build still runs (and will remove it)
            else:
                try:
                    runtime.remove(cid, force=True)
                    done.append(f"removed RUN container {record.name} of a dead build")
                except IsoinspectError:
                    pass  # removed meanwhile
            continue
        alive = process.is_alive(record.pid, record.pid_ticks)
        if record.status == Status.RUNNING and not alive:
            record = runtime.refresh(record)
            done.append(f"marked {record.name} exited (its monitor died)")
        if record.status == Status.CREATED:
            if _being_created(runtime, cid, now, grace):
                live.add(cid)
                continue
            record = record.replace(status=Status.STOPPED, exit_code=125, finished_at=now,
                                    error="the runtime died before the container started")
            runtime.containers.save(record)
            done.append(f"marked {record.name} exited (its runtime died before the start)")
        if alive:
            live.add(cid)
            continue
        if record.spec.get("remove"):
            runtime.remove(cid, force=True)
            done.append(f"removed --rm container {record.name}")
            continue
        live.add(cid)
        manager = runtime.cgroup(record)
        if manager.exists():
            manager.destroy()
            done.append(f"removed cgroup of stopped container {record.name}")
    done += _orphan_cgroups(runtime, live)
    _remove_empty_parents(runtime)
    done += _stale_names(runtime)
    done += runtime.containers.collect_removing()
    done += _staging(runtime, grace)
    done += _mounts(runtime)
    done += _network()
    done += _owned_cgroups(runtime)
    return done


def _owned_cgroups(runtime: Runtime) -> list[str]:
    """Peer cgroups (isoinspect-bench-<pid>-*, isoinspect-verify-<pid>-*) of benchmarks and
    verify runs that died, in every hierarchy."""
    from isoinspect.runtime.cgroups.leftovers import remove_owned

    return [f"removed cgroup {path} of a dead benchmark"
            for path in remove_owned(root=runtime.roots.cgroup_root)]


def _network() -> list[str]:
    """Addresses, veths, /run/netns names and port proxies of dead containers (any root)."""
    from isoinspect.runtime.network.hook import collect as collect_network

    return collect_network()


def _being_created(runtime: Runtime, cid: str, now: float, grace: float) -> bool:
    """True while the process creating ``cid`` lives (or, if unknown, for a grace period),
    and for good once `create` has left it for `start`."""
    if runtime.containers.kept_created(cid):
        return True
    alive = runtime.containers.creator_alive(cid)
    if alive is None:
        return now - _mtime(runtime.containers.dir(cid)) < grace
    return alive


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _orphan_cgroups(runtime: Runtime, live: set[str]) -> list[str]:
    done = []
    parent = runtime.roots.cgroup_parent
    for name in list_children(parent, runtime.roots.cgroup_root):
        if name in live or os.path.isdir(runtime.containers.dir(name)):
            continue
        make_manager(f"{parent}/{name}", runtime.roots.cgroup_root).destroy()
        done.append(f"removed orphan cgroup {parent}/{name}")
    return done


def _remove_empty_parents(runtime: Runtime) -> None:
    """Drop our parent cgroup directories when no container is left under them."""
    try:
        make_manager(runtime.roots.cgroup_parent, runtime.roots.cgroup_root).remove(timeout=0)
    except OSError:
        pass  # containers still live under it


def _stale_names(runtime: Runtime) -> list[str]:
    done = []
    try:
        names = os.listdir(runtime.containers.names)
    except FileNotFoundError:
        return done
    for name in names:
        path = os.path.join(runtime.containers.names, name)
        try:
            with open(path) as handle:
                cid = handle.read().strip()
        except OSError:
            continue
        if not cid or not os.path.isdir(runtime.containers.dir(cid)):
            if not cid and time.time() - _mtime(path) < 5:
                continue  # being written right now
            os.unlink(path)
            done.append(f"freed name {name}")
    return done


def _staging(runtime: Runtime, grace: float) -> list[str]:
    """Staging layers, scratch dirs and temp files of loads, pulls and builds that died."""
    return runtime.images.collect_stale()


def _mounts(runtime: Runtime) -> list[str]:
    """Unmount anything mounted on the host under our directories (deepest first)."""
    from isoinspect.runtime.linux import syscalls as sc

    prefixes = (runtime.roots.data_dir + "/", runtime.roots.run_dir + "/")
    targets = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            target = line.split()[4].replace("\\040", " ")
            if target.startswith(prefixes) and "/netns/" not in target:
                targets.append(target)
    done = []
    for target in sorted(targets, key=len, reverse=True):
        try:
            sc.umount2(target, sc.MNT_DETACH)
            done.append(f"unmounted {target}")
        except OSError:
            pass
    return done
