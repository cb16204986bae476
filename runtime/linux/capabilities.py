"""Linux capabilities: the name<->number table, Docker's default set, and dropping them.

A capability set is handled as an int bit mask (bit n = capability number n), the form capset(2)
and /proc/<pid>/status (CapEff, CapBnd...) use.

What a container process gets, as Docker does it (moby ``oci.SetCapabilities`` since 20.10.14,
the fix for CVE-2022-24769):
- bounding set = the mask, for every user: the most any later exec (set-uid or file capabilities
  included) can ever give back;
- user 0: effective = permitted = the mask; inheritable and ambient empty;
- any other user: effective = permitted = inheritable = ambient = empty, which is also what
  execve() leaves a non-root process without file capabilities.
Inheritable stays empty even for root (the brief suggested mask): a non-empty inheritable set
is what CVE-2022-24769 was about, it would hand the mask to programs with inheritable file
capabilities run by a non-root user.

The order the container child must use (the one runc uses), done by ``switch_user``:
 1. drop the bounding set      PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set
 2. clear ambient
 3. PR_SET_KEEPCAPS=1          so setuid() to non-zero does not wipe the permitted set (with
                               Docker's rule a non-root user ends with nothing anyway, so
                               this matters only if non-root users ever get capabilities)
 4. setgroups, setresgid, setresuid   these need CAP_SETGID/CAP_SETUID, still effective here
 5. PR_SET_KEEPCAPS=0
 6. capset(effective, permitted, inheritable)   last: it removes the powers the steps above use
Anything else that needs privileges (rlimits above the hard limit, mounts, sethostname) comes
before; no_new_privs and seccomp may come after (with no_new_privs set, seccomp needs no
capability). After the set-up, exec.

Only os is imported at module level: this module is on the container start path. The ctypes
wrappers (``syscalls``) are imported by the functions that make system calls.
"""

from __future__ import annotations

import os

# Index = capability number (linux/capability.h), names without the CAP_ prefix.
CAPABILITY_NAMES = (
    "CHOWN",               # 0
    "DAC_OVERRIDE",        # 1
    "DAC_READ_SEARCH",     # 2
    "FOWNER",              # 3
    "FSETID",              # 4
    "KILL",                # 5
    "SETGID",              # 6
    "SETUID",              # 7
    "SETPCAP",             # 8
    "LINUX_IMMUTABLE",     # 9
    "NET_BIND_SERVICE",    # 10
    "NET_BROADCAST",       # 11
    "NET_ADMIN",           # 12
    "NET_RAW",             # 13
    "IPC_LOCK",            # 14
    "IPC_OWNER",           # 15
    "SYS_MODULE",          # 16
    "SYS_RAWIO",           # 17
    "SYS_CHROOT",          # 18
    "SYS_PTRACE",          # 19
    "SYS_PACCT",           # 20
    "SYS_ADMIN",           # 21
    "SYS_BOOT",            # 22
    "SYS_NICE",            # 23
    "SYS_RESOURCE",        # 24
    "SYS_TIME",            # 25
    "SYS_TTY_CONFIG",      # 26
    "MKNOD",               # 27
    "LEASE",               # 28
    "AUDIT_WRITE",         # 29
    "AUDIT_CONTROL",       # 30
    "SETFCAP",             # 31
    "MAC_OVERRIDE",        # 32
    "MAC_ADMIN",           # 33
    "SYSLOG",              # 34
    "WAKE_ALARM",          # 35
    "BLOCK_SUSPEND",       # 36
    "AUDIT_READ",          # 37
    "PERFMON",             # 38
    "BPF",                 # 39
    "CHECKPOINT_RESTORE",  # 40
)
CAPABILITY_NUMBERS = {name: number for number, name in enumerate(CAPABILITY_NAMES)}
LAST_KNOWN_CAP = len(CAPABILITY_NAMES) - 1
ALL_MASK = (1 << len(CAPABILITY_NAMES)) - 1

# Docker's default set (moby oci/caps/defaults.go), in its order.
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def cap_number(name: str) -> int:
    """Number of a capability: "NET_ADMIN", "CAP_NET_ADMIN" and "net_admin" are all 12."""
    key = name.strip().upper()
    if key.startswith("CAP_"):
        key = key[4:]
    try:
        return CAPABILITY_NUMBERS[key]
    except KeyError:
        raise ValueError(f"unknown capability: {name!r}") from None


def cap_name(number: int) -> str:
    """Canonical name of a capability number, with the prefix: 12 -> "CAP_NET_ADMIN"."""
    if not 0 <= number <= LAST_KNOWN_CAP:
        raise ValueError(f"unknown capability number: {number}")
    return "CAP_" + CAPABILITY_NAMES[number]


def mask_of(names: list[str] | tuple[str, ...]) -> int:
    """Bit mask of capability names (no "ALL" here)."""
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def names_of(mask: int) -> list[str]:
    """Canonical names (CAP_...) of the known capabilities set in a mask, lowest first."""
    return [cap_name(n) for n in range(LAST_KNOWN_CAP + 1) if mask >> n & 1]


DEFAULT_MASK = mask_of(DEFAULT_CAPABILITIES)  # 0xa80425fb, CapEff of a default Docker container


def _is_all(name: str) -> bool:
    return name.strip().upper() in ("ALL", "CAP_ALL")


def parse_capabilities(add: list[str] | tuple[str, ...] = (),
                       drop: list[str] | tuple[str, ...] = ()) -> int:
    """Mask of --cap-add/--cap-drop applied to Docker's default set, with Docker's precedence.

    - "ALL" in add: every known capability except the ones named in drop;
    - else "ALL" in drop: only the ones named in add;
    - else: the default set, minus drop, plus add (add wins over drop for the same name).
    Unknown names raise ValueError (one line), whichever list they are in.
    """
    add_all = any(_is_all(n) for n in add)
    drop_all = any(_is_all(n) for n in drop)
    add_mask = mask_of([n for n in add if not _is_all(n)])
    drop_mask = mask_of([n for n in drop if not _is_all(n)])
    if add_all:
        return ALL_MASK & ~drop_mask
    if drop_all:
        return add_mask
    return (DEFAULT_MASK & ~drop_mask) | add_mask


def last_cap(root: str = "/") -> int:
    """Highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap).

    ``root`` is the directory /proc is found under (tests point it at a temporary tree).
    Kernels older than 3.2 lack the file: then the highest number this table knows.
    """
    try:
        with open(os.path.join(root, "proc/sys/kernel/cap_last_cap"), "rb") as handle:
            return int(handle.read())
    except FileNotFoundError:
        return LAST_KNOWN_CAP


def _syscalls():
    from isoinspect.runtime.linux import syscalls
    return syscalls


def drop_bounding_set(mask: int, last: int | None = None) -> None:
    """Remove every capability 0..last that is not in mask from the bounding set.

    Needs CAP_SETPCAP in the effective set. A capability that is already out of the bounding
    set is not an error, even without CAP_SETPCAP.
    """
    sc = _syscalls()
    if last is None:
        last = last_cap()
    for number in range(last + 1):
        if mask >> number & 1:
            continue
        try:
            sc.prctl(sc.PR_CAPBSET_DROP, number)
        except OSError:
            if sc.prctl(sc.PR_CAPBSET_READ, number) != 0:
                raise


def clear_ambient() -> None:
    """Empty the ambient set (kernels before 4.3 have none: EINVAL is ignored)."""
    sc = _syscalls()
    try:
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != 22:  # EINVAL: no ambient capabilities on this kernel
            raise


def _kernel_mask(mask: int, last: int) -> int:
    return mask & ((1 << (last + 1)) - 1)


def _capset(sc, granted: int) -> None:
    """capset(granted, granted, 0); EPERM names the capabilities this process lacks itself."""
    try:
        sc.capset(granted, granted, 0)
    except PermissionError:
        missing = granted & ~sc.capget()[1]
        if not missing:
            raise
        raise PermissionError(1, "capset: the runtime itself lacks "
                              + ", ".join(names_of(missing))) from None


def apply_capabilities(mask: int) -> None:
    """Restrict the calling root process to ``mask`` for good (steps 1, 2 and 6 of the order).

    For a process that stays uid 0: bounding set = mask, ambient and inheritable empty,
    effective = permitted = mask. Capabilities the running kernel does not know are ignored.
    A non-root container user must go through ``switch_user`` instead: once the uid is not 0,
    capset can no longer raise anything.
    """
    last = last_cap()
    mask = _kernel_mask(mask, last)
    drop_bounding_set(mask, last)
    clear_ambient()
    _capset(_syscalls(), mask)


def switch_user(uid: int, gid: int, groups: list[int] | tuple[int, ...], mask: int) -> None:
    """Become the container user with Docker's capabilities, in runc's order (see module doc).

    uid 0 ends with effective = permitted = bounding = mask; any other uid with only the
    bounding set = mask and every other set empty (CapEff 0), so only a set-uid-root or
    file-capability binary can regain capabilities, and never more than mask.
    """
    sc = _syscalls()
    last = last_cap()
    mask = _kernel_mask(mask, last)
    drop_bounding_set(mask, last)
    clear_ambient()
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    _capset(sc, mask if uid == 0 else 0)
