"""The real-tools suite (sysbench, fio, iperf3) runs on the host, in debian:bookworm-tools under our
runtime, and in the QEMU guest (the host's /usr shared in), with 1 s per test (~9 s a run)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from doctor_facts import lacks

from isoinspect.benches.overhead import tools

SECONDS = 1
TIMEOUT = 120  # 8 tests of ~1 s plus fio's file layout; generous for a loaded 2-core host


def _statuses(figures) -> dict[str, str]:
    return {f.test: (f.status if f.status == "ok" else f"{f.status}:{f.reason}") for f in figures}


def test_the_suite_runs_on_the_host_with_every_figure_ok(tmp_path):
    missing = [tool for tool in tools.TOOLS if not shutil.which(tool)]
    assert not missing, f"scripts/setup.sh installs {missing}"
    argv = tools.command(params=tools.RunParams(str(tmp_path), SECONDS, tools.random_port()))
    run = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0 and "@@T-DONE" in run.stdout, run.stderr
    figures = tools.parse(run.stdout)
    assert _statuses(figures) == {t.name: "ok" for t in tools.TESTS}, run.stdout[-2000:]
    assert list(tmp_path.iterdir()) == []  # fio's file is removed


def test_the_suite_runs_in_the_tools_image_under_our_runtime(iso):
    made = iso("images", "--ensure-debian", "--with-tools", timeout=600)
    assert made.returncode == 0, made.stderr
    assert "debian:bookworm-tools created" in made.stderr
    argv = tools.command(params=tools.RunParams("/tmp", SECONDS, tools.random_port()))
    run = iso("run", "--rm", "--network", "none", "debian:bookworm-tools", *argv,
              timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "fstype=overlayfs" in run.stdout
    figures = tools.parse(run.stdout)
    assert _statuses(figures) == {t.name: "ok" for t in tools.TESTS}, run.stdout[-2000:]
    # a second ensure finds it (the plain debian:bookworm is another image, see test_image_debian)
    assert "debian:bookworm-tools present" in iso("images", "--ensure-debian",
                                                  "--with-tools").stderr


def test_the_qemu_guest_runs_the_hosts_tools_and_refuses_o_direct_on_its_tmpfs():
    reason = lacks("peers", "qemu")
    if reason:
        pytest.skip(reason)
    from isoinspect.benches.vm.qemu import GuestVM

    argv = tools.command(params=tools.RunParams("/tmp", SECONDS, tools.random_port()))
    result = GuestVM().run(argv, timeout=300)
    assert result.returncode == 0, result.stderr
    statuses = _statuses(tools.parse(result.stdout))
    # The guest's root is a tmpfs; Debian 12's 6.1 kernel has no O_DIRECT on tmpfs (6.6+ has).
    expected = {t.name: "ok" for t in tools.TESTS}
    expected["fio_direct_write"] = "unsupported:o_direct_not_supported_by_tmpfs"
    assert statuses == expected, result.stdout[-2000:]


def test_bench_overhead_suite_tools_in_every_kind_of_container_target(tmp_path):
    """One round through the CLI: isoinspect (the image in its store), runc (the tar as the
    bundle's root), docker (docker import'ed): the tools ran there (busybox has none), the
    cpu control came from the workload layer on top, and the imported images are gone."""
    import json
    import os
    import sys

    cli = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    out = tmp_path / "record.json"
    run = subprocess.run([cli, "bench", "overhead", "--suite", "tools", "--rounds", "1",
                          "--targets", "host,isoinspect,runc,docker",
                          "--tests", "sysbench_cpu,fio_direct_write,iperf3_tcp",
                          "--results-dir", str(tmp_path), "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["config"]["suite"] == "tools"
    cells = {(r["target"], r["test"]): r for r in data["results"] if r["kind"] == "overhead"}
    for target in ("host", "isoinspect", "runc", "docker"):
        for test in ("cpu", "sysbench_cpu", "fio_direct_write", "iperf3_tcp"):
            assert cells[(target, test)]["status"] == "ok", (target, test, cells[(target, test)])
    images = subprocess.run(["docker", "images", "-q", "isoinspect-overhead-base"],
                            capture_output=True, text=True).stdout.split()
    assert images == [], "the docker import of the tools image was not removed"
