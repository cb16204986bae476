"""``isoinspect update``: Docker's `docker update` for containers of `isoinspect run` (argument
parsing only; runtime/container_update.py does the work, through the cgroup update path that
`isoinspect-runc update` uses too)."""

from __future__ import annotations

import click

from isoinspect.runtime.errors import IsoinspectError

_VALUE_OPTIONS = (
    (("-m", "--memory"), "memory", "Memory limit (e.g. 64m)."),
    (("--memory-swap",), "memory_swap", "Memory plus swap; -1 for unlimited swap."),
    (("--memory-reservation",), "memory_reservation", "Memory soft limit."),
    (("--cpus",), "cpus", "Number of CPUs (e.g. 0.5)."),
    (("--cpu-quota",), "cpu_quota", "CFS quota in microseconds (-1: none)."),
    (("--cpu-period",), "cpu_period", "CFS period in microseconds."),
    (("-c", "--cpu-shares"), "cpu_shares", "CPU shares (relative weight)."),
    (("--cpuset-cpus",), "cpuset_cpus", "CPUs to run on (0-3, 0,1)."),
    (("--cpuset-mems",), "cpuset_mems", "Memory nodes to use (0-3, 0,1)."),
    (("--pids-limit",), "pids_limit", "Process limit (-1: unlimited)."),
    (("--blkio-weight",), "blkio_weight", "Block IO weight (10-1000)."),
)


def _change(values: dict):
    """Docker's flag strings -> a ResourceUpdate (UsageError, exit 125, on a bad value)."""
    from isoinspect.runtime import units
    from isoinspect.runtime.cgroups.resources import PIDS_MAX
    from isoinspect.runtime.cgroups.update import ResourceUpdate

    def get(name, parse):
        text = values.get(name)
        return None if text is None else parse(text)

    quota = get("cpu_quota", lambda v: units.parse_int(v, "--cpu-quota", -1))
    cpus = get("cpus", units.parse_cpus)
    if cpus is not None and quota is not None:
        raise IsoinspectError("Conflicting options: Nano CPUs and CPU Quota cannot both be set",
                              exit_code=1)
    period = get("cpu_period", lambda v: units.parse_int(v, "--cpu-period", 0))
    if cpus is not None:
        quota, period = cpus
    return ResourceUpdate(
        memory=get("memory", units.parse_bytes),
        memory_swap=get("memory_swap", units.parse_memory_swap),
        memory_reservation=get("memory_reservation",
                               lambda v: units.parse_bytes(v, "--memory-reservation")),
        cpu_quota_us=quota, cpu_period_us=period or None,
        cpu_shares=get("cpu_shares", lambda v: units.parse_int(v, "--cpu-shares", 0)) or None,
        cpuset_cpus=get("cpuset_cpus", units.parse_cpuset),
        cpuset_mems=values.get("cpuset_mems"),
        pids_limit=get("pids_limit", lambda v: units.parse_int(v, "--pids-limit", -1, PIDS_MAX)),
        blkio_weight=get("blkio_weight",
                         lambda v: units.parse_int(v, "--blkio-weight", 0, 1000)) or None)


def _command() -> click.Command:
    def callback(containers: tuple, **values) -> None:
        from isoinspect.cli.main import _for_each, _runtime
        from isoinspect.runtime.container_update import update_container

        ctx = click.get_current_context()
        if not any(v is not None for v in values.values()):
            raise IsoinspectError("you must provide one or more flags when using this command",
                                  exit_code=1)
        change = _change(values)
        runtime = _runtime(ctx)

        def one(ref: str) -> None:
            for warning in update_container(runtime, ref, change)[1]:
                click.echo(warning, err=True)
        _for_each(ctx, containers, one)

    params: list[click.Parameter] = [click.Option([*flags, dest], metavar="VALUE", help=text)
                                     for flags, dest, text in _VALUE_OPTIONS]
    params.append(click.Argument(["containers"], nargs=-1, required=True))
    return click.Command("update", callback=callback, params=params,
                         help="Update the resource limits of containers (like docker update).")


update = _command()
commands = [update]


