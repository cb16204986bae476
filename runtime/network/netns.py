"""Name a container's network namespace in /run/netns so ``ip netns`` sees it while it runs.

A bind mount of /proc/<pid>/ns/net on /run/netns/isoinspect-<id12>, as iproute2 makes them.
The mount keeps the namespace (and its veth) alive after the container dies, so it must be
removed on stop, by ``rm`` and by ``gc``.
"""

from __future__ import annotations

import os

from isoinspect.runtime.digests import is_hex

# linux.syscalls (ctypes, ~1-3 ms) is imported where a system call is made: ``rm`` of a stopped
# container only checks that its name is gone, and a start has it loaded already.

NETNS_DIR = "/run/netns"
PREFIX = "isoinspect-"
# A container's entry: PREFIX + the first 12 hex digits of its id. Other isoinspect-* names
# (the test/bench dockerd's isoinspect-dockerd-*) are not containers' and gc leaves them alone.
# (No ``re``: this module is on the start path, where importing re costs ~6 ms.)


def _container_entry(name: str) -> bool:
    return name.startswith(PREFIX) and is_hex(name[len(PREFIX):], 12)


def made_in(pid: int, factory):
    """``factory()`` called inside the network namespace of ``pid``, then back in ours (setns
    on this thread only): for sockets, which stay in the netns they were created in."""
    from isoinspect.runtime.linux import syscalls as sc

    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(target, sc.CLONE_NEWNET)
            try:
                return factory()
            finally:
                sc.setns(own, sc.CLONE_NEWNET)
        finally:
            os.close(target)
    finally:
        os.close(own)


def path_for(container_id: str) -> str:
    return os.path.join(NETNS_DIR, f"{PREFIX}{container_id[:12]}")


def bind(container_id: str, pid: int) -> str:
    """Bind the netns of ``pid`` to its /run/netns name; return the path."""
    from isoinspect.runtime.linux import syscalls as sc

    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    path = path_for(container_id)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    try:
        sc.mount(f"/proc/{pid}/ns/net", path, None, sc.MS_BIND)
    except BaseException:
        os.unlink(path)
        raise
    return path


def unbind(path: str) -> bool:
    """Unmount and delete a /run/netns entry; True if something was there."""
    if not os.path.lexists(path):
        return False
    from isoinspect.runtime.linux import syscalls as sc

    try:
        sc.umount2(path, sc.MNT_DETACH)
    except OSError:
        pass  # not mounted (a half-made entry)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return True


def ours(netns_dir: str = NETNS_DIR) -> list[str]:
    """Paths of every /run/netns entry isoinspect made for a container."""
    try:
        names = os.listdir(netns_dir)
    except FileNotFoundError:
        return []
    return [os.path.join(netns_dir, n) for n in sorted(names) if _container_entry(n)]
