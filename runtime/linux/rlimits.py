"""Resource limits: Docker's --ulimit syntax, the default set, and setrlimit in the child.

A limit is a tuple ``(name, soft, hard)`` with Docker's names (``nofile``, ``nproc``...) and
``resource.RLIM_INFINITY`` for "unlimited". Limits are applied in the container child before
capabilities are dropped: raising a hard limit needs CAP_SYS_RESOURCE, which Docker's default
set does not keep.
"""

from __future__ import annotations

import errno
import os
import resource

# Docker's --ulimit names (go-units ulimit.go) -> RLIMIT_* numbers (asm-generic/resource.h;
# Python's resource module lacks RLIMIT_LOCKS).
RLIMIT_NUMBERS = {
    "cpu": 0,
    "fsize": 1,
    "data": 2,
    "stack": 3,
    "core": 4,
    "rss": 5,
    "nproc": 6,
    "nofile": 7,
    "memlock": 8,
    "locks": 10,
    "sigpending": 11,
    "msgqueue": 12,
    "nice": 13,
    "rtprio": 14,
    "rttime": 15,
}
INFINITY = resource.RLIM_INFINITY

# What a container gets without --ulimit: 1048576 open files, as under dockerd/containerd
# started by systemd (LimitNOFILE=1048576). ``default_rlimits`` fits it to the kernel.
DEFAULT_RLIMITS = (("nofile", 1048576, 1048576),)


def _parse_value(text: str, spec: str) -> int:
    value = text.strip().lower()
    if value in ("unlimited", "infinity", "-1"):
        return INFINITY
    try:
        number = int(value, 10)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"invalid ulimit value {text!r} in {spec!r}")
    return number


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    """Parse Docker's ``name=soft[:hard]`` ("nofile=1024:2048", "core=0", "nproc=-1").

    Without ``:hard`` the hard limit equals the soft one. -1 and "unlimited" mean no limit.
    Errors raise ValueError with a one-line message.
    """
    name, sep, values = spec.partition("=")
    name = name.strip().lower()
    if not sep or not name or not values.strip():
        raise ValueError(f"invalid ulimit {spec!r}: expected name=soft[:hard]")
    if name not in RLIMIT_NUMBERS:
        raise ValueError(f"invalid ulimit type: {name!r} (one of {', '.join(RLIMIT_NUMBERS)})")
    soft_text, sep, hard_text = values.partition(":")
    soft = _parse_value(soft_text, spec)
    hard = _parse_value(hard_text, spec) if sep else soft
    if _order(soft) > _order(hard):
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft_text.strip()} > {hard_text.strip()} in {spec!r}")
    return name, soft, hard


def _order(value: int) -> int:
    # RLIM_INFINITY is -1 in Python's resource module on some builds, huge on others.
    return 1 << 64 if value == INFINITY or value < 0 else value


def merge_rlimits(base: list[tuple[str, int, int]],
                  overrides: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """base with each name in overrides replaced (or added), in base's order then new ones."""
    merged = {name: (name, soft, hard) for name, soft, hard in base}
    for name, soft, hard in overrides:
        merged[name] = (name, soft, hard)
    return list(merged.values())


def nr_open(root: str = "/") -> int | None:
    """The kernel's ceiling for RLIMIT_NOFILE (/proc/sys/fs/nr_open), None when unreadable."""
    try:
        with open(os.path.join(root, "proc/sys/fs/nr_open"), "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def _can_raise_hard_limits(root: str) -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (bit 24 of CapEff), which raising a hard
    limit takes. (The kernel checks it in the initial user namespace; inside another one the
    answer may be too hopeful.)"""
    try:
        with open(os.path.join(root, "proc/self/status"), "rb") as handle:
            for line in handle:
                if line.startswith(b"CapEff:"):
                    return bool(int(line[7:], 16) >> 24 & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def default_rlimits(root: str = "/") -> list[tuple[str, int, int]]:
    """DEFAULT_RLIMITS made possible here, so that defaults never fail a start:
    - nofile no higher than fs.nr_open: setrlimit refuses anything above it, even to root;
    - without CAP_SYS_RESOURCE a hard limit cannot be raised: then no higher than the
      caller's current hard limit (the host's value is kept).
    An explicit --ulimit is not adjusted: it fails loudly in apply_rlimits instead.
    """
    ceiling = nr_open(root)
    can_raise = None
    limits = []
    for name, soft, hard in DEFAULT_RLIMITS:
        if name == "nofile" and ceiling is not None:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        current_hard = resource.getrlimit(RLIMIT_NUMBERS[name])[1]
        if _order(hard) > _order(current_hard):
            if can_raise is None:
                can_raise = _can_raise_hard_limits(root)
            if not can_raise:
                hard = current_hard
                soft = soft if _order(soft) <= _order(hard) else hard
        limits.append((name, soft, hard))
    return limits


def apply_rlimits(limits: list[tuple[str, int, int]]) -> None:
    """setrlimit for each (name, soft, hard); an error is an OSError naming the limit.

    Raising a hard limit needs CAP_SYS_RESOURCE, and nofile can never exceed fs.nr_open.
    """
    for name, soft, hard in limits:
        try:
            resource.setrlimit(RLIMIT_NUMBERS[name], (soft, hard))
        except (OSError, ValueError) as exc:
            # resource turns EPERM and EINVAL into ValueError and drops the errno.
            err = getattr(exc, "errno", None) or (
                errno.EPERM if "not allowed" in str(exc) else errno.EINVAL)
            raise OSError(err, f"setrlimit {name}={soft}:{hard}: {exc}") from None
