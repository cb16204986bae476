"""Map kernel events (cgroup id, pid) to containers of any runtime.

* a cgroup path holding a 64-hex id is a container with that id: Docker
  (``/docker/<id>``, ``/system.slice/docker-<id>.scope``), containerd, runc under Docker, and
  isoinspect (``/isoinspect[-xxxx]/<id>``) alike; the runtime is guessed from the path;
* any other path is named by the caller (``register``), e.g. a runc container started with
  ``--cgroup-manager cgroupfs`` and a path of our choosing, or a container of our runtime that the
  runtime adapter registers before its command runs (a 5 ms container is still seen whole);
* a cgroup id is turned into a path from the cgroup_mkdir events seen (a cgroup may be gone by the
  time we look) and, failing that, by walking the unified hierarchy.

Pid trees: a process whose parent belongs to a container belongs to it too (fork events feed
``add_child``), which covers the time between clone() and the child joining its cgroup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEX64 = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")


@dataclass
class Container:
    id: str
    name: str
    runtime: str
    cgroup_path: str = ""
    cgroup_id: int | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "runtime": self.runtime,
                "cgroup_path": self.cgroup_path, "cgroup_id": self.cgroup_id}


def guess_runtime(path: str) -> str:
    if "docker" in path:
        return "docker"
    if "isoinspect" in path:
        return "isoinspect"
    if "libpod" in path:
        return "podman"
    if "containerd" in path or "kubepods" in path:
        return "containerd"
    return "runc"


def container_from_path(path: str) -> Container | None:
    """A container from a cgroup path that names one by a 64-hex id, else None."""
    found = HEX64.findall(path or "")
    if not found:
        return None
    cid = found[-1]
    return Container(cid, cid[:12], guess_runtime(path), path)


class Attributor:
    """cgroup id / pid -> Container, fed by registrations and by the events themselves."""

    def __init__(self, resolve_id=None, namer=None) -> None:
        self.by_cgroup_id: dict[int, Container] = {}
        self.by_path: dict[str, Container] = {}
        self.by_pid: dict[int, Container] = {}
        self.paths: dict[int, str] = {}       # cgroup id -> path (from mkdir events, lookups)
        self._resolve_id = resolve_id          # cgroup id -> path or None (e.g. find_by_id)
        self._namer = namer                    # Container -> better name or None
        self._misses: set[int] = set()

    def register(self, container: Container, pid: int | None = None) -> Container:
        if container.cgroup_id is not None:
            self.by_cgroup_id[container.cgroup_id] = container
            if container.cgroup_path:
                self.paths[container.cgroup_id] = container.cgroup_path
        if container.cgroup_path:
            self.by_path[container.cgroup_path.rstrip("/")] = container
        if pid:
            self.by_pid[pid] = container
        return container

    def note_cgroup(self, cgroup_id: int, path: str) -> None:
        """A cgroup_mkdir (or attach) event of the unified hierarchy told us a path."""
        self.paths[cgroup_id] = path
        self._misses.discard(cgroup_id)

    def add_child(self, parent: int, child: int) -> None:
        container = self.by_pid.get(parent)
        if container is not None:
            self.by_pid.setdefault(child, container)

    def path_of(self, cgroup_id: int) -> str | None:
        path = self.paths.get(cgroup_id)
        if path is None and self._resolve_id and cgroup_id not in self._misses:
            path = self._resolve_id(cgroup_id)
            if path is None:
                self._misses.add(cgroup_id)
            else:
                self.paths[cgroup_id] = path
        return path

    def by_cgroup_path(self, path: str) -> Container | None:
        path = (path or "").rstrip("/")
        found = self.by_path.get(path)
        if found is None:
            found = container_from_path(path)
            if found is not None:
                if self._namer is not None:
                    found.name = self._namer(found) or found.name
                found = self.by_path.setdefault(path, found)
        return found

    def lookup(self, cgroup_id: int | None = None, pid: int | None = None) -> Container | None:
        if cgroup_id:
            found = self.by_cgroup_id.get(cgroup_id)
            if found is not None:
                return found
            path = self.path_of(cgroup_id)
            if path:
                found = self.by_cgroup_path(path)
                if found is not None:
                    if found.cgroup_id is None:
                        found.cgroup_id = cgroup_id
                    self.by_cgroup_id[cgroup_id] = found
                    return found
        if pid:
            return self.by_pid.get(pid)
        return None

    def attribute(self, event: dict) -> None:
        """Learn from one decoded event (new cgroups, forks) and tag it with its container.

        Runs wherever the events are read: in ``Tracer.handle`` or, for a tracer in its own
        process (``trace_session``), in the process that asked for the events.
        """
        name = event["event"]
        if name == "cgroup_mkdir" and event.get("hierarchy") == 0:
            self.note_cgroup(event["id"], event["path"])
        elif name == "newtask":
            self.add_child(event["pid"], event.get("target_pid", 0))
        container = None
        if name.startswith("cgroup_") and event.get("hierarchy") == 0:
            container = self.lookup(cgroup_id=event["id"])
        elif name.startswith("cgroup_"):
            container = self.by_cgroup_path(event["path"])
        if container is None:
            container = self.lookup(cgroup_id=event.get("cgroup_id"), pid=event.get("pid"))
        if container is None and name in ("oom_victim", "oom_death", "first_run"):
            container = self.lookup(pid=event.get("target_pid"))
        if container is not None:
            event["container"] = container.name
            event["container_id"] = container.id
            if name in ("cgroup_attach", "newtask") and event.get("target_pid"):
                self.by_pid[event["target_pid"]] = container   # for first_run, exits
