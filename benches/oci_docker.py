"""`docker run --runtime isoinspect` beside `docker run` (runc) on one private dockerd (in a
network namespace of its own: benches/private_dockerd.py), plus the bare OCI CLIs (`runc run` vs
`isoinspect-runc run`) on one busybox bundle.

    python -m isoinspect.benches.oci_docker [--runs N] [--warmup N] [--json OUT]

Targets are interleaved round-robin (one sample of each per round), so both see the same
machine state; setup (dockerd start, image import, bundle build) stays out of the timings.
Each sample is the wall time of one whole command (`docker run --rm --network none IMAGE true`,
i.e. create + start + wait + delete through dockerd, containerd and the shim).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from isoinspect.benches import bundle, stats
from isoinspect.benches.private_dockerd import DOCKER, IMAGE, RUNC_CLI, PrivateDocker


def _time(argv: list[str], env: dict | None = None) -> float:
    begin = time.perf_counter()
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - begin
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return elapsed


def make_bundle(directory: str) -> str:
    """A busybox bundle running ``true``, configured as every peer's (benches/bundle.py)."""
    rootfs = bundle.busybox_rootfs(os.path.join(directory, "rootfs"))
    return bundle.write(directory, rootfs, bundle.Workload(("/bin/true",)))


def run_benchmark(runs: int = 20, warmup: int = 2, include_cli: bool = True) -> dict:
    docker = PrivateDocker()
    tmp = tempfile.mkdtemp(prefix="isooci-bench-")
    samples: dict[str, list[float]] = {}
    try:
        docker.start()
        targets = {
            "docker run (runc)": [DOCKER, "run", "--rm", "--network", "none", IMAGE, "true"],
            "docker run --runtime isoinspect": [DOCKER, "run", "--rm", "--network", "none",
                                                "--runtime", "isoinspect", IMAGE, "true"],
        }
        envs = {name: docker.env for name in targets}
        if include_cli and shutil.which("runc"):
            bundle = make_bundle(os.path.join(tmp, "bundle"))
            targets["runc run"] = ["runc", "--root", f"{tmp}/runc-state", "run", "--bundle",
                                   bundle, "bench-runc"]
            targets["isoinspect-runc run"] = [RUNC_CLI, "--root", f"{tmp}/iso-state", "run",
                                              "--bundle", bundle, "bench-iso"]
            envs["runc run"] = envs["isoinspect-runc run"] = None
        for _ in range(warmup):
            for name, argv in targets.items():
                _time(argv, envs[name])
        for _ in range(runs):
            for name, argv in targets.items():
                samples.setdefault(name, []).append(_time(argv, envs[name]))
        from isoinspect.benches.machine import machine_info
        result = {"benchmark": "oci_docker", "runs": runs, "warmup": warmup,
                  "docker_server": docker.server_version(), "machine": machine_info(),
                  "targets": {name: dict(stats.summarize(values), samples=values)
                              for name, values in samples.items()}}
        base = samples["docker run (runc)"]
        result["ratio_isoinspect_vs_runc_docker"] = stats.ratio_ci(
            samples["docker run --runtime isoinspect"], base, paired=True)
        if "runc run" in samples:
            result["ratio_isoinspect_vs_runc_cli"] = stats.ratio_ci(
                samples["isoinspect-runc run"], samples["runc run"], paired=True)
        return result
    finally:
        docker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def format_table(result: dict) -> str:
    lines = [f"{'target':<34} {'n':>4} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9} "
             f"{'p50 95% CI ms':>17}"]
    for name, summary in result["targets"].items():
        lo, hi = summary["p50_ci"]
        ci = f"{lo * 1e3:.1f}-{hi * 1e3:.1f}" if lo is not None and hi is not None else "n/a"
        lines.append(f"{name:<34} {summary['n']:>4} {summary['mean'] * 1e3:>9.1f} "
                     f"{summary['p50'] * 1e3:>9.1f} {summary['p90'] * 1e3:>9.1f} {ci:>17}")
    for key in ("ratio_isoinspect_vs_runc_docker", "ratio_isoinspect_vs_runc_cli"):
        if key in result:
            r = result[key]
            lines.append(f"{key}: {r['ratio']:.2f} (95% CI {r['ci'][0]:.2f}-{r['ci'][1]:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoinspect.benches.oci_docker")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-cli", action="store_true", help="docker targets only")
    parser.add_argument("--json", default=None, help="write the result record here")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the private dockerd and its netns are removed.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    result = run_benchmark(args.runs, args.warmup, include_cli=not args.no_cli)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
