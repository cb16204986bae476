"""What the container's init does for an OCI bundle between clone() and pivot_root, and right
after it: the bundle's root, its mounts list in order (bind/rbind, tmpfs, proc, sysfs, devpts,
mqueue, cgroup, anything else by type), /dev nodes, the controlling terminal, createContainer
hooks; then masked/read-only paths, sysctl and a check that the command exists.

Runs in the cloned child (see runtime/child.py): only system calls, no threads, and every error
is an exception that child.run_child reports through the error pipe.
"""

from __future__ import annotations

import errno
import os
import stat

from isoinspect.runtime.frozen import Frozen
from isoinspect.runtime.linux import syscalls as sc

FLAG_OPTIONS = {
    # name: (set, clear)
    "ro": (sc.MS_RDONLY, 0), "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0), "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0), "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0), "exec": (0, sc.MS_NOEXEC),
    "sync": (16, 0), "async": (0, 16), "dirsync": (128, 0),
    "mand": (64, 0), "nomand": (0, 64),
    "noatime": (sc.MS_NOATIME, 0), "atime": (0, sc.MS_NOATIME),
    "nodiratime": (sc.MS_NODIRATIME, 0), "diratime": (0, sc.MS_NODIRATIME),
    "relatime": (sc.MS_RELATIME, 0), "norelatime": (0, sc.MS_RELATIME),
    "strictatime": (sc.MS_STRICTATIME, 0), "nostrictatime": (0, sc.MS_STRICTATIME),
    "remount": (sc.MS_REMOUNT, 0),
    "bind": (sc.MS_BIND, 0), "rbind": (sc.MS_BIND | sc.MS_REC, 0),
}
PROPAGATION_OPTIONS = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": 1 << 17, "runbindable": (1 << 17) | sc.MS_REC,
}
IGNORED_OPTIONS = ("tmpcopyup", "idmap", "ridmap", "defaults")
_S_IFCHR, _S_IFBLK, _S_IFIFO = 0o020000, 0o060000, 0o010000
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
DEV_LINKS = (("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
             ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
             ("/dev/core", "/proc/kcore"))


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Mount options -> (flags, propagation flags, data string)."""
    flags, propagation, data = 0, 0, []
    for option in options:
        if option in FLAG_OPTIONS:
            add, clear = FLAG_OPTIONS[option]
            flags = (flags | add) & ~clear
        elif option in PROPAGATION_OPTIONS:
            propagation |= PROPAGATION_OPTIONS[option]
        elif option in IGNORED_OPTIONS:
            continue
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def secure_join(root: str, path: str) -> str:
    """``root`` + ``path`` with every symlink on the way resolved inside ``root``."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join(resolved + [part])
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        hops += 1
        if hops > 255:
            raise OSError(errno.ELOOP, "too many symlinks", path)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return root + "/" + "/".join(resolved) if resolved else root


def _make_target(target: str, is_file: bool) -> None:
    if os.path.lexists(target):
        return
    parent = os.path.dirname(target)
    os.makedirs(parent, 0o755, exist_ok=True)
    if is_file:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.mkdir(target, 0o755)


class BundleRoot(Frozen):
    """``InitPlan.root`` for an OCI bundle: its root.path and its mounts list, in order."""

    bundle: str
    mounts: list
    propagation: int  # applied to / before anything is mounted
    propagation_after: int = 0  # rootfsPropagation shared/unbindable: applied after pivot
    has_dev: bool = False  # the config mounts /dev: create the device nodes in it
    devices: list = []
    masked: list = []
    readonly: list = []
    sysctl: dict = {}
    cgroup_mode: str = "unified"
    cgroup_dirs: list = []  # [(hierarchy name, the container's cgroup dir)] for v1 binds
    create_container_hooks: list = []
    hook_state: dict = {}  # the OCI state the hooks receive on stdin
    terminal: bool = False
    console_fd: int = -1
    console_size: object = None
    # False: no mount namespace in linux.namespaces, so the runtime's own (the spec). Then, as
    # runc does, the mounts go below root.path there and the init chroots into it; unlike
    # runc, the propagation of the runtime's / is left alone (it is the host's).
    own_mounts: bool = True
    userns: bool = False  # a new user namespace: mknod is refused, bind the host's nodes

    def before_pivot(self, plan) -> None:
        root = plan.rootfs
        if self.own_mounts:
            sc.mount(None, "/", None, self.propagation)
            sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
        for mount in self.mounts:
            mount_one(root, mount, self, plan.own_net)
        if self.has_dev:
            make_devices(root, self.devices, self.userns)

    def pivot(self, plan) -> None:
        from isoinspect.runtime import rootfs
        if self.create_container_hooks:  # in the container's mount ns, before pivot_root
            from isoinspect.runtime.oci.hooks import run_hooks_in_child
            run_hooks_in_child(self.create_container_hooks, self.hook_state)
        if self.own_mounts:
            rootfs.pivot_into(plan.rootfs)
        else:  # pivot_root would move the runtime's own root: chroot, as runc does
            os.chdir(plan.rootfs)
            os.chroot(".")
            os.chdir("/")

    def after_pivot(self, plan) -> None:
        from isoinspect.runtime.linux import paths_policy
        for key, value in self.sysctl.items():  # before /proc/sys becomes read-only
            with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
                handle.write(value)
        # After pivot_root: an absolute symlink in the image cannot lead outside any more.
        paths_policy.readonly_paths("", self.readonly)
        paths_policy.mask_paths("", self.masked)
        if self.propagation_after and self.own_mounts:  # else "/" is a mount of the host's
            sc.mount(None, "/", None, self.propagation_after)
        check_executable(plan.process)
        if self.terminal:
            setup_console(self.console_fd, self.console_size)


def mount_one(root: str, mount: dict, bundle: BundleRoot, own_net: bool) -> None:
    try:
        _mount_one(root, mount, bundle, own_net)
    except OSError as exc:
        raise OSError(exc.errno, f"mount {mount.get('source') or mount.get('type')} on "
                      f"{mount['destination']} (type {mount.get('type') or 'bind'}): "
                      f"{exc.strerror or exc}") from None


def _mount_one(root: str, mount: dict, bundle: BundleRoot, own_net: bool) -> None:
    dest = secure_join(root, mount["destination"])
    kind = mount.get("type") or ""
    source = mount.get("source") or kind or "none"
    flags, propagation, data = parse_options(mount.get("options") or [])
    if kind == "bind":
        flags |= sc.MS_BIND
    if flags & sc.MS_BIND:
        if not source.startswith("/"):
            source = os.path.join(bundle.bundle, source)
        if not os.path.exists(source):
            raise FileNotFoundError(2, "bind source does not exist")
        _make_target(dest, not os.path.isdir(source))
        sc.mount(source, dest, None, flags & (sc.MS_BIND | sc.MS_REC))
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            kept = _kept_flags(dest)
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | extra | kept)
    elif kind == "cgroup":
        _make_target(dest, False)
        mount_cgroup(dest, flags, bundle)
    elif kind == "sysfs":  # the run path's sysfs: nothing of the host's mounted below it
        from isoinspect.runtime.rootfs import mount_sysfs
        _make_target(dest, False)
        mount_sysfs(dest, flags if own_net else flags | sc.MS_RDONLY)
    else:
        _make_target(dest, False)
        try:
            sc.mount(source, dest, kind, flags, data or None)
        except OSError as exc:
            if kind != "mqueue" or exc.errno not in (errno.EPERM, errno.EINVAL):
                raise
            sc.mount("/dev/mqueue", dest, None, sc.MS_BIND | sc.MS_REC)
    if propagation:
        sc.mount(None, dest, None, propagation)


def _kept_flags(path: str) -> int:
    from isoinspect.runtime.linux.paths_policy import _kept_flags
    return _kept_flags(os.statvfs(path).f_flag, sc)


def mount_cgroup(dest: str, flags: int, bundle: BundleRoot) -> None:
    """cgroup2 on unified hosts; on v1/hybrid a tmpfs holding, per hierarchy, a bind of the
    container's own cgroup directory (what runc shows without a cgroup namespace)."""
    ro = flags & sc.MS_RDONLY
    base = flags & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    if bundle.cgroup_mode == "unified":
        sc.mount("cgroup2", dest, "cgroup2", base | ro)
        return
    sc.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, directory in bundle.cgroup_dirs:
        target = f"{dest}/{name}"
        os.makedirs(target, 0o755, exist_ok=True)
        sc.mount(directory, target, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | base | ro)
        if "," in name:
            for part in name.split(","):
                link = f"{dest}/{part}"
                if not os.path.lexists(link):
                    os.symlink(name, link)
    if ro:
        sc.mount(None, dest, None, sc.MS_REMOUNT | base | sc.MS_RDONLY, "mode=755")


def make_devices(root: str, devices: list[dict], bind: bool = False) -> None:
    """Default nodes, the spec's linux.devices, /dev links and /dev/ptmx -> pts/ptmx.

    ``bind``: in a user namespace mknod is refused, so the host's node at the same path is
    bound instead (runc does the same); a FIFO (type p) is still made, mkfifo needs nothing."""
    specs = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666}
             for p, ma, mi in DEFAULT_DEVICES]
    specs += list(devices)
    for dev in specs:
        path = secure_join(root, dev["path"])
        kind = {"c": _S_IFCHR, "u": _S_IFCHR, "b": _S_IFBLK, "p": _S_IFIFO}[dev.get("type", "c")]
        mode = dev.get("fileMode", 0o666) & 0o7777
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        if bind and kind != _S_IFIFO:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            sc.mount(dev["path"], path, None, sc.MS_BIND)
            continue
        os.mknod(path, mode | kind, os.makedev(dev.get("major", 0), dev.get("minor", 0)))
        os.chmod(path, mode)
        if dev.get("uid") is not None or dev.get("gid") is not None:
            os.chown(path, dev.get("uid", 0), dev.get("gid", 0))
    for link, target in DEV_LINKS:
        path = root + link
        if not os.path.lexists(path):
            os.symlink(target, path)
    ptmx = root + "/dev/ptmx"
    if os.path.isdir(root + "/dev/pts"):
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)


def find_executable(program: str, env: list[str]) -> str | None:
    if "/" in program:
        return program if os.path.exists(program) else None
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for directory in path.split(":"):
        candidate = f"{directory or '.'}/{program}"
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            return candidate
    return None


def check_executable(process) -> None:
    """Fail at create time, like runc, when the command cannot be found (Docker: 127)."""
    from isoinspect.runtime.child import EXIT_NOT_FOUND, ExecFailure
    program = process.argv[0]
    try:
        os.chdir(process.workdir)
    except OSError:
        pass
    if find_executable(program, process.env) is None:
        if "/" in program:
            raise ExecFailure(f'exec: "{program}": stat {program}: no such file or directory',
                              EXIT_NOT_FOUND)
        raise ExecFailure(f'exec: "{program}": executable file not found in $PATH',
                          EXIT_NOT_FOUND)
    os.chdir("/")


def setup_console(console_fd: int, size: object) -> None:
    """After pivot_root: the init takes a new terminal (console.become_terminal), which is
    also bound over /dev/console."""
    from isoinspect.runtime.oci import console
    name = console.become_terminal(console_fd, size)
    if os.path.isdir("/dev"):
        _make_target("/dev/console", True)
        sc.mount(name, "/dev/console", None, sc.MS_BIND)
