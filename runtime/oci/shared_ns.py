"""The parts of an OCI bundle's namespaces that are not a plain CLONE_NEW* flag.

- A mount namespace given by path is joined by the container's init (``InitPlan.mount_ns_fd``)
  right after it joined its cgroup, not by the runtime: setns(CLONE_NEWNS) would move the
  runtime's own root and working directory, and every path it uses after (the state dir, the
  cgroup files) would then be looked up in the container's tree.
- No mount namespace in linux.namespaces: the container shares the runtime's (the spec), the
  bundle's mounts are made below root.path there and outlive the init; ``delete`` detaches
  them (``undo_mounts``), which runc leaves to the caller.
- A user namespace given by path is joined by a helper that clones the init (runtime/launch.py);
  the runtime's own one by path is no namespace to join (setns would refuse it).
- A new user namespace: the runtime writes the bundle's uidMappings/gidMappings, with the
  code of `run --userns remap` (runtime/userns.py).
"""

from __future__ import annotations

import os


def join_mount_namespace(plan, path: str | None):
    """The plan with a descriptor of the mount namespace at ``path`` for the init to join;
    the caller closes ``plan.mount_ns_fd`` once the init is cloned."""
    if not path:
        return plan
    from isoinspect.runtime.oci.config import ConfigError
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot open mount namespace {path}: {exc.strerror}") from None
    return plan.replace(mount_ns_fd=fd)


def open_user_namespace(path: str | None) -> int:
    """A descriptor of the user namespace at ``path`` to clone the init in, or -1 when none is
    given or it is the runtime's own (the container then shares it, as with no entry)."""
    if not path:
        return -1
    from isoinspect.runtime.oci.config import ConfigError
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot open user namespace {path}: {exc.strerror}") from None
    joined, mine = os.fstat(fd), os.stat("/proc/self/ns/user")
    if (joined.st_dev, joined.st_ino) == (mine.st_dev, mine.st_ino):
        os.close(fd)
        return -1
    return fd


def mount_targets(rootfs: str, mounts: list[dict]) -> list[str]:
    """Where the bundle's mounts land below ``rootfs`` (symlinks resolved inside it, as the
    init resolves them), as /proc/self/mountinfo names them."""
    from isoinspect.runtime.oci.setup import secure_join
    root = os.path.realpath(rootfs)
    targets = [secure_join(root, mount["destination"]) for mount in mounts
               if isinstance(mount.get("destination"), str)]
    return [target for target in targets if target != root]  # never the rootfs itself


def undo_mounts(targets: list[str], warn) -> None:
    """Detach what a container sharing the runtime's mount namespace mounted, deepest first."""
    if not targets:  # the usual case: no ctypes for `delete`
        return
    from isoinspect.runtime.linux.mount_tree import detach_tree
    for target in sorted(set(targets), key=len, reverse=True):
        try:
            detach_tree(target)
        except OSError as exc:
            warn(f"cannot unmount {target}: {exc.strerror or exc}")


def map_user_namespace(launch, config: dict, cgroup_procs: list[str]) -> None:
    """Write the bundle's id maps for the init cloned into a new user namespace."""
    from isoinspect.runtime import userns
    from isoinspect.runtime.oci import translate
    uid_lines, gid_lines = translate.id_mappings(config)
    userns.map_child(launch, uid_lines, gid_lines, cgroup_procs)
