"""The root file system of a container made from an image: an overlay of its layers.

``InitPlan.root`` for `isoinspect run`, build steps and the warm pool (an OCI bundle's root is
runtime/oci/setup.py's ``BundleRoot``). Runs in the container's first process, inside its own
mount namespace, so every mount disappears with it.
"""

from __future__ import annotations

from isoinspect.runtime import rootfs
from isoinspect.runtime.frozen import Frozen
from isoinspect.runtime.linux import paths_policy


class OverlayRoot(Frozen):
    """Image layers under the container's upper dir, with Docker's /proc, /sys and /dev."""

    lower: list  # layer directories, top first
    upper: str
    work: str
    cgroup2: bool = False  # mount the container's cgroup2 (unified hosts)
    bind_devices: bool = False  # a user namespace cannot mknod: bind the host's nodes
    volatile: bool = False  # no syncs of the upper dir: deleted with the container (warm pool)
    masked: tuple = paths_policy.MASKED_PATHS
    readonly: tuple = paths_policy.READONLY_PATHS

    def before_pivot(self, plan) -> None:
        root = plan.rootfs
        if plan.mounts and _shares(plan):
            rootfs.make_parent_private(root)
        else:
            rootfs.make_mounts_private()
        rootfs.mount_overlay(root, self.lower, self.upper, self.work, self.volatile)
        rootfs.mount_proc_sys(root)
        if self.cgroup2:
            rootfs.mount_cgroup2(root)
        rootfs.populate_dev(root, bind_devices=self.bind_devices)
        # The defaults lie inside the procfs and sysfs just mounted: safe before pivot_root.
        paths_policy.mask_paths(root, self.masked)
        paths_policy.readonly_paths(root, self.readonly)
        if plan.mounts:  # -v/--mount: after /proc, /sys and /dev, so none can cover them
            from isoinspect.runtime.bind_mounts import mount_all
            mount_all(root, plan.mounts)

    def pivot(self, plan) -> None:
        rootfs.pivot_into(plan.rootfs, detach_slave=bool(plan.mounts) and _shares(plan))

    def after_pivot(self, plan) -> None:
        """Nothing: the image's root needs no more once it is /."""


def _shares(plan) -> bool:
    from isoinspect.runtime.bind_mounts import shares
    return shares(plan.mounts)
