"""Address allocation per network: a JSON map {address: holder} guarded by flock.

Every change happens under an exclusive flock on <network>.lock, so concurrent starts (any
process, any --root) never get the same address. A holder records who owns the address (the
container's id, name, pid and start ticks, its hosts file, its proxy), which lets ``gc`` give back
addresses of containers that died without their monitor.
"""

from __future__ import annotations

import fcntl
import os

from isoinspect.runtime import json_lite
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import write_atomic
from isoinspect.runtime.network import addresses


class Ipam:
    """The allocations of one network; use ``with Ipam(...) as ipam:`` to hold the lock."""

    def __init__(self, directory: str, network: dict) -> None:
        self.network = network
        self.path = os.path.join(directory, f"{network['name']}.json")
        self.lock_path = os.path.join(directory, f"{network['name']}.lock")
        self._fd = -1
        self.holders: dict[str, dict] = {}
        self._saved = ""  # the file's text as read: unchanged holders are not written back

    def __enter__(self) -> "Ipam":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            with open(self.path) as handle:
                self._saved = handle.read()
            self.holders = json_lite.loads(self._saved)
        except FileNotFoundError:
            self.holders = {}
        except ValueError:
            self.holders = {}  # a torn write cannot happen (rename), but never wedge starts
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._save()
        finally:
            os.close(self._fd)
            self._fd = -1

    def _save(self) -> None:
        text = json_lite.dumps(self.holders)
        if text != self._saved:  # a stop already undone (rm after the monitor): no write
            write_atomic(self.path, text.encode())
            self._saved = text

    def allocate(self, holder: dict) -> str:
        """The lowest free address of the subnet (not the gateway); record its holder."""
        subnet = self.network["subnet"]
        gateway = self.network["gateway"]
        for address in addresses.hosts(subnet):
            text = addresses.to_text(address)
            if text != gateway and text not in self.holders:
                self.holders[text] = holder
                return text
        raise IsoinspectError(f"no free address left in network {self.network['name']} "
                              f"({subnet})")

    def find(self, container_id: str) -> str | None:
        for address, holder in self.holders.items():
            if holder["id"] == container_id:
                return address
        return None

    def release(self, container_id: str) -> dict | None:
        """Forget the container's address; return its holder (None if it had none)."""
        address = self.find(container_id)
        return None if address is None else self.holders.pop(address)
