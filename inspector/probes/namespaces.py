"""Namespace creation: unshare, clone, clone3 (flags read from the user's struct clone_args),
setns and task_newtask, with the kernel duration of each call.

unshare's enter->exit time is what creating the namespaces costs the kernel (a net namespace
costs far more than a uts one); see ``isoinspect.inspector.nsflags.per_type_costs``.
"""

from __future__ import annotations

from .common import Parts, Syscall, newtask_emitter

NAME = "namespaces"
TRACEPOINTS = ("syscalls:sys_enter_unshare", "syscalls:sys_exit_unshare",
               "syscalls:sys_enter_clone", "syscalls:sys_exit_clone",
               "syscalls:sys_enter_clone3", "syscalls:sys_exit_clone3",
               "syscalls:sys_enter_setns", "syscalls:sys_exit_setns", "task:task_newtask")

# clone3: the flags are the first u64 of struct clone_args, in user memory.
CLONE3_FLAGS = ("u64 cflags = 0; bpf_probe_read_user(&cflags, sizeof(cflags), "
                "(void *)args->uargs); s.flags = cflags;")


def parts(all_clones: bool = False) -> Parts:
    """``all_clones``: report every clone, not only those creating namespaces."""
    ns_only = "1" if all_clones else "(s->flags & NS_MASK)"
    out = Parts()
    out.syscalls = [
        Syscall("unshare", flags="args->unshare_flags"),
        Syscall("clone", flags="args->clone_flags", condition=ns_only),
        Syscall("clone3", flags_code=CLONE3_FLAGS, condition=ns_only),
        Syscall("setns", flags="args->flags"),
    ]
    out.emitters = [newtask_emitter("1" if all_clones else "(args->clone_flags & NS_MASK)")]
    return out
