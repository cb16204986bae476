"""What bridge networking adds to a container start: isoinspect against Docker, same run.

For each runtime (isoinspect CLI, ``docker run``) and each network mode (none, bridge) it times
whole ``run --rm IMAGE true`` commands (metric "lifecycle": start, run, teardown) and
``run -d IMAGE sleep 60`` until the CLI returns with the container running (metric "start"; the
removal is not timed), interleaved round-robin so drift hits every config alike. The cost of
networking is the difference of medians (bridge - none) with the ratio's CI. Then
1, 2, 4 and 8 starts are launched at once (``concurrency`` results, per start samples plus the
batch's wall time). Results go to a RunRecord (benches/record.py).

Usage: python -m isoinspect.benches.network_bench [--runs 30] [--rounds 8] [--no-docker]
(or ``isoinspect bench network ...``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from isoinspect.benches import stats
from isoinspect.benches.targets.base import Spawner

LEVELS = (1, 2, 4, 8)
MODES = ("none", "bridge")


def commands(root: str, docker: str | None) -> dict[tuple[str, str], list[str]]:
    """(runtime, mode) -> argv of one whole container start and removal."""
    from isoinspect.benches.peers import DOCKER_IMAGE
    from isoinspect.benches.targets.isoinspect import cli_path

    found = {}
    for mode in MODES:
        found[("isoinspect", mode)] = [cli_path(), "--root", root, "run", "--rm", "--network",
                                       mode, "busybox", "true"]
        if docker:
            found[("docker", mode)] = [docker, "run", "--rm", "--network", mode, DOCKER_IMAGE,
                                       "true"]
    return found


def detached(argv: list[str]) -> list[str]:
    """The same start as ``argv`` but detached and long-running: ``run -d ... sleep 60``."""
    index = argv.index("--rm")
    return argv[:index] + ["-d"] + argv[index + 1:-1] + ["sleep", "60"]


def start_once(argv: list[str]) -> float:
    """Seconds until ``run -d`` returns (the container runs); its removal is not timed."""
    begin = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - begin
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    rm = argv[:argv.index("run")] + ["rm", "-f", result.stdout.strip()]
    subprocess.run(rm, capture_output=True, timeout=120, check=True)
    return seconds


def sequential(argvs: dict, runs: int, warmup: int, spawner: Spawner) -> tuple[dict, dict]:
    """Round-robin over configs: ({config: lifecycle s}, {config: detached start s})."""
    lifecycle: dict = {key: [] for key in argvs}
    start: dict = {key: [] for key in argvs}
    for index in range(warmup + runs):
        for key, argv in argvs.items():
            whole = spawner.run(argv)
            begun = start_once(detached(argv))
            if index >= warmup:
                lifecycle[key].append(whole)
                start[key].append(begun)
    return lifecycle, start


def concurrent_batch(argv: list[str], level: int) -> tuple[float, list[float]]:
    """Start ``level`` copies at once; (batch wall time, each one's own wall time)."""
    begin = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(level)]
    each = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        each.append(time.perf_counter() - begin)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {err.decode(errors='replace')}")
    return time.perf_counter() - begin, each


def network_cost(samples: dict, runtime: str) -> dict:
    none, bridge = samples[(runtime, "none")], samples[(runtime, "bridge")]
    ratio = stats.ratio_ci(bridge, none)
    return {"runtime": runtime, "median_none_s": stats.median(none),
            "median_bridge_s": stats.median(bridge),
            "added_s": stats.median(bridge) - stats.median(none), "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="network_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="measured runs per config")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=8, help="batches per concurrency level")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds of rest before each batch, so one runtime's background "
                             "teardown (netns, veths, shims) does not land in another's batch")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--results", help="RunRecord directory (default $ISOINSPECT_RESULTS)")
    args = parser.parse_args(argv)
    from isoinspect.benches.record import RunRecord
    from isoinspect.benches.targets.docker import docker_binary
    from isoinspect.benches.targets.isoinspect import clean_root, package_version, private_root

    docker = None if args.no_docker else docker_binary()
    if docker:
        from isoinspect.benches.peers import DOCKER_IMAGE, check_docker

        if not check_docker().ok:
            print("docker unusable here: measuring isoinspect only", file=sys.stderr)
            docker = None
        else:
            repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
            subprocess.run(["bash", os.path.join(repo, "scripts", "docker-busybox.sh"),
                            DOCKER_IMAGE], check=True, capture_output=True,
                           env=dict(os.environ, DOCKER=docker))
    record = RunRecord.create("network_bench " + " ".join(argv or sys.argv[1:]),
                              directory=args.results,
                              config={"runs": args.runs, "warmup": args.warmup,
                                      "rounds": args.rounds, "levels": list(LEVELS),
                                      "settle_s": args.settle},
                              versions={"isoinspect": package_version()})
    with tempfile.TemporaryDirectory(prefix="isoinspect-netbench-") as workdir:
        root = private_root(workdir, "netbench")
        spawner = Spawner(scratch_dir=workdir)
        try:
            argvs = commands(root, docker)
            lifecycle, start = sequential(argvs, args.runs, args.warmup, spawner)
            costs = []
            for metric, samples in (("lifecycle", lifecycle), ("start", start)):
                for (runtime, mode), values in samples.items():
                    record.add({"kind": "startup", "target": f"{runtime}/{mode}",
                                "metric": metric, "status": "ok", "unit": "s",
                                "samples": values, "stats": stats.summarize(values),
                                "labels": {"network": mode}})
                costs += [dict(network_cost(samples, runtime), metric=metric)
                          for runtime in sorted({key[0] for key in samples})]
            record.set(network_cost=costs)
            for level in LEVELS:
                for key, argv_ in argvs.items():
                    walls, each = [], []
                    for _ in range(args.rounds):
                        time.sleep(args.settle)
                        wall, starts = concurrent_batch(argv_, level)
                        walls.append(wall)
                        each += starts
                    record.add({"kind": "concurrency", "target": f"{key[0]}/{key[1]}",
                                "level": level, "status": "ok", "wall_s": stats.median(walls),
                                "containers_per_second": level / stats.median(walls),
                                "samples": each, "stats": stats.summarize(each)})
        finally:
            spawner.close()
            clean_root(root)
        record.finish()
    _print(record)
    return 0


def _print(record) -> None:
    print(f"record: {record.path}")
    for cost in record.data.get("network_cost", []):
        print(f"{cost['metric']:<10}{cost['runtime']:<11} none "
              f"{cost['median_none_s'] * 1e3:8.1f} ms   bridge "
              f"{cost['median_bridge_s'] * 1e3:8.1f} ms   added {cost['added_s'] * 1e3:7.1f} ms"
              f"   ratio {_fmt_ratio(cost['ratio'])}")
    print(f"{'target':<20}{'level':>6}{'median start ms':>17}{'p90 ms':>9}{'batch ms':>10}"
          f"{'starts/s':>10}")
    for result in record.results:
        if result["kind"] == "concurrency":
            s = result["stats"]
            print(f"{result['target']:<20}{result['level']:>6}{s['p50'] * 1e3:>17.1f}"
                  f"{s['p90'] * 1e3:>9.1f}{result['wall_s'] * 1e3:>10.1f}"
                  f"{result['containers_per_second']:>10.1f}")


def _fmt_ratio(ratio: dict) -> str:
    low, high = ratio["ci"]
    return f"{ratio['ratio']:.2f} [{low:.2f}, {high:.2f}]"


if __name__ == "__main__":
    sys.exit(main())
