"""Bind mounts of host paths into a container: `-v SRC:DST[:OPTS]` and `--mount type=bind,...`.

Parsed and checked in the parent (Docker's rules: absolute paths, no destination at / or on
/proc and /sys, a missing -v source is made as a directory, a missing --mount source is an
error); mounted by the container's first process after its /proc, /sys and /dev exist and
before pivot_root, with the destination resolved inside the container's root
(runtime/scoped_path.py), so a symlink in the image never points the mount at the host.
Kept in a container's record as plain tuples (``BindMount.as_tuple``), which marshal.
"""

from __future__ import annotations

import os

from isoinspect.runtime.errors import UsageError
from isoinspect.runtime.frozen import Frozen

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
# Files under /proc that runc lets a bind mount cover (its checkProcMount allow-list).
PROC_ALLOWED = ("proc/cpuinfo", "proc/diskstats", "proc/meminfo", "proc/stat", "proc/swaps",
                "proc/uptime", "proc/loadavg", "proc/slabinfo", "proc/net/dev",
                "proc/sys/kernel/ns_last_pid")


class BindMount(Frozen):
    """One host path bound into the container."""

    source: str
    destination: str  # inside the container, absolute
    readonly: bool = False
    propagation: str = DEFAULT_PROPAGATION
    create_source: bool = False  # -v: a missing source becomes a directory (Docker)

    def as_tuple(self) -> tuple:
        return (self.source, self.destination, self.readonly, self.propagation,
                self.create_source)

    @classmethod
    def from_tuple(cls, values: tuple | list) -> "BindMount":
        source, destination, readonly, propagation, create = values
        return cls(source=source, destination=destination, readonly=readonly,
                   propagation=propagation, create_source=create)


def parse_volume(value: str) -> BindMount:
    """Docker's ``-v /host:/ctr[:ro|rw][,propagation]`` (only host paths: no named volumes)."""
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume specification: {value!r}: expected SRC:DST[:OPTIONS]")
    source, destination = parts[0], parts[1]
    if not source.startswith("/"):
        raise UsageError(f"invalid volume specification: {value!r}: named volumes are not "
                         "supported, the source must be an absolute host path")
    readonly, propagation = False, DEFAULT_PROPAGATION
    seen_mode = False
    for option in (parts[2].split(",") if len(parts) == 3 else []):
        if option in ("ro", "rw") and not seen_mode:
            readonly, seen_mode = option == "ro", True
        elif option in PROPAGATIONS:
            propagation = option
        elif option in ("z", "Z", "nocopy"):
            continue  # SELinux relabel / volume copy: nothing to do for a host path
        else:
            raise UsageError(f"invalid volume specification: {value!r}: invalid mode {option!r}")
    mount = BindMount(source=os.path.normpath(source), destination=_destination(destination,
                      value), readonly=readonly, propagation=propagation, create_source=True)
    return mount


def parse_mount(value: str) -> BindMount:
    """Docker's ``--mount type=bind,source=/a,target=/b[,readonly][,bind-propagation=...]``."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, field = item.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key in ("readonly", "ro") and not sep:
            field = "true"
        elif not sep:
            raise UsageError(f"invalid field {item!r} in --mount {value!r}: must be a key=value")
        fields[key] = field
    kind = fields.pop("type", "volume")
    if kind != "bind":
        raise UsageError(f"--mount type={kind} is not supported: only type=bind")
    source = fields.pop("source", None) or fields.pop("src", None)
    target = (fields.pop("target", None) or fields.pop("destination", None)
              or fields.pop("dst", None))
    if not source:
        raise UsageError("invalid mount config for type \"bind\": field Source must not be empty")
    if not target:
        raise UsageError("invalid mount config for type \"bind\": field Target must not be empty")
    readonly = False
    for key in ("readonly", "ro"):
        if key in fields:
            text = fields.pop(key).lower()
            if text not in ("true", "1", "false", "0"):
                raise UsageError(f"invalid value for {key}: {text!r}")
            readonly = text in ("true", "1")
    propagation = fields.pop("bind-propagation", DEFAULT_PROPAGATION)
    if propagation not in PROPAGATIONS:
        raise UsageError(f"invalid bind-propagation {propagation!r}")
    if fields:
        raise UsageError(f"unexpected key {sorted(fields)[0]!r} in --mount {value!r}")
    if not source.startswith("/"):
        raise UsageError(f"invalid mount config for type \"bind\": invalid mount path: "
                         f"{source!r} mount path must be absolute")
    if not os.path.exists(source):
        raise UsageError(f"invalid mount config for type \"bind\": bind source path does not "
                         f"exist: {source}")
    return BindMount(source=os.path.normpath(source), destination=_destination(target, value),
                     readonly=readonly, propagation=propagation)


def _destination(path: str, value: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"invalid mount destination {path!r} in {value!r}: it must be an "
                         "absolute path")
    check_destination(path.strip("/"), value)
    return "/" + os.path.normpath(path).strip("/")


def check_destination(rel: str, what: str) -> None:
    """Docker's refusals for a (resolved, root-relative) destination: not the root itself,
    not /proc or /sys nor anything in them (runc's /proc allow-list aside)."""
    rel = os.path.normpath("/" + rel).strip("/")
    if not rel:
        raise UsageError(f"invalid mount {what!r}: destination can't be '/'")
    for top in ("proc", "sys"):
        if (rel == top or rel.startswith(top + "/")) and rel not in PROC_ALLOWED:
            raise UsageError(f"invalid mount {what!r}: cannot be mounted on /{rel} "
                             f"(inside /{top})")


def make_missing_sources(mounts: list) -> None:
    """Docker makes a missing -v source as a directory when the container starts (in the
    parent: a user-namespaced child could not)."""
    for mount in mounts:
        if mount.create_source and not os.path.lexists(mount.source):
            os.makedirs(mount.source, 0o755, exist_ok=True)


#: propagation -> the peer tags (mountinfo optional fields) the source's mount needs, and
#: Docker's words for them: a shared bind joins the host mount's peer group, a slave one
#: receives from it; neither can when the host mount is private
NEEDS_PEERS = {"shared": (("shared:",), "a shared mount"),
               "rshared": (("shared:",), "a shared mount"),
               "slave": (("shared:", "master:"), "a shared or slave mount"),
               "rslave": (("shared:", "master:"), "a shared or slave mount")}


def check_propagation(mounts: list, mountinfo: str = "/proc/self/mountinfo") -> None:
    """Docker's refusal (daemon/oci_linux.go ensureShared/ensureSharedOrSlave), made in the
    parent, on the host's mount table, after the sources exist: a shared or slave bind
    needs a source whose mount propagates (IsoinspectError, exit 125 as `docker run`)."""
    wanted = [m for m in mounts if m.propagation in NEEDS_PEERS]
    if not wanted:
        return
    from isoinspect.runtime.errors import IsoinspectError

    table = mount_table(mountinfo)
    for mount in wanted:
        source = os.path.realpath(mount.source)
        point, tags = source_mount(source, table)
        needed, words = NEEDS_PEERS[mount.propagation]
        if not any(tag.startswith(needed) for tag in tags):
            raise IsoinspectError(f"path {mount.source} is mounted on {point} but it is not "
                                  f"{words}")


def mount_table(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, tuple[str, ...]]]:
    """(mount point, optional fields such as shared:N, master:N) per line, in order."""
    from isoinspect.runtime.cgroups.layout import unescape  # mountinfo \ooo unescaping
    table = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            before, _, _ = line.partition(" - ")
            fields = before.split()
            if len(fields) >= 6:
                table.append((unescape(fields[4]), tuple(fields[6:])))
    return table


def source_mount(path: str, table: list) -> tuple[str, tuple[str, ...]]:
    """The mount ``path`` lies on: the longest mount point above it (the last of stacked
    ones, which is the visible one), with its optional fields."""
    best, tags = "/", ()
    for point, optional in table:
        if path == point or path.startswith(point.rstrip("/") + "/"):
            if len(point) >= len(best):
                best, tags = point, optional
    return best, tags


def shares(mounts: list) -> bool:
    """A shared or rshared bind: the container's mounts must stay peers of the host's."""
    return any(mount.propagation in ("shared", "rshared") for mount in mounts)


def mount_all(root: str, mounts: list) -> None:
    """In the container's first process, before pivot_root: bind every mount in order, each
    through the OCI path's mount code (runtime/oci/setup.py) once its destination is
    resolved inside ``root`` and checked again (an image's symlink may lead into /proc)."""
    from isoinspect.runtime.oci.setup import mount_one
    from isoinspect.runtime.scoped_path import host_readlink, resolve

    for mount in mounts:
        rel = resolve(mount.destination, host_readlink(root))
        check_destination(rel, f"{mount.source}:{mount.destination}")
        options = ["rbind", "ro" if mount.readonly else "rw", mount.propagation]
        mount_one(root, {"destination": "/" + rel, "source": mount.source, "type": "bind",
                         "options": options}, None, True)
