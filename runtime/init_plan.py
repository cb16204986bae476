"""What a container's process does between clone()/fork() and exec(), as typed records.

One model for every way a process enters a container: the first process of `isoinspect run`,
of an OCI bundle (`isoinspect-runc create`), of a warm-pool zygote and of a build step
(``InitPlan``), and a process `exec`'d into a running container (only its ``ProcessPlan``).
The parent builds the plan; the child (runtime/child.py) only makes system calls from it, so a
misspelt field is a TypeError in the parent, never a KeyError inside a forked child.

How the root file system is made is the one thing that differs between an image's overlay and
an OCI bundle: ``InitPlan.root`` is an object with ``before_pivot(plan)`` and
``after_pivot(plan)`` (runtime/overlay_root.py, runtime/oci/setup.py), so the child never asks
who called it.
"""

from __future__ import annotations

from isoinspect.runtime.frozen import Frozen


class ProcessPlan(Frozen):
    """The command and the privileges it runs with (OCI ``process``; shared with exec)."""

    argv: list
    env: list
    workdir: str = "/"
    user: str = "0:0"  # "uid[:gid]" or a name, resolved inside the container
    additional_gids: list = []  # OCI user.additionalGids: after the user's /etc/group ones
    caps: object = None  # capabilities.CapSets (None: none at all)
    rlimits: list = []  # [(name, soft, hard)]
    seccomp: object = None  # compiled BPF program (bytes) or None
    no_new_privileges: bool = True
    preserve_fds: int = 0  # descriptors 3..3+N-1 passed to the command (OCI --preserve-fds)


class InitPlan(Frozen):
    """Everything the container's first process needs, descriptors included."""

    process: ProcessPlan
    root: object  # OverlayRoot | BundleRoot: makes the root file system (see module doc)
    rootfs: str  # where the root is assembled before pivot_root
    err_fd: int = -1  # close-on-exec pipe: set-up errors written here, EOF = exec'd
    stdio: tuple = (None, None, None)  # descriptors for 0/1/2 (None: inherit)
    pdeathsig: int = 0  # signal when the parent dies (foreground runs: SIGKILL)
    cgroup_procs: list = []  # cgroup.procs files to join (empty: the parent put us there)
    new_cgroupns: bool = True
    mount_ns_fd: int = -1  # an existing mount namespace to join (OCI path), after the cgroup
    hostname: object = None  # str, or None to keep the (shared) UTS namespace's name
    own_net: bool = True  # a fresh network namespace: bring its loopback up
    read_only: bool = False  # remount the root read-only after set-up
    umask: int = 0o022  # the command's (OCI process.user.umask), set once the root is made
    exec_stub_fd: int = -1  # sealed exec stub made by the parent (runtime/linux/sealed_exec)
    userns_sync_fd: int = -1  # new user namespace: wait for the parent to write id maps
    joined_userns: bool = False  # cloned in an existing user namespace: become its root
    sync_fd: int = -1  # wait here for the parent's pre-start hooks ("g" = go on)
    late_sync: bool = False  # ...just before exec (privileges dropped) instead of before
    #                          pivot_root (the hooks need only the namespaces: bridge networking)
    ready_fd: int = -1  # create/start split: report "r" here once set up...
    start_fd: int = -1  # ...then wait on this for `start`
    before_exec: object = None  # callable(plan) -> ProcessPlan | None, after `start`
    mounts: list = []  # BindMount (runtime/bind_mounts.py): host paths bound in, in order
    console_fd: int = -1  # socket: take a new terminal, send its master here (run -t)
    console_size: object = None  # {"height": rows, "width": cols} for that terminal
