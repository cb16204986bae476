"""``isoinspect top``: the container's processes, as ``docker top`` finds them.

The host's ``ps`` runs with the user's options (``-ef`` by default) and ``-q`` with the pids of
the container's cgroup (so ``-o pid,comm`` alone lists them too), again without ``-q`` where an
option refuses it; rows are kept when their PID column holds one of those pids, and the last
column keeps its spaces (the command line). Any ps option works, as long as the output has a
PID column.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from isoinspect.runtime.container_state import Status
from isoinspect.runtime.errors import Conflict, IsoinspectError
from isoinspect.runtime.runtime import Runtime

DEFAULT_PS_ARGS = ("-ef",)


@dataclass(frozen=True)
class ProcessTable:
    """ps's column titles and the container's rows, split into as many cells."""

    titles: list[str]
    processes: list[list[str]]


def parse_ps(output: str, pids: set[int]) -> ProcessTable:
    """The rows of ``ps`` output whose PID is in ``pids`` (Docker's parsePSOutput)."""
    lines = output.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise IsoinspectError("couldn't find PID field in ps output", exit_code=1)
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            pid = int(fields[column])
        except (IndexError, ValueError):
            raise IsoinspectError(f"unexpected pid {fields[column:column + 1]} in ps output",
                                  exit_code=1) from None
        if pid in pids:
            last = len(titles) - 1
            processes.append(fields[:last] + [" ".join(fields[last:])])
    return ProcessTable(titles, processes)


def top(runtime: Runtime, ref: str, ps_args: list[str]) -> ProcessTable:
    """The processes of a running container, with ``ps ps_args``'s columns."""
    record = runtime.get(ref)
    if record.status != Status.RUNNING:
        raise Conflict(f"container {record.id} is not running", exit_code=1)
    pids = runtime.cgroup(record).pids()
    args = list(ps_args or DEFAULT_PS_ARGS)
    done = None
    if pids:  # only these processes, whatever else the options select (-o alone: none)
        done = _ps(args + ["-q", ",".join(map(str, pids))])
    if done is None or done.returncode != 0:  # options -q does not mix with (f): filter after
        done = _ps(args)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise IsoinspectError(f"ps: {first}", exit_code=1)
    return parse_ps(done.stdout, set(pids))


def _ps(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise IsoinspectError("ps is not installed on this host (package procps)",
                              exit_code=1) from None
