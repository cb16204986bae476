"""What the C monitor (runtime/monitor.c) execs once a detached container's PID 1 has exited.

The teardown stays in Python, in one place: the exit recorded in the container's record, the
"die" event, the cgroup released, the network undone (Runtime.record_exit, the same steps a
foreground run takes), then ``--rm``. The monitor lock arrives held on an inherited descriptor
and is dropped once the exit is recorded, so ``wait``, ``start`` and ``restart`` see the same
order as with the Python monitor. Standard streams are /dev/null: nothing is printed.

    python -m isoinspect.runtime.monitor_exit DATA RUN CGROUP_PARENT CGROUP_ROOT ID LOCK_FD
                                              rm|keep WAIT_STATUS FINISHED_NS
"""

from __future__ import annotations

import os
import sys

from isoinspect.runtime.records import MonitorLock
from isoinspect.runtime.roots import Roots
from isoinspect.runtime.runtime import Runtime

USAGE = ("usage: python -m isoinspect.runtime.monitor_exit DATA RUN CGROUP_PARENT CGROUP_ROOT "
         "ID LOCK_FD rm|keep WAIT_STATUS FINISHED_NS")


def cleanup_argv(runtime: Runtime, cid: str, lock_fd: int, remove: bool) -> list[str]:
    """The command line up to the two values the monitor appends (status, finish time)."""
    import isoinspect

    # The package's folder as this process found it (the fast launcher puts it on sys.path).
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(isoinspect.__file__)))
    # The launcher's code bundle (cli/code_bundle.py), where set-up wrote one: the teardown's
    # ~40 modules then load without a path search each, and `stop` waits that much less.
    code = (f"import sys; sys.path[:0] = [{package_parent!r}]; "
            "from isoinspect.cli.code_bundle import install; "
            f"install({package_parent!r}); "
            "from isoinspect.runtime.monitor_exit import main; sys.exit(main())")
    # -S (no site: ~12 ms less per exit) when that folder alone holds the whole package, as
    # the fast launcher's does; an editable install's subpackages need site's import hook.
    flags = "-IS" if os.path.isdir(os.path.join(package_parent, "isoinspect", "runtime")) else "-I"
    return [sys.executable, flags, "-c", code, *runtime.roots.fields(), cid, str(lock_fd),
            "rm" if remove else "keep"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 9 or args[6] not in ("rm", "keep"):
        print(USAGE, file=sys.stderr)
        return 125
    data_dir, run_dir, cgroup_parent, cgroup_root, cid, lock_fd, remove, status, finished = args
    runtime = Runtime(roots=Roots.exact(data_dir, run_dir, cgroup_parent, cgroup_root))
    lock = MonitorLock.inherited(runtime.containers.dir(cid, "monitor.lock"), int(lock_fd))
    os.set_inheritable(lock.fd, False)   # not into the tools the teardown runs
    runtime.record_exit(runtime.containers.load(cid), int(status), int(finished) / 1e9, lock)
    if remove == "rm":
        runtime.remove(cid, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
