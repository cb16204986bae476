"""``isoinspect exposure``: host system calls each isolation unit makes for one workload."""

from __future__ import annotations

import click

WORKLOAD_HELP = ("idle (sleep --duration), startup (start to first output), script (busybox "
                 "file, process and network work), overhead (every test of bench overhead's "
                 "workload program, ~100 ms each, with host syscalls per operation) or one of "
                 "its tests: {tests}; or give '-- CMD...'.")


class WorkloadOption(click.Option):
    """--workload: the program's test names in the help, imported only when help is shown
    (every CLI start registers this command)."""

    def get_help_record(self, ctx: click.Context):
        from isoinspect.benches.overhead.program import TEST_NAMES

        self.help = WORKLOAD_HELP.format(tests=", ".join(TEST_NAMES))
        return super().get_help_record(ctx)


@click.command("exposure", context_settings={"allow_interspersed_args": False})
@click.option("--runtime", default="all", show_default=True, metavar="NAME",
              help="isoinspect, runc, runsc, docker, qemu, a comma list, or all.")
@click.option("--workload", cls=WorkloadOption, default="script", show_default=True,
              metavar="NAME")
@click.option("--duration", default=1.0, show_default=True, type=float, metavar="S",
              help="Seconds of the idle window.")
@click.option("--json", "json_out", metavar="OUT", help="Write the results as JSON to OUT "
              "('-': stdout instead of the table).")
@click.option("--results-dir", metavar="DIR", help="Where the run record goes (default "
              "$ISOINSPECT_RESULTS or /var/lib/isoinspect/results).")
@click.option("--ebpf", is_flag=True, help="Print the BPF program (no root needed) and exit.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exposure(ctx: click.Context, runtime: str, workload: str, duration: float,
             json_out: str | None, results_dir: str | None, ebpf: bool,
             command: tuple[str, ...]) -> None:
    """Run one workload under each runtime and count, in the kernel, every host system call
    of its host processes (container cgroup, runsc's Sentry and Gofer, QEMU), next to what the
    unit is allowed (seccomp, capabilities, namespaces shared with the host)."""
    if ebpf:
        from isoinspect.inspector.probes import program

        click.echo(program(["syscall_counts"]))
        return
    from isoinspect.benches.exposure import run_command

    ctx.exit(run_command(runtime, workload, duration, json_out, results_dir,
                         list(command) or None))


commands = [exposure]
