"""The default seccomp profile, modelled on Docker's, compiled once and cached as raw BPF.

Docker's default profile is an allow-list with default action EPERM. This one is the same
policy turned around, for a container without extra capabilities: everything is allowed except
what Docker's profile refuses to such a container, which gets EPERM (mount, unshare, setns,
module loading, kexec, bpf, perf_event_open, keyrings, clock setting, ...), plus:
- clone with any CLONE_NEW* flag in its flags: EPERM (Docker: clone allowed only when
  ``flags & 0x7E020000 == 0``);
- clone3: ENOSYS, so libc falls back to clone, whose flags a filter can see (Docker does the
  same: seccomp cannot read clone3's flags, which sit in user memory);
- personality: only the values Docker allows (PER_LINUX 0x0, PER_LINUX32 0x8, UNAME26 0x20000,
  PER_LINUX32|UNAME26 0x20008, and the query 0xffffffff); any other value: EPERM;
- any other architecture than the native one, and the x32 ABI on x86_64: the process is killed
  (SIGSYS). A deny-list names native syscall numbers only, so other ABIs must not get through.
  Docker instead allows x86 and x32 with its allow-list; 32-bit programs do not run here.
Differences from Docker's current profile, on purpose or by the brief: ptrace, kcmp and
process_vm_readv/writev are refused (Docker allows them on kernels >= 4.8); io_uring is refused
as in moby 25 and later. Docker lifts some refusals when a capability is added (CAP_SYS_ADMIN:
mount, unshare...); this profile does not (yet): a container with --cap-add SYS_ADMIN still gets
EPERM from them, use no seccomp for that.

Start path: ``load_default_filter_bytes`` reads a cached file and nothing else; libseccomp's
``seccomp`` module is imported only to build the file the first time (and ``hashlib`` only by
``definition_digest``). The file name carries the SHA-256 of the profile definition,
``PROFILE_DIGEST``: a unit test checks that the constant matches, so change both together. The
cached bytes are for the architecture that built them (the cache directory is per host).
Read the bytes *before* pivot_root: the cache lives on the host's file system.
"""

from __future__ import annotations

import errno
import os

from isoinspect.runtime.fsutil import write_atomic

DEFAULT_CACHE_DIR = "/var/lib/isoinspect/seccomp"

# Bumped when the way the definition is compiled changes (not the definition itself).
PROFILE_FORMAT = 1

# Refused with EPERM. Names the native architecture lacks (vm86, stime, umount on x86_64) or
# libseccomp does not know are left out when compiling.
EPERM_SYSCALLS = (
    "_sysctl", "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "quotactl_fd", "reboot", "request_key", "set_mempolicy", "set_mempolicy_home_node", "setns",
    "settimeofday", "stime", "swapoff", "swapon", "sysfs", "syslog", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
)
# Refused with ENOSYS ("not implemented"), so that callers fall back to an older call.
ENOSYS_SYSCALLS = ("clone3",)
# CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET
# (clone() cannot take CLONE_NEWTIME: that bit is part of the exit signal byte there).
CLONE_NAMESPACE_FLAGS = 0x7E020000
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# SHA-256 of definition_text(); tests/unit/test_linux_security_seccomp.py checks it.
PROFILE_DIGEST = "db6c228a8b0a52318066785bc028e46db0e6bab16ce1904898339aff165f851c"


def definition_text() -> str:
    """The profile definition as canonical text: what PROFILE_DIGEST is the hash of."""
    return repr((
        ("format", PROFILE_FORMAT),
        ("default", "allow"),
        ("bad_arch", "kill_process"),
        ("eperm", tuple(sorted(EPERM_SYSCALLS))),
        ("enosys", tuple(sorted(ENOSYS_SYSCALLS))),
        ("clone_ns_flags_eperm", CLONE_NAMESPACE_FLAGS),
        ("personality_allowed", tuple(sorted(PERSONALITY_ALLOWED))),
    ))


def definition_digest() -> str:
    """SHA-256 (hex) of ``definition_text()``; imports hashlib, so not for the start path."""
    import hashlib
    return hashlib.sha256(definition_text().encode()).hexdigest()


def cache_path(cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    return os.path.join(cache_dir, f"default-{PROFILE_DIGEST}.bpf")


def _masked_blocks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] with aligned power-of-two blocks as (mask, value): x in block iff
    x & mask == value (the same cover as a CIDR list of an address range)."""
    blocks = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 32
        while size > hi - lo + 1:
            size >>= 1
        blocks.append((~(size - 1) & 0xFFFFFFFF, lo))
        lo += size
    return blocks


def personality_denied_blocks() -> list[tuple[int, int]]:
    """(mask, value) pairs covering every 32-bit personality value not in PERSONALITY_ALLOWED.

    libseccomp allows one comparison per argument in a rule, so "not any of these values" is
    written as several rules of one masked comparison each. The kernel reads the argument as
    an unsigned int, so the masks only look at the low 32 bits, like the kernel.
    """
    blocks = []
    previous = -1
    for allowed in sorted(PERSONALITY_ALLOWED) + [1 << 32]:
        if allowed - previous > 1:
            blocks.extend(_masked_blocks(previous + 1, allowed - 1))
        previous = allowed
    return blocks


def _clone_flags_arg() -> int:
    # s390 swaps clone's first two arguments; everywhere else the flags come first.
    return 1 if os.uname().machine.startswith("s390") else 0


def compile_default_profile() -> bytes:
    """Compile the profile for the native architecture with libseccomp; returns BPF bytes."""
    import tempfile

    import seccomp

    digest = definition_digest()
    if digest != PROFILE_DIGEST:
        raise RuntimeError(f"seccomp profile definition changed: set PROFILE_DIGEST = "
                           f"{digest!r} in {__name__}")
    native = seccomp.Arch.NATIVE
    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    filt.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    filt.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)  # binary search over syscall numbers
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in sorted(EPERM_SYSCALLS):
        if seccomp.resolve_syscall(native, name) >= 0:  # < 0: not a syscall of this arch
            filt.add_rule(eperm, name)
    for name in sorted(ENOSYS_SYSCALLS):
        if seccomp.resolve_syscall(native, name) >= 0:
            filt.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
    flags_arg = _clone_flags_arg()
    for bit in range(64):
        flag = 1 << bit
        if CLONE_NAMESPACE_FLAGS & flag:
            filt.add_rule(eperm, "clone", seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))
    for mask, value in personality_denied_blocks():
        filt.add_rule(eperm, "personality", seccomp.Arg(0, seccomp.MASKED_EQ, mask, value))
    with tempfile.TemporaryFile() as handle:
        filt.export_bpf(handle)
        handle.seek(0)
        program = handle.read()
    if not program or len(program) % 8:
        raise RuntimeError(f"libseccomp exported a {len(program)}-byte program")
    return program


def _read_trusted(path: str) -> bytes | None:
    """The cached program, or None when missing, malformed, or writable by another user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # missing, or a cache directory that cannot be one: build
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None  # someone else could have weakened it: rebuild over it
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    program = b"".join(chunks)
    return program if program and len(program) % 8 == 0 else None


def load_default_filter_bytes(cache_dir: str = DEFAULT_CACHE_DIR) -> bytes:
    """The default profile as raw classic-BPF bytes, from the cache (built there if missing)."""
    return cached_program(cache_path(cache_dir), compile_default_profile)


def cached_program(path: str, build) -> bytes:
    """The program cached at ``path``, or ``build()`` stored there for next time.

    The cache file must belong to the caller's effective uid and not be group/world writable,
    otherwise it is rebuilt. When the cache cannot be written (read-only /var/lib, a full
    disk), the program is compiled and returned anyway.
    """
    program = _read_trusted(path)
    if program is not None:
        return program
    program = build()
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        write_atomic(path, program, fsync=True)
    except OSError:
        pass
    return program


def apply_filter(program: bytes) -> None:
    """Install the filter on the calling thread (its children inherit it).

    Needs no_new_privs set (prctl PR_SET_NO_NEW_PRIVS) or CAP_SYS_ADMIN. Everything the
    profile refuses (mount, unshare...) must have been done before.
    """
    from isoinspect.runtime.linux import syscalls
    syscalls.load_seccomp_filter(program)
