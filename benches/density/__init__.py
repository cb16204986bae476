"""``isoinspect bench density``: how many idle instances fit, and what each costs the host.

For every target of ``bench startup`` that can keep an instance running (the host's own
process, the isoinspect library, runc, crun, runsc, Docker, a QEMU guest) the sweep starts N
idle ``sleep`` instances for each level N (1, 8, 32 by default), measures the host memory
each uses and the time each took to start, and records a ``density`` result per target and
level. One job per module:

* ``instances.py``: a launcher per target (the suite's target adapters' ``start``; a
  detached guest from benches/vm/instance.py), and what each leaves running;
* ``procmem.py``: PSS from /proc/PID/smaps_rollup, the process tree, MemAvailable;
* ``accounting.py``: which processes and cgroup belong to an instance, and the per-instance
  estimate (the definitions are in its docstring and in every result's ``accounting``);
* ``sweep.py``: one target through the levels, incremental results, stop-everything;
* ``command.py``: all targets into one RunRecord, the table, ``run_command`` for the CLI.
"""

from isoinspect.benches.density.command import run_command, run_density

__all__ = ["run_command", "run_density"]
