"""Byte counts as the docker CLI prints them (go-units): decimal ``646B``, ``1.23kB``,
``4.5MB`` (HumanSizeWithPrecision, 3 digits: images, history, stats' I/O) and binary
``316KiB``, ``23.54GiB`` (BytesSize, 4 digits: stats' memory)."""

from __future__ import annotations

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _scaled(size: float, base: float, units: tuple[str, ...], digits: int) -> str:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return f"{size:.{digits}g}{units[index]}"


def human_size(size: float) -> str:
    """Decimal units, 3 significant digits."""
    return _scaled(float(size), 1000.0, _DECIMAL, 3)


def bytes_size(size: float) -> str:
    """Binary units, 4 significant digits."""
    return _scaled(float(size), 1024.0, _BINARY, 4)
