"""A container's file system as one directory fd, for ``cp``: its root as the container sees it.

A running container's root is ``/proc/<pid>/root`` (its mount namespace: the overlay and its
``-v`` mounts). A created or stopped one is mounted again from its layers and upper dir, in a
private mount namespace of this process only (it disappears when we exit), with the monitor
lock held so that no start mounts the same upper dir meanwhile.

Every path inside is hostile (the container writes its own symlinks), so it is only ever opened
with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` from that fd: the kernel resolves each
symlink and ``..`` as if the fd were ``/``, atomically, so no symlink swapped in at any moment
can lead out (the CVE-2018-15664 race of ``docker cp``). What is opened there is then walked or
written through fds with ``O_NOFOLLOW`` (runtime/tree_archive.py, runtime/safe_extract.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Callable, Iterator

from isoinspect.runtime import process
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound
from isoinspect.runtime.linux import syscalls as sc

_IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
# Kernel file systems mounted in a running container: never walked (Docker copies from the
# container's overlay, where these are empty directories).
PSEUDO_FS = frozenset(("proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs",
                       "debugfs", "tracefs", "bpf", "fusectl", "configfs"))


class ContainerRoot:
    """An open container root: ``fd`` (a directory), the devices not to walk into, and its
    user namespace's id ranges ({"uid": (first, count), "gid": ...}, None without one)."""

    def __init__(self, fd: int, skip_devices: frozenset, read_only: bool,
                 userns: dict | None = None, userns_fd: int = -1) -> None:
        self.fd, self.skip_devices, self.read_only = fd, skip_devices, read_only
        self.userns = userns
        self.userns_fd = userns_fd  # a running remapped container's user namespace, or -1

    @property
    def ids_shifted(self) -> bool:
        """Do writes see host ids (shifted by us into its range), not the container's?"""
        return bool(self.userns) and self.userns_fd < 0

    def write_as_its_root(self, write: Callable[[], None]) -> None:
        """Run ``write()`` where writes into the root are allowed: here, or for a running
        remapped container in a child that joined its user namespace as its root (its overlay
        belongs to that namespace, where the host's root is unmapped: EOVERFLOW)."""
        if self.userns_fd < 0:
            write()
            return
        from isoinspect.runtime.pipes import read_all

        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(read_fd)
                sc.setns(self.userns_fd, sc.CLONE_NEWUSER)
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                write()
            except BaseException as exc:  # noqa: BLE001 - reported by the parent
                os.write(write_fd, (str(exc) or type(exc).__name__).encode()[:4000])
                code = 1
            os._exit(code)
        os.close(write_fd)
        message = read_all(read_fd).decode(errors="replace")
        if process.exit_code_from_status(os.waitpid(pid, 0)[1]) != 0:
            raise IsoinspectError(message or "the copy into the container failed", exit_code=1)

    def open(self, path: str, flags: int) -> int:
        """``path`` (any form: absolute, ``../``, through symlinks) opened inside the root."""
        try:
            return sc.openat2(self.fd, path, flags | os.O_CLOEXEC, _IN_ROOT)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                raise IsoinspectError("cp needs openat2 (Linux 5.6 or later)") from None
            raise


def _pseudo_devices(pid: int) -> frozenset:
    """st_dev of every kernel file system mounted in the container (from its mountinfo)."""
    found = set()
    with open(f"/proc/{pid}/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                continue
            if fstype in PSEUDO_FS:
                major, _, minor = fields[2].partition(":")
                found.add(os.makedev(int(major), int(minor)))
    return frozenset(found)


@contextlib.contextmanager
def _running_root(record: ContainerState) -> Iterator[ContainerRoot]:
    fd = os.open(f"/proc/{record.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    userns_fd = -1
    try:
        if record.userns:
            userns_fd = os.open(f"/proc/{record.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        # Checked after the opens: the pid was this container's while we opened them.
        if not process.is_alive(record.pid, record.pid_ticks):
            raise Conflict(f"container {record.name} stopped while it was being opened")
        yield ContainerRoot(fd, _pseudo_devices(record.pid), bool(record.spec.get("read_only")),
                            record.userns, userns_fd)
    finally:
        os.close(fd)
        if userns_fd >= 0:
            os.close(userns_fd)


@contextlib.contextmanager
def _mounted_root(runtime, record: ContainerState) -> Iterator[ContainerRoot]:
    """Mount a container that is not running, in a mount namespace of this process only."""
    from isoinspect.runtime import rootfs

    containers = runtime.containers
    try:
        lock = containers.monitor_lock(record.id).__enter__()
    except BlockingIOError:
        raise Conflict(f"container {record.name} is starting: try again") from None
    except FileNotFoundError:
        raise NotFound(f"no such container: {record.name}") from None
    try:
        sc.unshare(sc.CLONE_NEWNS)
        rootfs.make_mounts_private()
        target = containers.dir(record.id, "rootfs")
        rootfs.mount_overlay(target, record.lower, containers.dir(record.id, "upper"),
                             containers.dir(record.id, "work"))
        mounts = runtime._bind_mounts(record)
        if mounts:
            from isoinspect.runtime.bind_mounts import mount_all
            mount_all(target, mounts)
        fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            yield ContainerRoot(fd, frozenset(), bool(record.spec.get("read_only")),
                                record.userns)
        finally:
            os.close(fd)
    finally:
        lock.__exit__(None, None, None)


@contextlib.contextmanager
def open_root(runtime, ref: str) -> Iterator[ContainerRoot]:
    """The root of container ``ref``, running or not, while the context lasts."""
    record = runtime.get(ref)
    if record.status == Status.RUNNING:
        with _running_root(record) as root:
            yield root
        return
    with _mounted_root(runtime, record) as root:
        yield root
