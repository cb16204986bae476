"""Content addresses (``sha256:<64 lowercase hex>``) from outside, checked before use.

Digests from image configs (diff_ids), manifests, archives and registries name directories and
files of the store and go into registry URLs: one that is not exactly a sha256 digest (say
``sha256:../../../etc``) must be refused before any path is built from it. Kept free of ``re``
because the container start path imports it.
"""

from __future__ import annotations

from isoinspect.runtime.errors import IsoinspectError

_HEX = frozenset("0123456789abcdef")


def is_hex64(value: object) -> bool:
    """True for exactly 64 lowercase hex digits (an image id, a digest without its algorithm)."""
    return is_hex(value, 64)


def is_hex(value: object, length: int) -> bool:
    """True for exactly ``length`` lowercase hex digits (12: a short container id)."""
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def check(value: object, what: str = "digest") -> str:
    """Return ``value`` if it is ``sha256:<64 lowercase hex>``; raise IsoinspectError if not.

    ``what`` names the field in the message, as Docker does ("invalid diffID").
    """
    if isinstance(value, str) and value.startswith("sha256:") and is_hex64(value[7:]):
        return value
    shown = repr(value)[:100] if not isinstance(value, str) else repr(value[:100])
    raise IsoinspectError(f"invalid {what} {shown}: expected sha256:<64 lowercase hex digits>")


def hex_of(value: object, what: str = "digest") -> str:
    """The 64 hex digits of a checked ``sha256:`` digest."""
    return check(value, what)[7:]


def config_diff_ids(config: object) -> list[str]:
    """``rootfs.diff_ids`` of an image config, each checked (raises on anything else)."""
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise IsoinspectError("image config has no rootfs.diff_ids list")
    return [check(diff, "diffID") for diff in diff_ids]
