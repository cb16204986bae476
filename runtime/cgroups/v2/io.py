"""v2 io controller: io.max, one line per device "MAJ:MIN rbps=N wbps=N riops=N wiops=N"
("max" lifts a limit; the v1-style value 0 maps to it), and the weight (io.bfq.weight or
io.weight, "default N"). figures.py reads io.stat
("MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N")."""

from __future__ import annotations

from .. import fs

NAME = "io"
KEYS = (("blkio_read_bps", "rbps"), ("blkio_write_bps", "wbps"),
        ("blkio_read_iops", "riops"), ("blkio_write_iops", "wiops"))


WEIGHT_FILES = ("io.bfq.weight", "io.weight")


def needed(res) -> bool:
    return res.blkio_weight is not None or \
        any(getattr(res, field) is not None for field, _ in KEYS)


def apply(directory: str, res) -> list[str]:
    per_device: dict[str, list[str]] = {}
    for field, key in KEYS:
        for major, minor, value in getattr(res, field) or ():
            per_device.setdefault(f"{major}:{minor}", []).append(f"{key}={value or 'max'}")
    for device, settings in per_device.items():
        fs.write_value(directory, "io.max", device + " " + " ".join(settings))
    if res.blkio_weight is not None:
        fs.write_first_present(directory, WEIGHT_FILES, f"default {res.blkio_weight}",
                               "io weight")
    return []
