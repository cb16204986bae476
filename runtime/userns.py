"""User namespace remapping (``--userns remap``): the container's root is not the host's.

The container's uids and gids 0..65535 map to a subordinate range on the host: the entry for
``isoinspect`` in /etc/subuid and /etc/subgid if there is one, else 100000:65536 (the range
Debian's adduser hands out first). The parent writes the maps right after clone, while the
child waits; files the container creates belong to the range on the host.
"""

from __future__ import annotations

import os

DEFAULT_RANGE = (100000, 65536)
SUBORDINATE_OWNER = "isoinspect"


def subordinate_range(path: str, owner: str = SUBORDINATE_OWNER) -> tuple[int, int]:
    """(first id, count) for ``owner`` in a subuid/subgid file, or the default range."""
    try:
        with open(path) as handle:
            for line in handle:
                name, _, rest = line.strip().partition(":")
                first, _, count = rest.partition(":")
                if name == owner and first.isdigit() and count.isdigit():
                    return int(first), int(count)
    except FileNotFoundError:
        pass
    return DEFAULT_RANGE


def mapping(etc: str = "/etc") -> dict:
    """The uid and gid ranges a remapped container gets."""
    return {"uid": subordinate_range(f"{etc}/subuid"), "gid": subordinate_range(f"{etc}/subgid")}


def prepare_dirs(paths: list[str], ranges: dict) -> None:
    """Hand the container's writable dirs to its root (the first id of the range)."""
    uid, gid = ranges["uid"][0], ranges["gid"][0]
    for path in paths:
        os.chown(path, uid, gid)


def write_id_maps(pid: int, uid_lines: list[tuple[int, int, int]],
                  gid_lines: list[tuple[int, int, int]]) -> None:
    """Write (container id, host id, size) lines to the child's uid_map and gid_map: the
    `run --userns remap` range or an OCI bundle's uidMappings/gidMappings."""
    for kind, lines in (("uid", uid_lines), ("gid", gid_lines)):
        with open(f"/proc/{pid}/{kind}_map", "w") as handle:
            handle.write("".join(f"{inner} {outer} {size}\n" for inner, outer, size in lines))


def map_child(launch, uid_lines: list[tuple[int, int, int]],
              gid_lines: list[tuple[int, int, int]], cgroup_procs: list[str]) -> None:
    """The parent's side of a child cloned into a new user namespace: write its id maps and
    put it in its cgroup (those files belong to the host's root, whom the child is not any
    more), then let it go on; on failure the child is killed."""
    try:
        write_id_maps(launch.pid, uid_lines, gid_lines)
        for procs in cgroup_procs:
            with open(procs, "w") as handle:
                handle.write(str(launch.pid))
    except BaseException:
        launch.abort()
        raise
    launch.release_user_namespace()


def blocking_directory(path: str, uid: int, gid: int) -> str | None:
    """The first directory on ``path``'s way from / that ``uid``/``gid`` may not search.

    The container's root is an ordinary host uid: it must be able to reach the image layers
    and its own directories, or the overlay mount fails with a bare EACCES.
    """
    current = "/"
    for part in [p for p in os.path.abspath(path).split("/") if p]:
        info = os.stat(current)
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid == gid:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return current
        current = os.path.join(current, part)
    return None
