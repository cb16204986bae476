"""``isoinspect vm ...``: a QEMU guest with a Debian kernel and pure cgroup v2 (benches/vm).

    isoinspect vm run -- python3 -m pytest -q tests/guest      # in the project dir, in the guest
    isoinspect vm boot-time --runs 5 --json out.json            # the VM start-up target
    isoinspect vm prepare                                       # fetch + cache kernel, initramfs
"""

from __future__ import annotations

import json
import sys

import click

from isoinspect.runtime.errors import USAGE_EXIT_CODE, IsoinspectError


def _vm(memory: int, cpus: int, accel: str | None, disk: int, shares: tuple = ()):
    from isoinspect.benches.vm import GuestVM, VMError

    extra = []
    for spec in shares:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw", "ov")):
            raise IsoinspectError(f"--share {spec!r}: expected HOST:GUEST[:ro|rw|ov]",
                                  exit_code=USAGE_EXIT_CODE)
        extra.append((parts[0], parts[1], parts[2] if len(parts) == 3 else "ro"))
    try:
        return GuestVM(memory_mb=memory, cpus=cpus, accel=accel, disk_mb=disk,
                       extra_shares=extra, log=lambda m: click.echo(f"vm: {m}", err=True))
    except VMError as exc:
        raise IsoinspectError(f"vm: {exc}") from None


_COMMON = [
    click.option("--memory", default=1024, show_default=True, help="Guest memory (MiB)."),
    click.option("--cpus", default=2, show_default=True, help="Guest CPUs."),
    click.option("--accel", type=click.Choice(["kvm", "tcg"]), default=None,
                 help="Force an accelerator (default: a timed KVM boot decides, else TCG)."),
    click.option("--disk", default=64, show_default=True,
                 help="Size (MiB) of a scratch virtio disk (/dev/vda, for io.max); 0: none."),
]


def _common(func):
    for option in reversed(_COMMON):
        func = option(func)
    return func


@click.group("vm")
def vm() -> None:
    """A Debian-kernel QEMU guest with pure cgroup v2 and this project shared in."""


@vm.command("prepare")
@_common
def prepare(memory: int, cpus: int, accel: str | None, disk: int) -> None:
    """Download and cache the kernel, build the initramfs, pick the accelerator."""
    guest = _vm(memory, cpus, accel, disk)
    chosen = guest.choose_accel()
    click.echo(f"kernel {guest.kernel.package} {guest.kernel.version} ({guest.kernel.release})")
    click.echo(f"initramfs {guest.initramfs}")
    click.echo(f"accelerator {chosen}: {guest.accel_reason}")


@vm.command("run", context_settings={"allow_interspersed_args": False})
@_common
@click.option("--timeout", default=900.0, show_default=True, help="Seconds for boot + command.")
@click.option("-w", "--workdir", default=None, help="Directory in the guest (default: project).")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Environment for the command.")
@click.option("--share", multiple=True, metavar="HOST:GUEST[:MODE]",
              help="Extra 9p share; MODE ro (default), rw or ov (read-only + tmpfs overlay).")
@click.option("--json", "json_out", is_flag=True, help="Print the result as JSON.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, memory: int, cpus: int, accel: str | None, disk: int,
        timeout: float, workdir: str | None, env: tuple, share: tuple, json_out: bool,
        command: tuple) -> None:
    """Boot the guest, run COMMAND (as root, cgroup2 at /sys/fs/cgroup), print its output and
    exit with its code. One argument is run by the shell; several are an argv."""
    from isoinspect.benches.vm import VMError

    guest = _vm(memory, cpus, accel, disk, share)
    variables = dict(item.split("=", 1) for item in env if "=" in item)
    try:
        result = guest.run(command[0] if len(command) == 1 else list(command), cwd=workdir,
                           env=variables, timeout=timeout)
    except VMError as exc:
        raise IsoinspectError(f"vm: {exc}") from None
    if json_out:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        click.echo(f"vm: {result.accel}, {result.kernel}: ready in {result.boot_seconds:.2f} s, "
                   f"total {result.total_seconds:.2f} s, exit {result.returncode}", err=True)
    ctx.exit(result.returncode)


@vm.command("boot-time")
@_common
@click.option("--runs", default=3, show_default=True, help="Boots to measure.")
@click.option("--json", "json_out", metavar="OUT", help="Write the result as JSON here.")
def boot_time_cmd(memory: int, cpus: int, accel: str | None, disk: int, runs: int,
                  json_out: str | None) -> None:
    """Start-up of the VM target: QEMU start to the guest's ready marker (init done, cgroup2
    mounted), labelled with the accelerator."""
    from isoinspect.benches.vm import VMError, boot_time

    guest = _vm(memory, cpus, accel, disk)
    try:
        result = boot_time(runs, guest)
    except VMError as exc:
        raise IsoinspectError(f"vm: {exc}") from None
    click.echo(f"{result['target']} ({result['kernel']}, {result['cpus']} CPUs, "
               f"{result['memory_mb']} MiB): boot to ready median {result['boot_s_median'] * 1000:.0f} ms "
               f"(min {result['boot_s_min'] * 1000:.0f}, max {result['boot_s_max'] * 1000:.0f}; "
               f"guest kernel clock {result['guest_uptime_ready_s_median'] * 1000:.0f} ms) "
               f"over {runs} boots; accelerator {result['accel']}: {result['accel_reason']}")
    if json_out:
        with open(json_out, "w") as handle:
            json.dump(result, handle, indent=2)


commands = [vm]
