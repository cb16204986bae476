"""Resolve ``-u USER[:GROUP]`` inside the container's own /etc/passwd and /etc/group.

Runs after pivot_root, so names mean what the image says, not what the host says. Numeric ids
need no entry (Docker: an unknown numeric uid runs with gid 0 and HOME=/).
"""

from __future__ import annotations

from isoinspect.runtime.errors import IsoinspectError


def _read_entries(path: str) -> list[list[str]]:
    try:
        with open(path) as handle:
            return [line.rstrip("\n").split(":") for line in handle
                    if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def resolve_user(spec: str, etc: str = "/etc",
                 files: tuple[str, str] | None = None) -> tuple[int, int, list[int], str]:
    """'' / 'root' / '1000' / 'nobody:nogroup' -> (uid, gid, supplementary gids, home).
    ``files``: the (passwd, group) paths, when not ``etc``'s (an image's, resolved in its
    root by the caller)."""
    passwd_path, group_path = files or (f"{etc}/passwd", f"{etc}/group")
    user, _, group = (spec or "0").partition(":")
    passwd = _read_entries(passwd_path)
    entry = next((e for e in passwd if len(e) >= 6 and (e[0] == user or
                                                          (user.isdigit() and e[2] == user))),
                 None)
    if entry is not None:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    elif user.isdigit():
        uid, gid, home, name = int(user), 0, "/", ""
    else:
        raise IsoinspectError(f"unable to find user {user}: no matching entries in passwd file")
    groups = _read_entries(group_path)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if match is None:
                raise IsoinspectError(f"unable to find group {group}: no matching entries in "
                                      "group file")
            gid = int(match[2])
    # The user's /etc/group memberships only when no group is named (libcontainer's rule,
    # which Docker and runc follow: "uid:gid" gets no supplementary groups from the image).
    extra = [] if group else sorted({int(g[2]) for g in groups if len(g) >= 4 and name and
                                     name in g[3].split(",") and g[2].isdigit()})
    return uid, gid, extra, home
