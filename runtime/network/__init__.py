"""Container networking: bridges, veth pairs, addresses, names and published ports.

Host-global state (a bridge and its addresses exist once per host, whatever ``--root`` says),
so network definitions live in /var/lib/isoinspect/networks and address allocations in
/run/isoinspect/networks (moved by ISOINSPECT_NETWORK_DIR for both). Every module here is
imported lazily: ``--network none`` never pays for pyroute2.
"""

from __future__ import annotations

import os

from isoinspect.runtime.container_state import ContainerState

NO_BRIDGE = ("none", "host")


def wants_network(spec: dict) -> bool:
    """True when the container gets a veth on a bridge (not --network none or host)."""
    return spec.get("network", "none") not in NO_BRIDGE


class NetworkHook:
    """Runtime pre-start/post-stop hook for bridge and user networks (imports on use)."""

    #: It needs only the container's netns and upper dir, so the child mounts its root and
    #: pivots while the veth is made, and waits just before exec (InitPlan.late_sync).
    late = True

    def wants(self, state: ContainerState) -> bool:
        return wants_network(state.spec)

    def prestart(self, runtime, state: ContainerState, pid: int) -> ContainerState:
        """Attach the container; the returned state records what it got."""
        from isoinspect.runtime.network.hook import attach

        return state.replace(network=attach(state, pid, runtime.containers.dir(state.id, "upper")))

    def poststop(self, runtime, state: ContainerState) -> None:
        if holds_nothing(state.spec["network"], state.id):
            return
        from isoinspect.runtime.network.hook import detach

        detach(state.spec["network"], state.id)


def holds_nothing(network: str, container_id: str) -> bool:
    """True when the container has no netns name and no address left in ``network``: its
    stop was undone already (``rm`` after the monitor, which runs poststop first). Checked
    without the allocation lock or the hook's imports (~1 ms of an ``rm``): the file is only
    ever replaced whole (rename), and no one gives a stopped container an address."""
    from isoinspect.runtime.network import netns
    from isoinspect.runtime.network.store import state_dir

    if os.path.lexists(netns.path_for(container_id)):
        return False
    try:
        with open(os.path.join(state_dir(), f"{network}.json")) as handle:
            return f'"{container_id}"' not in handle.read()  # a holder's "id"
    except FileNotFoundError:
        return True
    except OSError:
        return False
