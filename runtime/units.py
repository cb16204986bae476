"""Parsers for Docker-style flag values (--memory 64m, --cpus 0.5, -u 1000:1000, -e K=V).

Each raises UsageError with a one-line message naming the flag and the bad value.
"""

from __future__ import annotations

import os

from isoinspect.runtime.errors import UsageError

_SIZE_SUFFIXES = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
                  "p": 1 << 50}
CFS_PERIOD_US = 100_000
INT64_MAX = (1 << 63) - 1  # what Docker's flags (Go int64) and the cgroup files can hold
UID_MAX = (1 << 32) - 2  # uid_t is 32 bits and (uid_t)-1 means "unchanged"


def size_in_bytes(text: str) -> int:
    """'64m' -> 67108864, with integer arithmetic only; UsageError when not a size.

    Docker's grammar (go-units RAMInBytes): digits, at most one decimal fraction, an optional
    unit k/m/g/t/p and an optional 'i'/'b' tail ('64MiB', '64mb'). No exponents, no signs,
    no nan/inf: '1e30' is not a size. Values above int64 are refused, not wrapped.
    """
    raw = text.strip().lower()
    for tail in ("ib", "b"):
        if len(raw) > len(tail) and raw.endswith(tail) and raw[-len(tail) - 1] in "kmgtp":
            raw = raw[: -len(tail)]
            break
    number, suffix = raw, ""
    if raw and raw[-1] in _SIZE_SUFFIXES:
        number, suffix = raw[:-1].rstrip(" "), raw[-1]
    whole, dot, fraction = number.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (dot and not (fraction.isascii()
                                                                and fraction.isdigit())):
        raise UsageError("expected a size like 64m, 512k or 1g")
    scale = _SIZE_SUFFIXES[suffix]
    amount = int(whole) * scale
    if fraction:
        amount += int(fraction) * scale // 10 ** len(fraction)
    if amount > INT64_MAX:
        raise UsageError("value out of range")
    return amount


def parse_bytes(value: str | int, flag: str = "--memory") -> int:
    """'64m' -> 67108864; '1g', '512k', '1048576', '1.5g' and '64MiB'/'64mb' like Docker."""
    if isinstance(value, int):
        if not 0 <= value <= INT64_MAX:
            raise UsageError(f"invalid value {value!r} for {flag}: value out of range")
        return value
    try:
        return size_in_bytes(value)
    except UsageError as exc:
        raise UsageError(f"invalid value {value!r} for {flag}: {exc}") from None


def parse_memory_swap(value: str, flag: str = "--memory-swap") -> int:
    """Docker semantics: total of memory and swap in bytes, -1 for unlimited swap."""
    if value.strip() == "-1":
        return -1
    return parse_bytes(value, flag)


def parse_cpus(value: str | float, flag: str = "--cpus") -> tuple[int, int]:
    """'0.5' -> (quota_us, period_us) = (50000, 100000), as Docker derives CFS quota."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid value {value!r} for {flag}: expected a number of CPUs "
                              "like 0.5 or 2") from None
    if not cpus > 0 or cpus > 4096:
        raise UsageError(f"invalid value {value!r} for {flag}: must be greater than 0")
    quota = int(round(cpus * CFS_PERIOD_US))
    if quota < 1000:
        raise UsageError(f"invalid value {value!r} for {flag}: below the 0.01 CPU minimum")
    return quota, CFS_PERIOD_US


def parse_int(value: str | int, flag: str, minimum: int | None = None,
              maximum: int = INT64_MAX) -> int:
    """An integer flag value (a Go int64 in Docker) with optional bounds."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid value {value!r} for {flag}: expected an integer") from None
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise UsageError(f"invalid value {value!r} for {flag}: value out of range")
    if minimum is not None and number < minimum:
        raise UsageError(f"invalid value {value!r} for {flag}: must be at least {minimum}")
    if number > maximum:
        raise UsageError(f"invalid value {value!r} for {flag}: must be at most {maximum}")
    return number


def parse_cpuset(value: str, flag: str = "--cpuset-cpus") -> str:
    """'0', '0-1', '0,2-3': checked for shape and against the CPUs this host has."""
    from isoinspect.runtime.cgroups.resources import parse_cpu_list

    text = value.strip()
    try:
        cpus = set(parse_cpu_list(text))
    except ValueError as exc:
        why = str(exc).removeprefix("resources: ")
        raise UsageError(f"invalid value {value!r} for {flag}: {why}") from None
    available = _online_cpus()
    missing = sorted(cpus - available) if available else []
    if missing:
        raise UsageError(f"invalid value {value!r} for {flag}: CPU {missing[0]} is not "
                              f"available on this host")
    return text


def _online_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except OSError:
        return set()


def parse_env(items: list[str] | tuple[str, ...]) -> list[str]:
    """-e K=V entries; a bare -e K takes K from the caller's environment like Docker."""
    result = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise UsageError(f"invalid environment variable {item!r}: empty name")
        if sep:
            result.append(item)
        elif key in os.environ:
            result.append(f"{key}={os.environ[key]}")
    return result


def parse_user(value: str) -> tuple[str, str | None]:
    """'-u UID[:GID]' or names: returns the two parts, resolved later inside the image."""
    user, _, group = value.partition(":")
    if not user:
        raise UsageError(f"invalid value {value!r} for --user: expected UID[:GID]")
    for part in (user, group):
        if part.isdigit() and int(part) > UID_MAX:
            raise UsageError(f"invalid value {value!r} for --user: {part} is above the "
                                  f"largest id, {UID_MAX}")
    return user, (group or None)

