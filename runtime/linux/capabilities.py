"""Linux capabilities: the name<->number table, Docker's default set, and dropping them.

A capability set is handled as an int bit mask (bit n = capability number n), the form capset(2)
and /proc/<pid>/status (CapEff, CapBnd...) use.

What a container process gets is a ``CapSets``: the five sets of an OCI
``process.capabilities`` (bounding, effective, permitted, inheritable, ambient), applied each as
given, the way runc does for a bundle. `isoinspect run` builds them with Docker's rule (moby
``oci.SetCapabilities`` since 20.10.14, the fix for CVE-2022-24769): ``CapSets.docker(mask)``
- bounding set = the mask, for every user: the most any later exec (set-uid or file capabilities
  included) can ever give back;
- user 0: effective = permitted = the mask; inheritable and ambient empty;
- any other user: effective = permitted = inheritable = ambient = empty. The user is only known
  inside the container (a name in its /etc/passwd), so that rule is applied there
  (``CapSets.for_user``).

The order the container child must use (the one runc uses), done by ``switch_user``:
 1. drop the bounding set      PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set
 2. clear ambient
 3. PR_SET_KEEPCAPS=1          so setuid() to non-zero does not wipe the permitted set: a
                               non-root user of a bundle keeps the capabilities it asks for
 4. setgroups, setresgid, setresuid   these need CAP_SETGID/CAP_SETUID, still effective here
 5. PR_SET_KEEPCAPS=0
 6. capset(effective, permitted, inheritable)   it removes the powers the steps above use
 7. raise each ambient capability (PR_CAP_AMBIENT_RAISE): only possible once it is in both
    the permitted and inheritable sets; one that is not is left out silently, as runc does.
    Ambient is what a non-root process keeps across execve (then permitted = effective =
    ambient), so the exec'd command of a non-root user ends with the sets the bundle asks.
Anything else that needs privileges (rlimits above the hard limit, mounts, sethostname) comes
before; no_new_privs and seccomp may come after (with no_new_privs set, seccomp needs no
capability). After the set-up, exec.

Only os and the project's Frozen are imported at module level: this module is on the
container start path. The ctypes
wrappers (``syscalls``) are imported by the functions that make system calls.
"""

from __future__ import annotations

import os

from isoinspect.runtime.frozen import Frozen

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


def known_names(names) -> list[str]:
    """The names this table knows (a newer kernel's capability is left out, not an error)."""
    return [name for name in names if name.strip().upper().removeprefix("CAP_")
            in CAPABILITY_NUMBERS]


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


def _capset(sc, effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset; EPERM names the capabilities this process lacks itself."""
    try:
        sc.capset(effective, permitted, inheritable)
    except PermissionError:
        missing = (permitted | effective) & ~sc.capget()[1]
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
    _capset(_syscalls(), mask, mask)


class CapSets(Frozen):
    """The five capability sets of a container process, as bit masks (OCI
    ``process.capabilities``); ``docker_rule``: a non-root user gets only the bounding set."""

    bounding: int
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0
    docker_rule: bool = False

    @classmethod
    def docker(cls, mask: int) -> "CapSets":
        """Docker's sets for `run` (see the module doc): root gets mask, others nothing."""
        return cls(bounding=mask, effective=mask, permitted=mask, docker_rule=True)

    @classmethod
    def from_oci(cls, section: dict | None) -> "CapSets":
        """An OCI ``process.capabilities`` object: each set as given, absent = empty."""
        section = section or {}
        return cls(**{kind: mask_of(known_names(section.get(kind) or ()))
                      for kind in ("bounding", "effective", "permitted", "inheritable",
                                   "ambient")})

    def for_user(self, uid: int) -> "CapSets":
        """The sets ``uid`` ends with: Docker's rule keeps only bounding for non-root."""
        if self.docker_rule and uid != 0:
            return CapSets(bounding=self.bounding)
        return self


def raise_ambient(mask: int, last: int) -> None:
    """Raise each ambient capability of mask; one not in both permitted and inheritable is
    refused by the kernel (EPERM) and left out, as runc does (kernels before 4.3: EINVAL)."""
    sc = _syscalls()
    for number in range(last + 1):
        if mask >> number & 1:
            try:
                sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, number)
            except OSError as exc:
                if exc.errno not in (1, 22):  # EPERM, EINVAL
                    raise


def switch_user(uid: int, gid: int, groups: list[int] | tuple[int, ...],
                caps: "CapSets | int") -> None:
    """Become the container user with its capability sets, in runc's order (see module doc).

    ``caps`` as an int is Docker's rule for that mask (``CapSets.docker``).
    """
    if isinstance(caps, int):
        caps = CapSets.docker(caps)
    sc = _syscalls()
    last = last_cap()
    sets = caps.for_user(uid)
    drop_bounding_set(_kernel_mask(sets.bounding, last), last)
    clear_ambient()
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    _capset(sc, _kernel_mask(sets.effective, last), _kernel_mask(sets.permitted, last),
            _kernel_mask(sets.inheritable, last))
    if sets.ambient:
        raise_ambient(_kernel_mask(sets.ambient, last), last)
