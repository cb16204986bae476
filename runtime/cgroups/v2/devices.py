"""v2 devices: cgroup v2 has no devices files; access control needs an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. Not implemented: a documented no-op that
apply() warns about and stats() reports."""

from __future__ import annotations

NAME = "devices"
SECTION = "devices"
NOT_ENFORCED = "not enforced on v2 (needs BPF_CGROUP_DEVICE)"


def needed(res) -> bool:
    return res.device_rules is not None  # only to warn: there is no file to write


def apply(directory: str, res) -> list[str]:
    return [f"devices: {NOT_ENFORCED}"] if res.device_rules else []


def stats(directory: str) -> dict | None:
    return {"enforced": False, "note": NOT_ENFORCED}
