"""The inspector on this kernel, for real: eBPF tracepoints, our runtime's containers, OOM kills,
pids-limit hits and the cgroup counters that must agree with them.

One tracer (one BCC compile, ~3 s) is shared by the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from isoinspect.inspector import nsflags
from isoinspect.inspector.command import run_traced as run_command
from isoinspect.inspector.tracer import Tracer, TracerUnavailable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="eBPF needs root")

HERE = os.path.dirname(os.path.abspath(__file__))
CLONE3_HELPER = r"""
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
args = ctypes.create_string_buffer(struct.pack("8Q", 0x04000000, 0, 0, 0, 17, 0, 0, 0), 64)
pid = libc.syscall(435, args, ctypes.c_size_t(64))   # clone3(CLONE_NEWUTS, SIGCHLD)
if pid == 0:
    os._exit(0)
if pid < 0:
    raise SystemExit("clone3 failed: errno %d" % ctypes.get_errno())
os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def tracer():
    try:
        shared = Tracer()
    except TracerUnavailable as exc:
        pytest.fail(f"eBPF tracing must work on this host: {exc}")
    assert shared.stats.method == "fd", "BPF_ENABLE_STATS works on this kernel (>= 5.8)"
    stats_fd = shared.stats.fd
    yield shared
    shared.close()
    assert not os.path.exists(f"/proc/self/fd/{stats_fd}") or \
        "bpf-stats" not in os.readlink(f"/proc/self/fd/{stats_fd}"), "stats fd left open"


@pytest.fixture
def fresh(tracer):
    tracer.drain()
    tracer.events.clear()
    return tracer


def _mine(tracer, pid_events=None):
    return [e for e in tracer.events if e["event"] in ("unshare", "clone", "clone3", "setns")]


def test_unshare_net_and_uts_are_decoded_with_kernel_durations(fresh):
    for _ in range(5):
        assert run_command(fresh, ["unshare", "-n", "true"]) == 0
        assert run_command(fresh, ["unshare", "-u", "true"]) == 0
    unshares = [e for e in fresh.events if e["event"] == "unshare"]
    assert sorted({tuple(e["namespaces"]) for e in unshares}) == [("net",), ("uts",)]
    assert all(e["ret"] == 0 and e["dur_ns"] > 0 for e in unshares)
    costs = nsflags.per_type_costs(fresh.events)
    assert costs["net"]["count"] == 5 and costs["uts"]["count"] == 5
    # creating a network namespace costs the kernel far more than a uts one
    assert costs["net"]["p50_us"] > 5 * costs["uts"]["p50_us"], costs
    print("unshare cost per namespace type:", json.dumps(costs))
    # only the traced commands' pid trees were reported
    assert {e["comm"] for e in unshares} == {"unshare"}


def test_combined_flags_clone3_and_setns(fresh):
    assert run_command(fresh, ["unshare", "-m", "-i", "-p", "-f", "true"]) == 0
    assert run_command(fresh, [sys.executable, "-c", CLONE3_HELPER]) == 0
    holder = subprocess.Popen(["unshare", "-u", "sleep", "30"])   # untraced: a uts ns to join
    try:
        host_uts = os.readlink("/proc/self/ns/uts")
        for _ in range(200):
            try:
                if os.readlink(f"/proc/{holder.pid}/ns/uts") != host_uts:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        assert run_command(fresh, ["nsenter", "-t", str(holder.pid), "-u", "true"]) == 0
    finally:
        holder.kill()
        holder.wait()
    events = fresh.events
    combined = [e for e in events if e["event"] == "unshare"]
    assert combined and combined[0]["namespaces"] == ["mnt", "ipc", "pid"]
    clone3 = [e for e in events if e["event"] == "clone3"]
    assert clone3 and clone3[0]["namespaces"] == ["uts"] and clone3[0]["target_pid"] > 0
    newtask = [e for e in events if e["event"] == "newtask" and e["namespaces"] == ["uts"]]
    assert newtask, "task_newtask must report the clone3 child's namespace flags"
    setns = [e for e in events if e["event"] == "setns"]
    assert setns and setns[0]["namespaces"] == ["uts"] and setns[0]["ret"] == 0


def test_cost_and_lost_events_are_reported(fresh):
    run_command(fresh, ["true"])
    cost = fresh.cost()
    assert cost["bpf_stats"] == "fd"
    assert cost["run_cnt"] > 0 and cost["run_time_ns"] > 0
    assert cost["lost_events"] == 0
    assert cost["missing_tracepoints"] == []


# ---- our runtime ----------------------------------------------------------------------------

@pytest.fixture
def runtime(iso):
    from isoinspect.runtime.runtime import Runtime

    return Runtime(iso.root)


def _spec(command, **flags):
    from isoinspect.runtime.spec import ContainerSpec

    return ContainerSpec.from_flags("busybox", command, remove=True, **flags)


def test_short_container_is_seen_whole_and_attributed(fresh, runtime):
    from isoinspect.inspector.runtime_adapter import run_traced

    code, report = run_traced(runtime, _spec(["true"]), tracer=fresh)
    assert code == 0
    phases = [p["phase"] for p in report["timeline"]["phases"]]
    for phase in ("cgroup_created", "clone", "first_run", "cgroup_joined", "mounts",
                  "pivot_root", "hostname", "no_new_privs", "seccomp", "exec", "exit",
                  "cgroup_removed"):
        assert phase in phases, (phase, phases)
    order = {name: i for i, name in enumerate(phases)}
    assert order["cgroup_created"] < order["clone"] < order["exec"] < order["exit"] \
        < order["cgroup_removed"]
    clone = report["timeline"]["phases"][order["clone"]]
    assert set(clone["detail"].split("+")) >= {"mnt", "uts", "ipc", "pid", "net"}
    cid = report["container"]["id"]
    attributed = [e for e in report["events"] if e.get("container_id") == cid]
    assert any(e["event"] == "exec" and e["filename"] == "/bin/true" for e in attributed)
    assert report["container"]["cgroup_id"]
    print("timeline:", json.dumps(report["timeline"]["summary"]))


def test_oom_kill_is_attributed_and_matches_oom_control(fresh, runtime):
    from isoinspect.inspector.runtime_adapter import run_traced

    # tail allocates and volunteers as the victim, so it is the task in the OOM path when the
    # kernel marks it: the kernel sends SIGKILL *before* oom:mark_victim, and a victim running
    # on another CPU (the shell's command substitution before) could exit before its mark,
    # leaving no mark->exit latency to see (CI once)
    hog = ("head -c 200000000 /dev/zero | (echo 1000 > /proc/self/oom_score_adj; exec tail)"
           " >/dev/null; echo survived")
    code, report = run_traced(runtime, _spec(["sh", "-c", hog], memory="16m"), tracer=fresh)
    enforcement = report["enforcement"]
    ooms = [e for e in report["events"] if e["event"] == "oom_victim"]
    assert ooms, "no oom:mark_victim seen"
    assert all(e.get("container_id") == report["container"]["id"] for e in ooms)
    # the kernel's own count in the container's memory cgroup (memory.oom_control on v1,
    # memory.events on v2), read before the cgroup was removed
    assert enforcement["cgroup_oom_kill"] == len(ooms) == enforcement["oom_kills"]
    # each victim's exit was seen after its kill; how fast is for benchmarks, not tests (CI saw
    # 2 s under load), so the bound only says both happened within this run
    assert enforcement["oom_kill_to_exit_ms"] and all(
        0 <= ms < 60_000 for ms in enforcement["oom_kill_to_exit_ms"])
    assert "oom_kill" in [p["phase"] for p in report["timeline"]["phases"]]
    memory = report["cgroup"]["stats"]["memory"]
    assert memory["peak"] <= 16 << 20 and memory["peak"] > 8 << 20
    assert memory["max"] == 16 << 20 and memory["events"]["oom_kill"] == len(ooms)


def test_pids_limit_eagain_is_seen(fresh, runtime):
    from isoinspect.inspector.runtime_adapter import run_traced

    storm = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"
    code, report = run_traced(runtime, _spec(["sh", "-c", storm], pids_limit="4"),
                              tracer=fresh)
    hits = [e for e in report["events"] if e["event"] == "pids_limit"]
    assert hits and all(e.get("container_id") == report["container"]["id"] for e in hits)
    assert hits[0]["syscall"] in ("clone", "clone3", "fork", "vfork")
    assert report["enforcement"]["cgroup_pids_max_events"] >= len(hits) >= 1


def test_cpu_quota_throttling_from_cpu_stat_and_runq_delay(fresh, runtime):
    """A busy loop under a 0.1 CPU quota (10 ms per 100 ms period): cpu.stat counts throttled
    periods and the traced shell waits on the run queue for the next period (> 16 ms)."""
    from isoinspect.inspector.runtime_adapter import run_traced

    busy = "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done"   # ~55 ms of CPU
    code, report = run_traced(runtime, _spec(["sh", "-c", busy], cpus="0.1"), tracer=fresh)
    assert code == 0
    cpu = report["enforcement"]["cpu"]
    assert cpu["nr_periods"] > 0 and cpu["nr_throttled"] > 0 and cpu["throttled_usec"] > 0, cpu
    limits = report["cgroup"]["stats"]["cpu"]
    assert limits["quota_us"] == limits["period_us"] // 10
    runq = report["enforcement"]["runq_delay"]
    assert runq["count"] > 0 and runq["max_us_le"] >= 32767, (runq, cpu)   # waits > 16 ms
    print("runq under 0.1 CPU:", json.dumps({k: v for k, v in runq.items() if k != "buckets"}),
          json.dumps(cpu))


# ---- CLI --------------------------------------------------------------------------------------

def test_run_trace_prints_the_timeline(iso):
    result = iso("run", "--trace", "--rm", "busybox", "true", timeout=120)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "start-up timeline" in err
    for phase in ("cgroup_created", "clone", "exec", "exit", "cgroup_removed"):
        assert f"\n{phase} " in err, err
    assert "/bin/true" in err and "events lost" in err


def test_trace_command_streams_json_lines():
    cli = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    result = subprocess.run([cli, "trace", "--json", "--", "unshare", "-n", "true"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events = [e["event"] for e in lines]
    assert "unshare" in events and "exec" in events
    unshare = next(e for e in lines if e["event"] == "unshare")
    assert unshare["namespaces"] == ["net"] and unshare["dur_ns"] > 0
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["tracer"]["lost_events"] == 0
    assert summary["unshare_cost"]["net"]["count"] == 1


def test_trace_container_by_docker_style_id(tmp_path):
    """A container of another runtime: a cgroup whose path holds a 64-hex id (Docker's naming),
    found by an id prefix and every event attributed to it."""
    from isoinspect.runtime.cgroups.layout import read_layout

    layout = read_layout()
    cid = os.urandom(32).hex()
    parent = os.path.join(layout.v2, f"docker-test-{os.getpid()}")
    cgroup = os.path.join(parent, cid)
    os.makedirs(cgroup)
    go = tmp_path / "go"
    script = (f"echo $$ > {cgroup}/cgroup.procs; while [ ! -e {go} ]; do sleep 0.05; done; "
              "for i in 1 2 3; do /bin/true; done; unshare -u true")
    workload = subprocess.Popen(["sh", "-c", script])
    cli = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    trace = subprocess.Popen([cli, "trace", "--json", "--container", cid[:12], "--duration",
                              "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = trace.stderr.readline()
        assert f"tracing docker container {cid[:12]}" in ready, ready
        go.touch()
        assert workload.wait(timeout=30) == 0
        out, err = trace.communicate(timeout=60)
    finally:
        workload.kill()
        trace.kill()
        workload.wait()
        trace.wait()
        for directory in (cgroup, parent):
            for _ in range(100):
                try:
                    os.rmdir(directory)
                    break
                except OSError:
                    time.sleep(0.02)
    assert trace.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    events = [e for e in lines if e["event"] != "summary"]
    execs = [e for e in events if e["event"] == "exec" and e["filename"] == "/bin/true"]
    assert len(execs) == 3
    assert all(e.get("container_id") == cid for e in events), \
        [e for e in events if e.get("container_id") != cid]
    unshare = [e for e in events if e["event"] == "unshare"]
    assert unshare and unshare[0]["namespaces"] == ["uts"]
    assert any(e["event"] == "first_run" for e in events)


def _docker_image() -> str | None:
    import shutil

    if not shutil.which("docker"):
        return None
    try:
        out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                             capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    names = out.stdout.split()
    for candidate in ("isoinspect-busybox:latest", "busybox:latest"):
        if candidate in names:
            return candidate
    return None


def test_docker_container_is_attributed_by_its_id(tmp_path):
    """A real `docker run`: traced with no filter, its events carry the Docker container id
    (from the /docker/<id> cgroup path) and give a start-up timeline of runc's phases."""
    from isoinspect.inspector import timeline

    image = _docker_image()
    if image is None:
        pytest.skip("dockerd is not running or has no busybox image (make test starts it)")
    cli = os.path.join(os.path.dirname(sys.executable), "isoinspect")
    trace = subprocess.Popen([cli, "trace", "--json", "--duration", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cidfile = tmp_path / "cid"
    try:
        assert "tracing all processes" in trace.stderr.readline()
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "--cidfile",
                              str(cidfile), image, "true"], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        out, err = trace.communicate(timeout=60)
    finally:
        trace.kill()
        trace.wait()
    cid = cidfile.read_text().strip()
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "summary"
    events = events[:-1]
    mine = [e for e in events if e.get("container_id") == cid]
    assert mine, "no event attributed to the Docker container"
    assert {e["container"] for e in mine} == {cid[:12]}
    assert any(e["event"] == "cgroup_mkdir" and e["path"].endswith(cid) for e in mine)
    assert any(e["event"] == "exec" and e["filename"] == "/bin/true" for e in mine)
    unshare = [e for e in mine if e["event"] == "unshare"]
    assert unshare and {"net", "pid", "mnt"} <= set(unshare[0]["namespaces"])
    path = next(e["path"] for e in mine if e["event"] == "cgroup_mkdir")
    tl = timeline.build(events, cgroup_path=path, container_id=cid)
    phases = [p["phase"] for p in tl["phases"]]
    for phase in ("cgroup_created", "unshare", "pivot_root", "exec", "exit", "cgroup_removed"):
        assert phase in phases, phases
    print("docker timeline:", json.dumps(tl["summary"]))


def test_runc_container_named_by_its_cgroup_path(fresh, tmp_path):
    """runc started directly, with a cgroup path of our choosing (no hex id in it): the caller
    names the container by its path and the events and timeline follow from that."""
    import shutil

    from isoinspect.inspector import timeline
    from isoinspect.inspector.attribution import Container

    busybox = shutil.which("busybox")
    if not shutil.which("runc") or not busybox:
        pytest.skip("runc or busybox missing")
    from isoinspect.benches import bundle as oci_bundle

    name = f"isotest-runc-{os.getpid()}"
    path = f"/{name}"
    rootfs = oci_bundle.busybox_rootfs(str(tmp_path / "rootfs"), busybox)
    bundle = oci_bundle.write(str(tmp_path / "bundle"), rootfs,
                              oci_bundle.Workload(("/bin/true",), cgroups_path=path))
    fresh.attributor.register(Container(name, name, "runc", path, None))
    code = run_command(fresh, ["runc", "--root", str(tmp_path / "state"), "run", "--bundle",
                               str(bundle), name])
    assert code == 0
    mine = [e for e in fresh.events if e.get("container_id") == name]
    assert any(e["event"] == "exec" and e["filename"] == "/bin/true" for e in mine)
    assert any(e["event"] == "cgroup_mkdir" and e["hierarchy"] == 0 for e in mine)
    tl = timeline.build(fresh.events, cgroup_path=path, container_id=name)
    phases = [p["phase"] for p in tl["phases"]]
    for phase in ("cgroup_created", "cgroup_joined", "unshare", "pivot_root", "exec", "exit",
                  "cgroup_removed"):
        assert phase in phases, phases
    unshare = next(p for p in tl["phases"] if p["phase"] == "unshare")
    assert {"mnt", "pid", "net"} <= set(unshare["detail"].split("+"))
    print("runc timeline:\n" + timeline.format_table(tl))


def test_probe_cost_per_container_start_is_under_three_percent(runtime):
    """The probes' own run time (kernel.bpf_stats) per traced start, against a plain start's
    wall time, measured in the same run. Wall-time overhead is reported, not asserted: on a
    shared 2-CPU machine it is dominated by noise."""
    from isoinspect.inspector.overhead import measure

    result = measure(runtime, lambda: _spec(["true"]), runs=12, warmup=2, blocks=2)
    print("overhead:", json.dumps(result))
    assert result["lost_events"] == 0
    assert result["bpf_runs_per_start"] > 0
    assert result["bpf_cpu_pct_of_start"] < 3.0, result


def test_scorecard_of_our_container_and_of_the_host(iso):
    iso("run", "-d", "--name", "scored", "--memory", "64m", "--pids-limit", "50", "busybox",
        "sleep", "30", check=True)
    result = iso("scorecard", "--json", "scored", check=True)
    card = json.loads(result.stdout)
    for name in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
        assert card["namespaces"][name] == "own", card["namespaces"]
    assert card["seccomp"] == "filter" and card["no_new_privs"]
    assert "SYS_ADMIN" not in card["capabilities"]["effective"]
    assert card["cgroup"]["limits"]["memory"]["max"] == 64 << 20
    assert card["cgroup"]["limits"]["pids"]["max"] == 50
    assert card["verdict"]["level"] == "confined" and card["runs_as_root"]
    assert "runs as root without a user namespace" in card["verdict"]["text"]
    host = json.loads(iso("scorecard", "--json", str(os.getpid()), check=True).stdout)
    assert set(host["namespaces"].values()) == {"shared with host"}
    assert host["verdict"]["level"] == "not confined"


LEADER_EXITS_FIRST = r"""
#include <pthread.h>
#include <unistd.h>
static void *last(void *arg) { (void)arg; usleep(200000); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, last, 0); pthread_exit(0); }
"""


def test_a_process_whose_leader_exits_first_leaves_the_watch_set(fresh, tmp_path):
    """A Go runtime's last thread is often not its leader: the exit hook must forget the
    process (tgid), not that thread, or the pid stays watched and a reused pid is traced."""
    import ctypes

    source = tmp_path / "leader.c"
    source.write_text(LEADER_EXITS_FIRST)
    binary = tmp_path / "leader"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(binary), str(source)], check=True)
    watched = fresh.bpf[b"filter_pids"]
    fresh.watch_pid(os.getpid())
    try:
        child = subprocess.Popen([str(binary)])
        assert ctypes.c_uint32(child.pid) in watched, "a child of a watched process is watched"
        assert child.wait(timeout=30) == 0
        assert ctypes.c_uint32(child.pid) not in watched, "the exited process is still watched"
    finally:
        fresh.unwatch_pid(os.getpid())
