"""``isoinspect bench ...``: start-up, concurrency and namespace-cost benchmarks."""

from __future__ import annotations

import click

RESULTS_HELP = "Where the run record goes (default $ISOINSPECT_RESULTS or " \
               "/var/lib/isoinspect/results)."


@click.group("bench")
def bench() -> None:
    """Benchmarks: isoinspect against its peers, measured in the same run."""


@bench.command("startup")
@click.option("--runs", default=100, show_default=True, help="Measured rounds per target.")
@click.option("--warmup", default=5, show_default=True, help="Warm-up rounds per target.")
@click.option("--quick", is_flag=True, help="A few runs only, no slow targets (VM).")
@click.option("--include-slow", is_flag=True, help="Keep slow targets (the VM) under --quick.")
@click.option("--slow-runs", type=click.IntRange(min=1), metavar="N",
              help="Slow targets (the VM) take part in the first N rounds only.")
@click.option("--json", "json_out", metavar="OUT", help="Also write the run record here.")
@click.option("--targets", metavar="A,B", help="Comma-separated target names (default: all).")
@click.option("--metrics", metavar="M,N",
              help="Subset of start_to_ready,lifecycle,teardown (default: all).")
@click.option("--workdir", metavar="DIR", help="Prepare images here (default: a temp dir).")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.option("--drop-caches", is_flag=True, help="Drop the page cache before every run.")
@click.option("--trace-runs", default=100, show_default=True,
              help="Interleaved traced/untraced lifecycle pairs per container target (phases, "
                   "tracer overhead; the tracer runs in its own process); 0: off.")
@click.option("--concurrency", metavar="1,2,4,8", help="Also sweep these parallel starts.")
@click.option("--goals", is_flag=True,
              help="Also print the project's own goals (always kept in the record and report).")
@click.option("--image", metavar="IMG",
              help="Benchmark this image of the store (pull/load/build) and the command after "
                   "-- (default: its Cmd) in every target that can run it; lifecycle only.")
@click.option("-i", "--ignore-failure", is_flag=True,
              help="With --image: keep runs whose command exits non-zero.")
@click.argument("command", nargs=-1, metavar="[-- CMD...]")
@click.pass_context
def startup(ctx: click.Context, runs: int, warmup: int, quick: bool, json_out: str | None,
            targets: str | None, metrics: str | None, workdir: str | None,
            results_dir: str | None, drop_caches: bool, trace_runs: int,
            concurrency: str | None, include_slow: bool, slow_runs: int | None,
            goals: bool, image: str | None, ignore_failure: bool,
            command: tuple[str, ...]) -> None:
    """Start-up latency: host exec, unshare, isoinspect (CLI, library, warm pool), runc, crun,
    runsc, docker and a QEMU guest; with --image IMG -- CMD, your own image and command
    (the host targets only with --targets host, since they run CMD on the host)."""
    from isoinspect.benches.startup import run_command

    ctx.exit(run_command(targets, runs, warmup, quick, json_out, workdir,
                         results_dir=results_dir, drop_caches=drop_caches,
                         trace_runs=trace_runs, concurrency=concurrency, metrics=metrics,
                         include_slow=include_slow, slow_runs=slow_runs, show_goals=goals,
                         image=image, user_command=list(command),
                         ignore_failure=ignore_failure,
                         store_root=(ctx.obj or {}).get("root")))


@bench.command("concurrency")
@click.option("--levels", default="1,2,4,8", show_default=True, help="Parallel starts.")
@click.option("--starts", default=16, show_default=True,
              help="Lifecycles per level (at least 2 x level).")
@click.option("--targets", metavar="A,B",
              default="host-exec,unshare,isoinspect-cli,runc,runsc,docker", show_default=True,
              help="Comma-separated target names.")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.pass_context
def concurrency(ctx: click.Context, levels: str, starts: int, targets: str,
                results_dir: str | None) -> None:
    """Containers per second with 1, 2, 4, 8, ... starts in flight."""
    from isoinspect.benches.startup import run_command

    ctx.exit(run_command(targets, 1, 1, False, None, None, results_dir=results_dir,
                         trace_runs=0, concurrency=levels, concurrency_starts=starts,
                         metrics="lifecycle", command="bench concurrency"))


@bench.command("namespaces")
@click.option("--runs", default=200, show_default=True, help="Creations per namespace type.")
@click.option("--levels", metavar="1,2,4,8",
              help="Parallel creators (default 1,2,4,8; with --quick 1,4).")
@click.option("--quick", is_flag=True, help="20 runs at most, levels 1 and 4 by default.")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.pass_context
def namespaces(ctx: click.Context, runs: int, levels: str | None, quick: bool,
               results_dir: str | None) -> None:
    """Cost of each namespace type alone: create and destroy, latency and rate."""
    from isoinspect.benches.namespaces import run_command

    ctx.exit(run_command(runs, levels, quick, results_dir))


@bench.command("density")
@click.option("--targets", metavar="A,B",
              help="Comma-separated: host,isoinspect,runc,crun,runsc,docker,qemu (default: all).")
@click.option("--levels", metavar="1,8,32", help="Idle instances per level (default 1,8,32; "
              "with --quick 1,8 and the VM 1,2).")
@click.option("--max", "maximum", type=int, metavar="N", help="Cap every level at N.")
@click.option("--quick", is_flag=True, help="Levels 1,8; the VM at 1,2.")
@click.option("--json", "json_out", metavar="OUT", help="Also write the run record here.")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.pass_context
def density(ctx: click.Context, targets: str | None, levels: str | None, maximum: int | None,
            quick: bool, json_out: str | None, results_dir: str | None) -> None:
    """Idle instances (sleep): host memory per instance with a CI and the time to start the
    Nth, for N = 1, 8, 32."""
    from isoinspect.benches.density import run_command

    ctx.exit(run_command(targets, levels, maximum, quick, json_out, results_dir))


@bench.command("overhead")
@click.option("--targets", metavar="A,B",
              help="Comma-separated: host,isoinspect,runc,crun,runsc,docker,qemu (default: all; "
                   "host, the baseline, is always added).")
@click.option("--suite", "suite_name", default="own", show_default=True, metavar="own|tools|all",
              help="own: the workload program on busybox; tools: Debian's sysbench, fio, iperf3 "
                   "(debian:bookworm-tools in containers, the host's in the host and the VM); "
                   "all: both, in the tools image.")
@click.option("--tests", metavar="T,U", help="The suite's tests (default: all; the workload's "
                                             "cpu control always added).")
@click.option("--rounds", type=int, help="Rounds per target (default 10; --quick 5).")
@click.option("--duration-ms", type=int, help="Timed milliseconds per test (default 200; "
                                              "--quick 50; the tools take whole seconds: "
                                              "rounded, at least 1 s).")
@click.option("--quick", is_flag=True, help="5 rounds of 50 ms per test, every target.")
@click.option("--json", "json_out", metavar="OUT", help="Also write the run record here.")
@click.option("--results-dir", metavar="DIR", help=RESULTS_HELP)
@click.pass_context
def overhead(ctx: click.Context, targets: str | None, suite_name: str, tests: str | None,
             rounds: int | None, duration_ms: int | None, quick: bool, json_out: str | None,
             results_dir: str | None) -> None:
    """How much slower the same workload runs in each target than on the host (syscalls,
    fork/exec, pipes, signals, page faults, loopback TCP, file I/O; a CPU loop as control)."""
    from isoinspect.benches.overhead.bench import run_command
    from isoinspect.benches.overhead.suite import make_suite

    ctx.exit(run_command(targets, tests, rounds, duration_ms, quick, json_out, results_dir,
                         suite=make_suite(suite_name)))


commands = [bench]
