"""/etc/hosts and /etc/resolv.conf of a networked container.

Names resolve through /etc/hosts: each container's file lists every container on its network
(name and hostname), and is rewritten when a peer joins or leaves. Files are written in place
in the container's overlay upper dir (same inode), so a running container sees new content
at once, even when its root is read-only.
"""

from __future__ import annotations

import os

_LOCAL = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts_text(own_address: str, holders: dict[str, dict]) -> str:
    """localhost lines, then one line per container on the network (own first)."""
    lines = [_LOCAL]
    ordered = sorted(holders.items(), key=lambda item: item[0] != own_address)
    for address, holder in ordered:
        names = [holder["hostname"]] + ([holder["name"]] if holder["name"] != holder["hostname"]
                                        else [])
        lines.append(f"{address}\t{' '.join(names)}\n")
    return "".join(lines)


def resolv_text(host_file: str = "/etc/resolv.conf") -> str:
    """The host's nameservers minus loopback ones (unreachable from the container)."""
    kept = []
    try:
        with open(host_file) as handle:
            for line in handle:
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if fields[0] == "nameserver" and len(fields) > 1 and (
                        fields[1].startswith("127.") or fields[1] == "::1"):
                    continue
                kept.append(line if line.endswith("\n") else line + "\n")
    except OSError:
        pass
    return "".join(kept) or "# no usable nameserver on the host\n"


def write_in_place(path: str, text: str) -> bool:
    """Rewrite an existing file keeping its inode and owner; False if it is missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def write_new(path: str, text: str, like: str) -> None:
    """Create (or rewrite) ``path`` with the owner of ``like`` (user-namespaced roots)."""
    if write_in_place(path, text):
        return
    with open(path, "w") as handle:
        handle.write(text)
    try:
        info = os.stat(like)
        os.chown(path, info.st_uid, info.st_gid)
    except OSError:
        pass


def refresh_hosts(holders: dict[str, dict]) -> None:
    """Rewrite the hosts file of every container on a network."""
    for address, holder in holders.items():
        if holder.get("hosts"):
            write_in_place(holder["hosts"], hosts_text(address, holders))
