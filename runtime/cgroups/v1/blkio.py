"""v1 blkio controller: per-device throttling (blkio.throttle.{read,write}_{bps,iops}_device,
one "MAJ:MIN value" line per write; 0 removes a limit) and throttled-layer counters
(blkio.throttle.io_service_bytes / io_serviced: "MAJ:MIN Read N" ... "Total N")."""

from __future__ import annotations

from .. import fs

NAME = "blkio"
SECTION = "io"
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


def _per_device(directory: str, name: str, suffix: str) -> dict[str, dict[str, int]] | None:
    text = fs.read_value(directory, name)
    if text is None:
        return None
    devices: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in ("Read", "Write"):
            key = ("read_" if fields[1] == "Read" else "write_") + suffix
            devices.setdefault(fields[0], {})[key] = int(fields[2])
    return devices


def stats(directory: str) -> dict | None:
    service_bytes = _per_device(directory, "blkio.throttle.io_service_bytes", "bytes")
    if service_bytes is None:
        return None
    for device, counts in (_per_device(directory, "blkio.throttle.io_serviced", "ios")
                           or {}).items():
        service_bytes.setdefault(device, {}).update(counts)
    totals = fs.sum_by_key(service_bytes.values(),
                           ("read_bytes", "write_bytes", "read_ios", "write_ios"))
    return {**totals, "devices": service_bytes}
