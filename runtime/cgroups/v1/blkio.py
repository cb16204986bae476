"""v1 blkio controller: per-device throttling (blkio.throttle.{read,write}_{bps,iops}_device,
one "MAJ:MIN value" line per write; 0 removes a limit). Its counters (blkio.throttle.
io_service_bytes / io_serviced) are read by figures.py."""

from __future__ import annotations

from .. import fs

NAME = "blkio"
LIMIT_FILES = (
    ("blkio_read_bps", "blkio.throttle.read_bps_device"),
    ("blkio_write_bps", "blkio.throttle.write_bps_device"),
    ("blkio_read_iops", "blkio.throttle.read_iops_device"),
    ("blkio_write_iops", "blkio.throttle.write_iops_device"),
)


def needed(res) -> bool:
    return any(getattr(res, field) is not None for field, _ in LIMIT_FILES)


def apply(directory: str, res) -> list[str]:
    for field, name in LIMIT_FILES:
        for major, minor, value in getattr(res, field) or ():
            fs.write_value(directory, name, f"{major}:{minor} {value}")
    return []

