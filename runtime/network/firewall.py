"""The forwarding rules our bridges need, in an iptables chain of our own.

Docker sets the FORWARD policy to DROP and loads br_netfilter, so frames between two containers
on the same Linux bridge pass iptables' FORWARD chain and would be dropped. The chain
ISOINSPECT-FORWARD (jumped to first from FORWARD) accepts traffic within each of our bridges and
drops traffic between two of them, so networks stay isolated even on a host that routes. These
are the only host rules we own; they are added when a bridge is made and removed with it.
(pyroute2 has no iptables API: the iptables command is the interface here, as for Docker.)
"""

from __future__ import annotations

import shutil
import subprocess  # only imported when a bridge is made or removed

from isoinspect.runtime.errors import IsoinspectError

CHAIN = "ISOINSPECT-FORWARD"
_ALL_OURS = "isoinspect+"


def _iptables(*args: str, check: bool = True) -> bool:
    binary = shutil.which("iptables") or "/usr/sbin/iptables"
    result = subprocess.run([binary, "-w", "-t", "filter", *args], capture_output=True,
                            text=True)
    if check and result.returncode != 0:
        raise IsoinspectError(f"iptables {' '.join(args)}: {result.stderr.strip()}")
    return result.returncode == 0


def ensure_chain() -> None:
    """Our chain, jumped to from FORWARD, ending with the drop between our bridges."""
    if not _iptables("-n", "-L", CHAIN, check=False):
        _iptables("-N", CHAIN, check=False)
    if not _iptables("-C", "FORWARD", "-j", CHAIN, check=False):
        _iptables("-I", "FORWARD", "1", "-j", CHAIN)
    isolate = ("-i", _ALL_OURS, "-o", _ALL_OURS, "-j", "DROP")
    if not _iptables("-C", CHAIN, *isolate, check=False):
        _iptables("-A", CHAIN, *isolate)


def allow_bridge(bridge: str) -> None:
    """Accept frames that stay inside ``bridge`` (before the isolation drop).

    A host where iptables cannot even list FORWARD (no netfilter, e.g. a minimal guest
    kernel) filters nothing, so there is nothing to open there.
    """
    if not _iptables("-n", "-L", "FORWARD", check=False):
        return
    ensure_chain()
    rule = ("-i", bridge, "-o", bridge, "-j", "ACCEPT")
    if not _iptables("-C", CHAIN, *rule, check=False):
        _iptables("-I", CHAIN, "1", *rule)


def forget_bridge(bridge: str) -> None:
    """Remove the bridge's accept rule (the chain itself stays for other bridges)."""
    rule = ("-i", bridge, "-o", bridge, "-j", "ACCEPT")
    while _iptables("-D", CHAIN, *rule, check=False):
        pass


def remove_chain() -> None:
    while _iptables("-D", "FORWARD", "-j", CHAIN, check=False):
        pass
    _iptables("-F", CHAIN, check=False)
    _iptables("-X", CHAIN, check=False)
