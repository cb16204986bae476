"""ctypes wrappers for the system calls a container runtime needs and Python 3.11 lacks.

Python 3.11 has no os.unshare/os.setns and no mount, pivot_root, sethostname or prctl, so they
are called through libc here. This is the one place that knows syscall numbers and flag values
(namespace flags come from the namespace table, namespaces.py); everything else imports names
from it. Errors become OSError with the errno, like os.* calls.
"""

from __future__ import annotations

import ctypes
import os

from isoinspect.runtime.linux import namespaces as _namespaces

_libc = ctypes.CDLL(None, use_errno=True)

# Namespace flags: defined in the namespace table, named here too for sc.CLONE_NEW* callers.
CLONE_NEWNS = _namespaces.CLONE_NEWNS
CLONE_NEWCGROUP = _namespaces.CLONE_NEWCGROUP
CLONE_NEWUTS = _namespaces.CLONE_NEWUTS
CLONE_NEWIPC = _namespaces.CLONE_NEWIPC
CLONE_NEWUSER = _namespaces.CLONE_NEWUSER
CLONE_NEWPID = _namespaces.CLONE_NEWPID
CLONE_NEWNET = _namespaces.CLONE_NEWNET
CLONE_NEWTIME = _namespaces.CLONE_NEWTIME
CLONE_PARENT = 0x00008000  # the new process is the caller's parent's child (runc's stage 2)

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# x86_64 syscall numbers for calls libc has no wrapper for (or where we want the raw one).
SYS_clone = 56
SYS_clone3 = 435
CLONE_INTO_CGROUP = 0x200000000  # clone3 only (Linux 5.7): the child starts in a v2 cgroup
SIGCHLD = 17
SYS_pivot_root = 155
SYS_setns = 308
SYS_capget = 125
SYS_capset = 126
SYS_bpf = 321
SYS_rt_sigaction = 13
SYS_rt_sigprocmask = 14
SIG_SETMASK = 2


def _check(result: int, what: str, path: str | None = None) -> int:
    if result == -1:
        err = ctypes.get_errno()
        if path is not None:
            raise OSError(err, f"{what}: {os.strerror(err)}", path)
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces of the given CLONE_NEW* kinds."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def socket(domain: int, kind: int, protocol: int) -> int:
    """socket(2): a descriptor for os.read/os.write (netlink), without the socket module
    (~0.5-1 ms to import with its _socket extension, on the bridged start path)."""
    return _check(_libc.socket(ctypes.c_int(domain), ctypes.c_int(kind), ctypes.c_int(protocol)),
                  "socket")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace behind an open /proc/<pid>/ns/<kind> descriptor."""
    _check(_libc.syscall(SYS_setns, ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def clone_process(flags: int) -> int:
    """fork() with namespace flags: returns the child's pid in the parent and 0 in the child.

    The raw clone syscall with no new stack behaves like fork, so the child continues in Python.
    Unlike os.fork, CPython's after-fork hooks do not run: the child must only make system calls
    and then exec or _exit. With CLONE_NEWPID the child is PID 1 of a new PID namespace while
    staying the caller's child, so the caller can wait for it and read its exit status.
    """
    pid = _libc.syscall(SYS_clone, ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
    return _check(pid, "clone")


class _CloneArgs(ctypes.Structure):
    """struct clone_args (linux/sched.h), up to ``cgroup`` (CLONE_ARGS_SIZE_VER2, 88 bytes)."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


def clone_into_cgroup(flags: int, cgroup_fd: int) -> int:
    """clone_process, with the child created inside the cgroup v2 directory ``cgroup_fd``
    (clone3 CLONE_INTO_CGROUP): no cgroup.procs write, so no wait for the attach lock's RCU
    grace period. OSError before any child exists when the kernel, a seccomp filter or a v1
    directory refuses it."""
    args = _CloneArgs(flags=flags | CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=cgroup_fd)
    pid = _libc.syscall(ctypes.c_long(SYS_clone3), ctypes.byref(args),
                        ctypes.c_size_t(ctypes.sizeof(args)))
    return _check(pid, "clone3")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError naming the target on failure."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2), e.g. with MNT_DETACH for a lazy unmount."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), "umount", target)


RENAME_EXCHANGE = 2  # linux/fs.h: swap two names atomically (renameat2)


def rename_exchange(dir_fd: int, first: str, second: str) -> None:
    """Swap the files ``first`` and ``second`` of directory ``dir_fd`` in one step."""
    _check(_libc.renameat2(dir_fd, _b(first), dir_fd, _b(second), RENAME_EXCHANGE),
           "renameat2", second)


# mount_setattr(2) (Linux 5.12): change the attributes of a mount, or of a whole mount tree.
SYS_mount_setattr = 442
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(target: str, attr_set: int, attr_clr: int = 0,
                  flags: int = AT_RECURSIVE | AT_SYMLINK_NOFOLLOW) -> None:
    """Set/clear MOUNT_ATTR_* on the mount at ``target`` (and every mount below it with
    AT_RECURSIVE, in one atomic step). ENOSYS on kernels before 5.12."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_libc.syscall(SYS_mount_setattr, ctypes.c_int(AT_FDCWD), _b(target),
                         ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(32)),
           "mount_setattr", target)


# openat2(2) (Linux 5.6): path resolution the kernel confines to a directory.
SYS_openat2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): ``path`` opened with ``resolve`` rules (e.g. RESOLVE_IN_ROOT: every
    symlink and ``..`` stays under ``dir_fd``, atomically). ENOSYS before Linux 5.6."""
    how = _OpenHow(flags, mode, resolve)
    return _check(_libc.syscall(SYS_openat2, ctypes.c_int(dir_fd), _b(path), ctypes.byref(how),
                                ctypes.c_size_t(ctypes.sizeof(how))), "openat2", path)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make new_root the root of the calling mount namespace."""
    _check(_libc.syscall(SYS_pivot_root, _b(new_root), _b(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    """sethostname(2) in the caller's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments."""
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), "prctl")


def make_non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: a process that is about to enter a container (still the host's
    python) stays out of the container's reach: no ptrace, no /proc/<pid>/exe, fd/, mem
    or environ for anyone without CAP_SYS_PTRACE. exec of the container's command resets it
    (runc does the same before it joins)."""
    prctl(PR_SET_DUMPABLE, 0)


def set_name(name: str) -> None:
    """Set the calling thread's comm name (shown by ps), at most 15 bytes."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(ctypes.c_int(PR_SET_NAME), buf, 0, 0, 0), "prctl(PR_SET_NAME)")


def bpf_syscall(cmd: int, attr_address: int, size: int, what: str = "bpf") -> int:
    """bpf(2) with a union bpf_attr at ``attr_address`` (see runtime/linux/bpf.py)."""
    return _check(_libc.syscall(SYS_bpf, ctypes.c_int(cmd), ctypes.c_void_p(attr_address),
                                ctypes.c_uint(size)), what)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index, shift in ((0, 0), (1, 32)):
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(SYS_capset, ctypes.byref(header), ctypes.byref(data)), "capset")


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return (effective, permitted, inheritable) masks of a thread (0: the caller)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.syscall(SYS_capget, ctypes.byref(header), ctypes.byref(data)), "capget")
    eff, perm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                      for f in ("effective", "permitted", "inheritable"))
    return eff, perm, inh


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp_filter(program: bytes) -> None:
    """Install a classic-BPF seccomp filter (8 bytes per instruction) on the calling thread.

    The caller must have set no_new_privs or hold CAP_SYS_ADMIN.
    """
    if len(program) % 8:
        raise ValueError("seccomp program length is not a multiple of 8")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.byref(prog), 0, 0), "prctl(PR_SET_SECCOMP)")


# Appended for runtime/linux/capabilities.py and paths_policy.py.
PR_SET_KEEPCAPS = 8  # keep the permitted set across setuid() from 0 to non-zero
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21


def reset_signals(status_path: str = "/proc/self/status") -> None:
    """Every ignored signal back to its default action and the signal mask emptied.

    Both survive exec: a command would inherit whatever its caller's callers ignored or
    blocked (Python itself ignores SIGPIPE and SIGXFSZ; a shell, make or a CI runner may add
    more). runc's init gives the command default dispositions and an empty mask; so do we.
    The raw system call, because glibc refuses to touch the signals it reserves (32, 33), which
    a caller may still have ignored.
    """
    with open(status_path, "rb") as handle:
        status = handle.read()
    ignored = int(status.split(b"SigIgn:\t", 1)[1][:16], 16)
    blocked = int(status.split(b"SigBlk:\t", 1)[1][:16], 16)
    default = (ctypes.c_ulong * 4)()  # handler SIG_DFL, flags, restorer, mask: all zero
    signum = 1
    while ignored:
        if ignored & 1:
            _libc.syscall(SYS_rt_sigaction, ctypes.c_int(signum), default, None,
                          ctypes.c_size_t(8))
        ignored >>= 1
        signum += 1
    if blocked:
        empty = ctypes.c_ulong(0)
        _check(_libc.syscall(SYS_rt_sigprocmask, ctypes.c_int(SIG_SETMASK), ctypes.byref(empty),
                             None, ctypes.c_size_t(8)), "rt_sigprocmask")
