"""v1 blkio controller: per-device throttling (blkio.throttle.{read,write}_{bps,iops}_device,
one "MAJ:MIN value" line per write; 0 removes a limit) and the proportional weight
(blkio.bfq.weight, or CFQ's blkio.weight; neither exists under mq-deadline/none). Its counters (blkio.throttle.
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


WEIGHT_FILES = ("blkio.bfq.weight", "blkio.weight")


def needed(res) -> bool:
    return res.blkio_weight is not None or \
        any(getattr(res, field) is not None for field, _ in LIMIT_FILES)


def apply(directory: str, res) -> list[str]:
    for field, name in LIMIT_FILES:
        for major, minor, value in getattr(res, field) or ():
            fs.write_value(directory, name, f"{major}:{minor} {value}")
    if res.blkio_weight is not None:
        fs.write_first_present(directory, WEIGHT_FILES, res.blkio_weight, "blkio weight")
    return []

