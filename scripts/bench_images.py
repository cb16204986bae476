#!/usr/bin/env python3
"""Image operations, isoinspect vs Docker on the same image in the same run.

  1. a rebuild where every step is cached (isoinspect build vs docker build, legacy builder),
  2. a pull of an image whose layers are all present (same registry, same image),
  3. ``load`` of a ``docker save`` tarball into an empty store (docker rmi between runs).

Needs root, dockerd (scripts/start-dockerd.sh) and docker-registry. Prints a table and writes
JSON (--json FILE). Usage: scripts/bench_images.py [--runs N] [--image busybox|debian]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")


def sh(*args, env=None, check=True):
    result = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if check and result.returncode:
        sys.exit(f"{' '.join(args)} failed: {result.stderr}")
    return result


def timed(fn, runs: int, before=None) -> list[float]:
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict:
    return {"runs": len(times), "median_ms": statistics.median(times) * 1e3,
            "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", choices=["busybox", "debian"], default="busybox")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    sh("bash", os.path.join(HERE, "start-dockerd.sh"))
    work = tempfile.mkdtemp(prefix="isoinspect-bench-images-")
    env = dict(os.environ, ISOINSPECT_ROOT=os.path.join(work, "root"))
    iso = lambda *a, **k: sh(CLI, *a, env=env, **k)  # noqa: E731
    base = f"bench-base-{opts.image}:1"
    results: dict = {"image": opts.image}
    registry = None
    try:
        iso("images", "--ensure-debian" if opts.image == "debian" else "--ensure-base")
        iso("tag", "debian:bookworm" if opts.image == "debian" else "busybox", base)
        base_tar = os.path.join(work, "base.tar")
        iso("save", "-o", base_tar, base)
        sh("docker", "load", "-i", base_tar)

        # 1. cached rebuild
        ctx = os.path.join(work, "ctx")
        os.makedirs(ctx)
        with open(os.path.join(ctx, "Dockerfile"), "w") as handle:
            handle.write(f"FROM {base}\nENV A=1\nWORKDIR /app\nCOPY f /app/f\n"
                         "RUN echo step > /app/s\nRUN echo two > /app/t\nLABEL x=y\n"
                         "CMD [\"cat\", \"/app/f\"]\n")
        with open(os.path.join(ctx, "f"), "w") as handle:
            handle.write("data\n" * 1000)
        denv = dict(os.environ, DOCKER_BUILDKIT="0")
        iso("build", "-q", "-t", "bench-app:1", ctx)
        sh("docker", "build", "--network", "none", "-q", "-t", "bench-app:1", ctx, env=denv)
        sys.path.insert(0, os.path.dirname(HERE))
        from isoinspect.runtime.image_build import Builder
        from isoinspect.runtime.runtime import Runtime

        lib_rt = Runtime(env["ISOINSPECT_ROOT"])
        devnull = open(os.devnull, "w")
        results["rebuild_cached"] = {
            "isoinspect_library": summary(timed(lambda: Builder(lib_rt, out=devnull).build(
                ctx, None, ["bench-app:1"]), opts.runs)),
            "isoinspect": summary(timed(lambda: iso("build", "-q", "-t", "bench-app:1", ctx),
                                        opts.runs)),
            "docker": summary(timed(lambda: sh("docker", "build", "--network", "none", "-q",
                                               "-t", "bench-app:1", ctx, env=denv),
                                    opts.runs)),
        }

        # 2. pull with every layer present (registry without auth, on loopback)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with open(os.path.join(work, "registry.yml"), "w") as handle:
            handle.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                         f"    rootdirectory: {work}/registry\nhttp:\n"
                         f"  addr: 127.0.0.1:{port}\n")
        registry = subprocess.Popen(["docker-registry", "serve",
                                     os.path.join(work, "registry.yml")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        ref = f"127.0.0.1:{port}/bench/app:1"
        sh("docker", "tag", "bench-app:1", ref)
        sh("docker", "push", ref)  # Docker's own (gzip) layers: both pull the same image
        iso("pull", ref)
        from isoinspect.runtime.image_registry import pull

        results["pull_all_present"] = {
            "isoinspect_library": summary(timed(lambda: pull(lib_rt.images, ref), opts.runs)),
            "isoinspect": summary(timed(lambda: iso("pull", ref), opts.runs)),
            "docker": summary(timed(lambda: sh("docker", "pull", "-q", ref), opts.runs)),
        }

        # 3. load of a docker save tarball into an empty store
        saved = os.path.join(work, "docker-save.tar")
        sh("docker", "save", "-o", saved, "bench-app:1")
        fresh = os.path.join(work, "fresh")

        def clear_ours():
            shutil.rmtree(fresh, ignore_errors=True)

        def clear_docker():
            sh("docker", "rmi", "-f", "bench-app:1", ref, base, check=False)

        fenv = dict(os.environ, ISOINSPECT_ROOT=fresh)
        from isoinspect.runtime.image_archive import load
        from isoinspect.runtime.images import ImageStore
        from isoinspect.runtime.roots import Roots

        results["load_docker_save"] = {
            "tar_bytes": os.path.getsize(saved),
            "isoinspect_library": summary(timed(lambda: load(ImageStore(Roots(fresh)), saved),
                                                opts.runs, clear_ours)),
            "isoinspect": summary(timed(lambda: sh(CLI, "load", "-i", saved, env=fenv),
                                        opts.runs, clear_ours)),
            "docker": summary(timed(lambda: sh("docker", "load", "-i", saved), opts.runs,
                                    clear_docker)),
        }
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait()
        sh("docker", "rmi", "-f", "bench-app:1", base, check=False)
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"image: {opts.image}, {opts.runs} runs each, median (min-max) ms")
    for name, row in results.items():
        if not isinstance(row, dict):
            continue
        ours, lib, theirs = row["isoinspect"], row["isoinspect_library"], row["docker"]
        print(f"{name:18} isoinspect CLI {ours['median_ms']:7.1f} ({ours['min_ms']:.1f}-"
              f"{ours['max_ms']:.1f})  library {lib['median_ms']:7.1f}  "
              f"docker CLI {theirs['median_ms']:7.1f} ({theirs['min_ms']:.1f}-"
              f"{theirs['max_ms']:.1f})  "
              f"docker/ours(CLI) x{theirs['median_ms'] / ours['median_ms']:.2f}")
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
