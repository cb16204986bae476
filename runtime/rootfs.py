"""The container's root file system, assembled inside its own mount namespace.

Everything here runs in the container's child process after it has a private mount namespace,
so every mount disappears with the namespace: a crash cannot leak a mount on the host.
Order: overlay root, /proc, /sys, /dev (tmpfs with the standard nodes), /dev/pts, /dev/shm,
/dev/mqueue, then pivot_root, which drops the host's tree from view.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime.linux import syscalls as sc

_S_IFCHR = 0o020000
# name, major, minor: the nodes Docker creates in every container's /dev.
STANDARD_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                    ("urandom", 1, 9), ("tty", 5, 0))
STANDARD_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                  ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                  ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def make_mounts_private() -> None:
    """Stop mount events from the container reaching the host (rslave, like runc's default)."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)


def make_parent_private(root: str) -> None:
    """A shared bind (-v SRC:DST:rshared) must stay a peer of the host's mount, so the host's
    copies keep their propagation (Docker's rootfs propagation "shared"); only the mount the
    root is assembled on becomes private, so the root's own mounts never reach the host
    (runc's rootfsParentMountPrivate). ``pivot_into(..., detach_slave=True)`` then keeps the
    old root's unmount from propagating."""
    from isoinspect.runtime.bind_mounts import mount_table, source_mount

    parent, _ = source_mount(os.path.realpath(root), mount_table())
    sc.mount(None, parent, None, sc.MS_PRIVATE)


def mount_overlay(target: str, lower_dirs: list[str], upper: str, work: str,
                  volatile: bool = False) -> None:
    """The image layers (read-only, top first) under a per-container writable upper dir.

    A layer can occur twice in an image (two steps with the same content, e.g. the same COPY
    twice, Docker keeps both); overlayfs refuses a lower dir given twice (ELOOP). Only the
    topmost copy is kept: it already shows everything the lower copy would.
    ``volatile`` (Linux 5.10+; ignored where refused): no sync of the upper file system, at
    its unmount above all, for a container whose upper dir is deleted once it exits.
    """
    lower = list(dict.fromkeys(lower_dirs))
    data = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    try:
        if volatile:
            try:
                sc.mount("overlay", target, "overlay", 0, data + ",volatile")
                return
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
        sc.mount("overlay", target, "overlay", 0, data)
    except OSError as err:
        missing = next((d for d in lower if not os.path.isdir(d)), None)
        why = "; an image layer is missing from the store" if missing else ""
        raise OSError(err.errno, f"overlay mount of the container's root failed: "
                                 f"{err.strerror.removeprefix('mount: ')}{why}",
                      missing or target) from None


def _ensure_dir(path: str, mode: int = 0o755) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


def _ensure_real_dir(path: str, mode: int) -> None:
    """``path`` made if missing; refused if the image put a symlink or a file there (mount(2)
    would follow a symlink out of the container's root, as runc warns)."""
    _ensure_dir(path, mode)
    if os.path.islink(path) or not os.path.isdir(path):
        raise OSError(errno.ENOTDIR, "not a directory in the image (a symlink or a file)", path)


def mount_proc_sys(root: str) -> None:
    """A /proc of the container's PID namespace and a read-only /sys (the same whether the
    container has its own network namespace or shares the host's: see ``mount_sysfs``)."""
    _ensure_real_dir(f"{root}/proc", 0o555)
    sc.mount("proc", f"{root}/proc", "proc", _NOSUID_NODEV_NOEXEC)
    _ensure_real_dir(f"{root}/sys", 0o555)
    mount_sysfs(f"{root}/sys", _NOSUID_NODEV_NOEXEC | sc.MS_RDONLY)


def mount_sysfs(target: str, flags: int) -> None:
    """sysfs at ``target`` with nothing of the host's mounted below it.

    A fresh sysfs shows the devices of the caller's network namespace and has no submounts, so
    the host's cgroup hierarchies, tracefs, debugfs, bpffs and securityfs are not in it. The
    kernel allows it in the host's network namespace too, to a root of the host's user namespace
    (runc mounts it so for ``docker run --network host``). Only a user namespace sharing the
    host's network namespace is refused (EPERM): there the host's /sys is bound, made read-only
    all the way down whatever ``flags`` say, and its cgroup hierarchies are covered by an empty
    read-only tmpfs (a cgroup2 view of the container's own may then be mounted over it).
    Shared by ``run``, build RUN steps, the warm pool and OCI bundles.
    """
    try:
        sc.mount("sysfs", target, "sysfs", flags)
        return
    except PermissionError:
        pass
    from isoinspect.runtime.linux.mount_tree import make_tree_readonly
    sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)
    make_tree_readonly(target)
    if os.path.isdir(f"{target}/fs/cgroup"):
        sc.mount("tmpfs", f"{target}/fs/cgroup", "tmpfs", _NOSUID_NODEV_NOEXEC | sc.MS_RDONLY,
                 "mode=755")


def mount_cgroup2(root: str) -> None:
    """On a cgroup v2 host: the container's own cgroup (via its cgroup ns) at /sys/fs/cgroup."""
    target = f"{root}/sys/fs/cgroup"
    if os.path.isdir(target):
        sc.mount("cgroup2", target, "cgroup2", _NOSUID_NODEV_NOEXEC | sc.MS_RDONLY)


def populate_dev(root: str, bind_devices: bool = False) -> None:
    """/dev as a small tmpfs holding the standard nodes, links, pts, shm and mqueue.

    In a user namespace mknod is refused, so the host's nodes are bind-mounted instead
    (``bind_devices``), as runc does for rootless containers.
    """
    dev = f"{root}/dev"
    _ensure_dir(dev)
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in STANDARD_DEVICES:
        path = f"{dev}/{name}"
        if bind_devices:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
            sc.mount(f"/dev/{name}", path, None, sc.MS_BIND)
            continue
        os.mknod(path, 0o666 | _S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for name, target in STANDARD_LINKS:
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts", 0o755)
    sc.mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.mkdir(f"{dev}/shm", 0o1777)
    sc.mount("shm", f"{dev}/shm", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    os.mkdir(f"{dev}/mqueue", 0o755)
    sc.mount("mqueue", f"{dev}/mqueue", "mqueue", _NOSUID_NODEV_NOEXEC)


def write_identity_files(upper: str, lower_dirs: list[str], hostname: str,
                         owner: tuple[int, int] | None = None) -> None:
    """/etc/hostname and /etc/hosts naming the container, as Docker writes them.

    Written by the parent straight into the overlay's upper dir before the container mounts
    it, so the child need not copy files up, and so a user-namespaced container (whose root
    may not write files owned by the host's root) still gets them. ``owner`` hands the files
    to the namespace's root.
    """
    if not any(os.path.isdir(f"{lower}/etc") for lower in lower_dirs):
        return
    etc = f"{upper}/etc"
    _ensure_dir(etc)
    files = {"hostname": f"{hostname}\n",
             "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      f"127.0.1.1\t{hostname}\n"}
    for name, text in files.items():
        with open(f"{etc}/{name}", "w") as handle:
            handle.write(text)
        if owner is not None:
            os.chown(f"{etc}/{name}", *owner)
    if owner is not None:
        os.chown(etc, *owner)


def pivot_into(root: str, detach_slave: bool = False) -> None:
    """Make ``root`` the container's / and detach the host's tree (pivot_root, not chroot).
    ``detach_slave``: the host's copies are still peers of the host's mounts (see
    make_parent_private): made slaves first, so detaching them unmounts nothing on the host."""
    if detach_slave:  # runc's way: "." after pivot_root may be either root; use the old's fd
        old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(root)
            sc.pivot_root(".", ".")
            os.fchdir(old)
            sc.mount(None, ".", None, sc.MS_REC | sc.MS_SLAVE)
        finally:
            os.close(old)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
        return
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def remount_root_readonly() -> None:
    """--read-only: the container's root becomes read-only after everything is mounted."""
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
