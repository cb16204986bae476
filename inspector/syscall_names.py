"""Syscall numbers <-> names of this host, from libseccomp's kernel tables (the ones the runtime
compiles its seccomp profile with), so counts, profiles and names agree on one table."""

from __future__ import annotations

import errno
import functools

#: Linux's internal restart codes a sys_exit tracepoint can see (never reach user space)
KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                 515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK"}
#: a scan past the highest number of any Linux ABI (x86_64 ends near 470)
SCAN_LIMIT = 1024


@functools.lru_cache(maxsize=1)
def _seccomp():
    try:
        from isoinspect.runtime.linux.seccomp_profile import _import_seccomp

        return _import_seccomp()
    except Exception:   # no python3-seccomp: numbers stay numbers
        return None


@functools.lru_cache(maxsize=None)
def name_of(nr: int) -> str:
    """'getppid' for 110 on x86_64; 'syscall_N' when the table does not know N."""
    seccomp = _seccomp()
    if seccomp is not None:
        try:
            return seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr).decode()
        except (ValueError, RuntimeError, TypeError):
            pass
    return f"syscall_{nr}"


@functools.lru_cache(maxsize=None)
def number_of(name: str) -> int | None:
    seccomp = _seccomp()
    if seccomp is None:
        return None
    try:
        nr = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    except (ValueError, RuntimeError, TypeError):
        return None
    return nr if nr >= 0 else None   # libseccomp's negative pseudo numbers: not on this ABI


@functools.lru_cache(maxsize=1)
def native_table() -> dict[int, str]:
    """Every syscall number of this host's ABI and its name (empty without libseccomp)."""
    if _seccomp() is None:
        return {}
    return {nr: name_of(nr) for nr in range(SCAN_LIMIT)
            if not name_of(nr).startswith("syscall_")}


def errno_name(code: int) -> str:
    return errno.errorcode.get(code) or KERNEL_ERRNOS.get(code) or f"E{code}"
