"""v1 devices controller: rules written in order, a denying rule to devices.deny and an
allowing one to devices.allow (e.g. "a" to deny all, then "c 1:3 rwm" ...); devices.list is
read by figures.py."""

from __future__ import annotations

from .. import fs
from ..resources import format_device_rule

NAME = "devices"


def needed(res) -> bool:
    return res.device_rules is not None


def apply(directory: str, res) -> list[str]:
    for rule in res.device_rules:
        fs.write_value(directory, "devices.allow" if rule[4] else "devices.deny",
                       format_device_rule(rule))
    return []
