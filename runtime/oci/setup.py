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


class OciSetup:
    """Passed in the plan as ``plan["oci_setup"]``; child._setup hands over to ``setup`` after
    joining the cgroup (and cgroup namespace), with stdio wired and the umask set."""

    def setup(self, plan: dict) -> None:
        from isoinspect.runtime import child, rootfs
        self.before_pivot(plan)
        if plan.get("sync_fd", -1) >= 0:  # prestart/createRuntime hooks run in the parent
            child._wait_for_parent(plan["sync_fd"])
        hooks = plan["oci"]["create_container_hooks"]
        if hooks:  # in the container's mount namespace, before pivot_root (spec order)
            from isoinspect.runtime.oci.hooks import run_hooks_in_child
            run_hooks_in_child(hooks, plan["oci"]["state"])
        rootfs.pivot_into(plan["rootfs"])
        self.after_pivot(plan)
        if plan["oci"]["terminal"]:
            setup_console(plan["oci"])
        if plan["read_only"]:
            rootfs.remount_root_readonly()
        if plan["hostname"]:
            sc.sethostname(plan["hostname"])
        if plan["own_net"]:
            from isoinspect.runtime.linux.loopback import bring_up_loopback
            bring_up_loopback()
        reset_python_signals()
        drop_privileges(plan)

    def before_pivot(self, plan: dict) -> None:
        oci = plan["oci"]
        root = plan["rootfs"]
        close_extra_fds(3 + oci.get("preserve_fds", 0))
        sc.mount(None, "/", None, oci["propagation"])
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
        for mount in oci["mounts"]:
            mount_one(root, mount, oci)
        if oci["has_dev"]:
            make_devices(root, oci["devices"])

    def after_pivot(self, plan: dict) -> None:
        from isoinspect.runtime.linux import paths_policy
        oci = plan["oci"]
        for key, value in oci["sysctl"].items():  # before /proc/sys becomes read-only
            with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
                handle.write(value)
        paths_policy.readonly_paths("", oci["readonly"])
        paths_policy.mask_paths("", oci["masked"])
        if oci["propagation_after"]:
            sc.mount(None, "/", None, oci["propagation_after"])
        check_executable(plan)


def close_extra_fds(first: int) -> None:
    """Mark every inherited descriptor from ``first`` up close-on-exec (runc does the same):
    whatever the caller (a shim, a shell) leaked must not reach the container's command."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def mount_one(root: str, mount: dict, oci: dict) -> None:
    try:
        _mount_one(root, mount, oci)
    except OSError as exc:
        raise OSError(exc.errno, f"mount {mount.get('source') or mount.get('type')} on "
                      f"{mount['destination']} (type {mount.get('type') or 'bind'}): "
                      f"{exc.strerror or exc}") from None


def _mount_one(root: str, mount: dict, oci: dict) -> None:
    dest = secure_join(root, mount["destination"])
    kind = mount.get("type") or ""
    source = mount.get("source") or kind or "none"
    flags, propagation, data = parse_options(mount.get("options") or [])
    if kind == "bind":
        flags |= sc.MS_BIND
    if flags & sc.MS_BIND:
        if not source.startswith("/"):
            source = os.path.join(oci["bundle"], source)
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
        mount_cgroup(dest, flags, oci)
    elif kind == "sysfs":  # the run path's sysfs: nothing of the host's mounted below it
        from isoinspect.runtime.rootfs import mount_sysfs
        _make_target(dest, False)
        mount_sysfs(dest, flags if oci["own_net"] else flags | sc.MS_RDONLY)
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


def mount_cgroup(dest: str, flags: int, oci: dict) -> None:
    """cgroup2 on unified hosts; on v1/hybrid a tmpfs holding, per hierarchy, a bind of the
    container's own cgroup directory (what runc shows without a cgroup namespace)."""
    ro = flags & sc.MS_RDONLY
    base = flags & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    if oci["cgroup_mode"] == "unified":
        sc.mount("cgroup2", dest, "cgroup2", base | ro)
        return
    sc.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, directory in oci["cgroup_dirs"]:
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


def make_devices(root: str, devices: list[dict]) -> None:
    """Default nodes, the spec's linux.devices, /dev links and /dev/ptmx -> pts/ptmx."""
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


def check_executable(plan: dict) -> None:
    """Fail at create time, like runc, when the command cannot be found (Docker: 127)."""
    from isoinspect.runtime.child import EXIT_NOT_FOUND, ExecFailure
    program = plan["argv"][0]
    try:
        os.chdir(plan["workdir"])
    except OSError:
        pass
    if find_executable(program, plan["env"]) is None:
        if "/" in program:
            raise ExecFailure(f'exec: "{program}": stat {program}: no such file or directory',
                              EXIT_NOT_FOUND)
        raise ExecFailure(f'exec: "{program}": executable file not found in $PATH',
                          EXIT_NOT_FOUND)
    os.chdir("/")


def reset_python_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, so
    give the container's command the defaults back (runc's init does the same)."""
    import _signal
    for signum in (13, 25):  # SIGPIPE, SIGXFSZ
        _signal.signal(signum, _signal.SIG_DFL)


def drop_privileges(plan: dict) -> None:
    """child.drop_privileges with the spec's ``noNewPrivileges`` honoured (runc's order).

    With no_new_privs the filter is loaded last, after the capabilities are gone. Without it
    (Docker's default, so set-uid programs keep working) loading a filter needs
    CAP_SYS_ADMIN, so it is loaded first and must allow the few calls that follow (setgroups,
    setres[ug]id, prctl, capset, chdir, execve), which Docker's profile does.
    """
    from isoinspect.runtime.linux import capabilities, rlimits
    from isoinspect.runtime.users import resolve_user
    if plan.get("no_new_privileges", True):
        from isoinspect.runtime import child
        child.drop_privileges(plan)
        return
    from isoinspect.runtime.child import prepare_exec
    prepare_exec(plan)
    rlimits.apply_rlimits(plan["rlimits"])
    uid, gid, groups, home = resolve_user(plan["user"])
    plan["home"] = home
    if plan["seccomp"]:
        sc.load_seccomp_filter(plan["seccomp"])
    capabilities.switch_user(uid, gid, groups, plan["caps"])
    sc.make_non_dumpable()  # a uid change resets it to fs.suid_dumpable


def setup_console(oci: dict) -> None:
    """After pivot_root: a pty from the container's /dev/ptmx, its master sent to the console
    socket, the slave as stdio and controlling terminal, and bound over /dev/console."""
    import fcntl
    import termios

    from isoinspect.runtime.oci import console
    master, slave = console.open_pty(oci.get("console_size"))
    name = os.ttyname(slave)
    console.send_fd(oci["console_fd"], master)
    os.close(oci["console_fd"])
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if os.path.isdir("/dev"):
        _make_target("/dev/console", True)
        sc.mount(name, "/dev/console", None, sc.MS_BIND)
