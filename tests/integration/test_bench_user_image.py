"""Issue 18: `bench startup --image IMG -- CMD` benchmarks the user's own image and command
(hyperfine's core use) in every target that can run it, from the user's isoinspect store."""

from __future__ import annotations

import json
import subprocess

from conftest import CLI
from isoinspect.benches.targets.docker import docker_binary

TARGETS = "isoinspect-cli,isoinspect-lib,runc,docker"
#: passes only inside the test's image: its file, its ENV and its WORKDIR
CHECK = 'test "$MARK" = yes && test "$PWD" = /work && cat /mark'


def _bench(iso, tmp_path, *args: str) -> tuple[subprocess.Popen, str, str]:
    """Run the bench on the test's store; (process, stdout, stderr)."""
    bench = subprocess.Popen(
        [CLI, "bench", "startup", "--quick", "--runs", "3", "--trace-runs", "0",
         "--results-dir", str(tmp_path / "results"), "--json", str(tmp_path / "out.json"),
         *args], env=iso.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = bench.communicate(timeout=600)
    return bench, out, err


def _record(tmp_path) -> dict:
    with open(tmp_path / "out.json") as handle:
        return json.load(handle)


def _lifecycle(record: dict) -> dict:
    return {r["target"]: r for r in record["results"]
            if r.get("kind") == "startup" and r["metric"] == "lifecycle"}


def _no_docker_image_left(pid: int) -> None:
    left = subprocess.run([docker_binary(), "images", "-q", f"isoinspect-bench-{pid}-image"],
                          capture_output=True, text=True).stdout.split()
    assert left == []


def _bench_built_image(iso, tmp_path, dockerfile: str, tag: str, targets: str,
                       *command: str) -> tuple[str, int]:
    """Build ``dockerfile`` (with a /mark file in its context) as ``tag`` and bench ``command``
    in it on ``targets``, which must all succeed: (stdout, the bench's pid)."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "mark").write_text("from-the-image\n")
    (context / "Dockerfile").write_text(dockerfile)
    iso("build", "--network", "none", "-t", tag, str(context), check=True, timeout=300)
    bench, out, err = _bench(iso, tmp_path, "--targets", targets, "--image", tag, "--",
                             *command)
    assert bench.returncode == 0, out + err
    results = _lifecycle(_record(tmp_path))
    for target in targets.split(","):
        assert results[target]["status"] == "ok", results[target]
        assert len(results[target]["samples"]) == 3
    return out, bench.pid


def test_own_image_and_command_in_every_target(iso, tmp_path):
    out, pid = _bench_built_image(iso, tmp_path, "FROM busybox\nCOPY mark /mark\nENV MARK=yes\n"
                                  "WORKDIR /work\n", "isoinspect-benchimg:1", TARGETS,
                                  "sh", "-c", CHECK)
    assert "image isoinspect-benchimg:1: sh -c" in out
    assert _record(tmp_path)["config"]["image"] == "isoinspect-benchimg:1"
    _no_docker_image_left(pid)


def test_busybox_echo_records_results(iso, tmp_path):
    bench, out, err = _bench(iso, tmp_path, "--targets", TARGETS, "--image", "busybox", "--",
                             "echo", "hi")
    assert bench.returncode == 0, out + err
    results = _lifecycle(_record(tmp_path))
    assert all(results[t]["status"] == "ok" and results[t]["samples"]
               for t in TARGETS.split(",")), results
    _no_docker_image_left(bench.pid)


def test_non_zero_exit_fails_clearly_unless_ignored(iso, tmp_path):
    targets = "isoinspect-cli,runc,docker,host"
    bench, out, err = _bench(iso, tmp_path, "--targets", targets, "--image", "busybox", "--",
                             "sh", "-c", "exit 3")
    assert bench.returncode == 1, out + err
    for target in ("isoinspect-cli", "runc", "docker", "host-exec"):
        assert f"{target}: Command terminated with non-zero exit code: 3" in err, err
    assert "on this host, not in busybox" in err  # the host target says where CMD ran
    assert {r["status"] for r in _lifecycle(_record(tmp_path)).values()} == {"failed"}
    assert "Traceback" not in out + err
    bench, out, err = _bench(iso, tmp_path, "--targets", targets, "--ignore-failure",
                             "--image", "busybox", "--", "sh", "-c", "exit 3")
    assert bench.returncode == 0, out + err
    assert {r["status"] for r in _lifecycle(_record(tmp_path)).values()} == {"ok"}


def test_missing_image_is_one_line(iso, tmp_path):
    bench, out, err = _bench(iso, tmp_path, "--image", "isoinspect-no-such-image", "--", "true")
    assert bench.returncode == 125
    assert err.strip() == "isoinspect: unable to find image 'isoinspect-no-such-image'"
    assert not (tmp_path / "results").exists()  # refused before anything ran or was recorded


def test_targets_that_cannot_run_an_image_say_why(iso, tmp_path):
    bench, out, err = _bench(iso, tmp_path, "--targets", "isoinspect-lib,unshare,qemu",
                             "--include-slow", "--image", "busybox", "--", "true")
    assert bench.returncode == 0, out + err
    assert "qemu: unsupported: cannot run an arbitrary image" in out
    results = _lifecycle(_record(tmp_path))
    assert results["qemu"]["status"] == "unsupported"
    assert results["unshare"]["status"] == "ok"  # named: it runs `true` on the host


def test_image_user_applies_in_every_target(iso, tmp_path):
    """The image's USER (a name, resolved in the image's /etc/passwd and /etc/group as `run`
    and Docker resolve it) is the process user of runc's and runsc's bundles too (crun
    refuses this hybrid host): the command fails the bench unless it runs as nobody
    (65534:65534) with the image's group membership."""
    check = 'test "$(id -u):$(id -g)" = 65534:65534 && id -G | grep -qw 4343'
    _, pid = _bench_built_image(
        iso, tmp_path, "FROM busybox\nRUN echo 'isoinspect-extra:x:4343:nobody' >> /etc/group\n"
        "USER nobody\n", "isoinspect-benchuser:1", "isoinspect-cli,runc,runsc,docker",
        "sh", "-c", check)
    _no_docker_image_left(pid)
    # The same check as root fails, in runc's bundle as in Docker: the bench says so.
    bench, out, err = _bench(iso, tmp_path, "--targets", "runc,docker", "--image", "busybox",
                             "--", "sh", "-c", check)
    assert bench.returncode == 1 and "runc: Command terminated with non-zero exit code: 1" \
        in err and "docker: Command terminated with non-zero exit code: 1" in err, err
    iso("rmi", "isoinspect-benchuser:1")
