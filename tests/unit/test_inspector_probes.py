"""Inspector probes without root: generated BPF text, event decoding, timelines, attribution."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys

import pytest

from isoinspect.inspector import nsflags, timeline
from isoinspect.inspector.attribution import Attributor, Container, container_from_path
from isoinspect.inspector.events import decode, describe
from isoinspect.inspector.probes import PROBES, program, tracepoints, tracepoints_used
from isoinspect.inspector.probes.common import EV, Event, STR_LEN
from isoinspect.inspector.tracer import BpfStats, prog_stats
from isoinspect.runtime.linux import namespaces

HEX = "ab" * 32


# ---- generated program -------------------------------------------------------------------

def _probe_bodies(text: str) -> dict[str, str]:
    bodies = {}
    for match in re.finditer(r"TRACEPOINT_PROBE\((\w+), (\w+)\)\n\{(.*?)\n\}\n", text, re.S):
        bodies[f"{match.group(1)}:{match.group(2)}"] = match.group(3)
    return bodies


def test_each_tracepoint_has_exactly_one_probe():
    text = program()
    used = tracepoints_used(text)
    assert len(used) == len(set(used)), "a tracepoint can take only one TRACEPOINT_PROBE"
    assert set(used) == set(tracepoints())


def test_placeholders_are_filled():
    for filtered in (True, False):
        text = program(filter_enabled=filtered)
        for token in ("FILTER_ENABLED_VALUE", "STR_LEN_VALUE", "EV_DEFINES", "EV_TYPE",
                      "EMIT_CONDITION", "FLAGS_CODE", "PTR_CODE", "STR_CODE",
                      "FIRST_RUN_CODE"):
            assert token not in text
        assert f"#define FILTER_ENABLED {int(filtered)}" in text
        assert f"#define STR_LEN {STR_LEN}" in text


def test_namespace_probe_reads_clone3_flags_from_user_memory():
    bodies = _probe_bodies(program(["namespaces"]))
    assert "bpf_probe_read_user(&cflags" in bodies["syscalls:sys_enter_clone3"]
    assert "args->unshare_flags" in bodies["syscalls:sys_enter_unshare"]
    assert "(s->flags & NS_MASK)" in bodies["syscalls:sys_exit_clone"]
    assert "syscalls:sys_enter_setns" in bodies
    assert "task:task_newtask" in bodies
    all_clones = _probe_bodies(program(["namespaces"], all_clones=True))
    assert "if (1)" in all_clones["syscalls:sys_exit_clone"]


def test_merged_conditions_or_together():
    """clone: namespaces wants clones creating namespaces, enforcement wants -EAGAIN."""
    exit_clone = _probe_bodies(program(["namespaces", "enforcement"]))["syscalls:sys_exit_clone"]
    assert "(s->flags & NS_MASK)" in exit_clone and "ret == -11" in exit_clone
    only_enforcement = _probe_bodies(program(["enforcement"]))["syscalls:sys_exit_clone"]
    assert "NS_MASK)" not in only_enforcement.split("EMIT")[0].split("if (")[-1]
    assert "ret == -11" in only_enforcement


def test_prctl_only_seccomp_and_no_new_privs_unless_asked():
    body = _probe_bodies(program(["startup"]))["syscalls:sys_exit_prctl"]
    assert "(s->flags == 22 || s->flags == 38)" in body
    every = _probe_bodies(program(["startup"], all_prctl=True))["syscalls:sys_exit_prctl"]
    assert "if (1)" in every


def test_newtask_emitted_once_even_with_several_probes():
    body = _probe_bodies(program())["task:task_newtask"]
    assert body.count("EV_NEWTASK") == 1
    assert "pending_run.update" in body            # startup's first-run variant wins
    assert "filter_pids.update" in body            # the pid tree is followed


def test_shared_filter_and_maps():
    text = program()
    assert "BPF_HASH(filter_cgroups, u64, u8" in text
    assert "bpf_get_current_cgroup_id()" in text
    assert text.count("static __always_inline int is_wanted") == 1
    # OOM victims when the OOM-ing task or the victim is traced; cgroup events when the
    # task, the cgroup or the attached pid is traced
    bodies = _probe_bodies(text)
    assert "cgroup_wanted(0, victim)" in bodies["oom:mark_victim"]
    assert "cgroup_wanted(args->id, 0)" in bodies["cgroup:cgroup_mkdir"]
    assert "cgroup_wanted(args->dst_id, args->pid)" in bodies["cgroup:cgroup_attach_task"]
    # sched_switch is hot: one map lookup, no filter
    assert "is_wanted" not in bodies["sched:sched_switch"]


def test_missing_tracepoints_are_dropped():
    text = program(available=lambda c, e: e not in ("sys_enter_clone3", "mark_victim"))
    used = tracepoints_used(text)
    assert "syscalls:sys_exit_clone3" not in used       # pairs go together
    assert "oom:mark_victim" not in used
    assert "syscalls:sys_enter_unshare" in used


def test_event_struct_matches_the_c_layout():
    text = program()
    assert ctypes.sizeof(Event) == 6 * 8 + 6 * 4 + 16 + STR_LEN
    struct = text.split("struct event_t {")[1].split("};")[0]
    c_fields = re.findall(r"\b(?:u64|s64|u32|s32|char)\s+(\w+)", struct)
    assert c_fields == [name for name, _ in Event._fields_]


def test_ev_defines_cover_all_types():
    text = program()
    for name, number in EV.items():
        assert f"#define EV_{name.upper()} {number}" in text


def test_probe_modules_list_their_tracepoints():
    for name, module in PROBES.items():
        assert set(tracepoints_used(program([name]))) <= set(module.TRACEPOINTS) | {
            "task:task_newtask", "sched:sched_process_exit"}


def test_cli_prints_the_program_without_root():
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "isoinspect", "trace", "--ebpf",
                          "--probes", "namespaces"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "TRACEPOINT_PROBE(syscalls, sys_enter_unshare)" in out.stdout
    assert "#define FILTER_ENABLED 0" in out.stdout
    assert "oom" not in out.stdout.split("#define EV_")[0]
    bad = subprocess.run([sys.executable, "-m", "isoinspect", "trace", "--ebpf", "--probes",
                          "bogus"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 125 and "unknown probe" in bad.stderr


# ---- decoding ----------------------------------------------------------------------------

def _raw(type_name, **fields):
    raw = Event()
    raw.type = EV[type_name]
    for key, value in fields.items():
        setattr(raw, key, value)
    return raw


def test_nsflags():
    assert namespaces.decode(0x40000000) == ["net"]
    assert namespaces.decode(0x04000000 | 0x00020000) == ["mnt", "uts"]
    assert namespaces.decode(0x11) == []
    assert nsflags.decode_setns(0) == ["any"]
    assert nsflags.decode_setns(0x40000000) == ["net"]
    assert namespaces.encode(["net", "pid"]) == 0x60000000
    assert nsflags.label(0) == "none" and nsflags.label(0x60000000) == "net+pid"
    assert namespaces.ALL_FLAGS == 0x7E020080
    assert "#define NS_MASK 0x7E020080ULL" in program()


def test_decode_unshare_and_costs():
    events = [decode(_raw("unshare", ts=1, dur=600_000, flags=0x40000000, ret=0, pid=7,
                          tid=7, comm=b"unshare")),
              decode(_raw("unshare", ts=2, dur=400_000, flags=0x40000000, ret=0)),
              decode(_raw("unshare", ts=3, dur=12_000, flags=0x04000000, ret=0)),
              decode(_raw("unshare", ts=4, dur=1_000, flags=0x04000000, ret=-1))]
    assert events[0]["namespaces"] == ["net"] and events[0]["comm"] == "unshare"
    assert "net 600.0us" in describe(events[0])
    costs = nsflags.per_type_costs(events)
    assert costs["net"]["count"] == 2 and costs["net"]["mean_us"] == 500.0
    assert costs["uts"] == {"count": 1, "mean_us": 12.0, "p50_us": 12.0, "min_us": 12.0,
                            "max_us": 12.0}


def test_decode_eagain_is_a_pids_limit_event():
    event = decode(_raw("clone", ret=-11, flags=0x01200011))
    assert event["event"] == "pids_limit" and event["syscall"] == "clone"
    assert "EAGAIN" in describe(event)
    ok = decode(_raw("clone", ret=1234, target=1234, flags=0x40000000))
    assert ok["event"] == "clone" and ok["target_pid"] == 1234


def test_decode_cgroup_oom_exec():
    mk = decode(_raw("cgroup_mkdir", aux=99, level=0, flags=2, str=b"/docker/" + HEX.encode()))
    assert mk["id"] == 99 and mk["hierarchy"] == 0 and mk["path"].endswith(HEX)
    oom = decode(_raw("oom_victim", target=55, aux=4096, flags=8192, dur=1500,
                      str=b"tr"))
    assert oom["victim_comm"] == "tr" and oom["anon_rss_pages"] == 4096
    assert oom["kill_to_mark_ns"] == 1500
    exe = decode(_raw("exec", str=b"/bin/true", pid=5, target=5, aux=5))
    assert exe["filename"] == "/bin/true"
    pr = decode(_raw("prctl", flags=38, ret=0))
    assert pr["option"] == "PR_SET_NO_NEW_PRIVS"


# ---- attribution -------------------------------------------------------------------------

def test_container_from_docker_and_our_paths():
    docker = container_from_path(f"/system.slice/docker-{HEX}.scope")
    assert docker.id == HEX and docker.runtime == "docker" and docker.name == HEX[:12]
    ours = container_from_path(f"/isoinspect-1234abcd/{HEX}")
    assert ours.runtime == "isoinspect"
    assert container_from_path("/user.slice") is None


def test_attributor_by_mkdir_path_registration_and_pid_tree():
    att = Attributor()
    att.note_cgroup(77, f"/docker/{HEX}")
    found = att.lookup(cgroup_id=77)
    assert found.runtime == "docker" and found.cgroup_id == 77
    runc = att.register(Container("mine", "mine", "runc", "/runc/mine", 88), pid=100)
    assert att.lookup(cgroup_id=88) is runc
    att.add_child(100, 101)
    assert att.lookup(pid=101) is runc
    assert att.lookup(cgroup_id=5, pid=999) is None
    calls = []
    lazy = Attributor(resolve_id=lambda cid: calls.append(cid) or None)
    assert lazy.lookup(cgroup_id=3) is None and lazy.lookup(cgroup_id=3) is None
    assert calls == [3]                                # misses are remembered


# ---- timeline ----------------------------------------------------------------------------

def _ev(ts, event, **kw):
    return {"ts_ns": ts, "event": event, "pid": kw.pop("pid", 1), "cgroup_id": 0, **kw}


def test_timeline_phases_in_order_with_offsets():
    path = f"/isoinspect/{HEX}"
    events = [
        _ev(1_000_000, "cgroup_mkdir", path=path, hierarchy=0, id=9),
        _ev(2_000_000, "clone", pid=10, target_pid=20, dur_ns=500_000, namespaces=["net"]),
        _ev(2_600_000, "first_run", pid=20, target_pid=20, delay_ns=100_000),
        _ev(3_000_000, "cgroup_attach", pid=20, target_pid=20, path=path, hierarchy=0, id=9),
        _ev(3_500_000, "mount", pid=20, dur_ns=50_000, path="/a"),
        _ev(3_700_000, "mount", pid=20, dur_ns=50_000, path="/b"),
        _ev(4_000_000, "pivot_root", pid=20, dur_ns=20_000, path="."),
        _ev(4_100_000, "sethostname", pid=20, dur_ns=1_000, hostname="x"),
        _ev(4_200_000, "prctl", pid=20, dur_ns=1_000, option="PR_SET_SECCOMP"),
        _ev(5_000_000, "exec", pid=20, target_pid=20, filename="/bin/true"),
        _ev(6_000_000, "exit", pid=20, target_pid=20),
        _ev(9_000_000, "cgroup_rmdir", path=path, hierarchy=0, id=9),
        _ev(9_500_000, "exec", pid=999, filename="/unrelated"),
    ]
    tl = timeline.build(events, cgroup_path=path)
    assert tl["init_pid"] == 20                        # inferred from the cgroup attach
    names = [p["phase"] for p in tl["phases"]]
    assert names == ["cgroup_created", "clone", "first_run", "cgroup_joined", "mounts",
                     "pivot_root", "hostname", "seccomp", "exec", "exit", "cgroup_removed"]
    mounts = next(p for p in tl["phases"] if p["phase"] == "mounts")
    assert mounts["dur_ns"] == 250_000 and mounts["detail"].startswith("2 mounts")
    assert tl["summary"]["to_exec_ms"] == 4.0
    assert tl["summary"]["clone_to_exec_ms"] == 3.0
    assert tl["total_ms"] == 8.0
    assert "exec" in timeline.format_table(tl)


def test_timeline_of_unknown_container_is_empty():
    tl = timeline.build([_ev(1, "exec", pid=3)], cgroup_path="/nothing")
    assert tl["phases"] == [] and tl["init_pid"] is None


# ---- tracer helpers (no BPF) -------------------------------------------------------------

def test_bpf_stats_restores_the_old_value(tmp_path):
    knob = tmp_path / "bpf_stats_enabled"
    knob.write_text("0\n")
    stats = BpfStats(str(knob), use_fd=False)
    assert stats.enable() and knob.read_text() == "1"
    stats.restore()
    assert knob.read_text() == "0"
    knob.write_text("1\n")
    stats = BpfStats(str(knob), use_fd=False)
    stats.enable()
    stats.restore()
    assert knob.read_text() == "1\n"                     # was on: left alone
    assert not BpfStats(str(tmp_path / "missing"), use_fd=False).enable()


def test_prog_stats_reads_fdinfo(tmp_path):
    (tmp_path / "7").write_text("pos:\t0\nprog_type:\t5\nrun_time_ns:\t1234\nrun_cnt:\t3\n")
    assert prog_stats(7, str(tmp_path)) == {"run_time_ns": 1234, "run_cnt": 3}
    assert prog_stats(8, str(tmp_path)) == {"run_time_ns": 0, "run_cnt": 0}


def test_run_path_does_not_import_bcc_or_the_inspector():
    code = ("import sys; from isoinspect.cli import options, run_cmd; "
            "print(any(m == 'bcc' or m.startswith('isoinspect.inspector') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_trace_option_is_in_the_run_table():
    from isoinspect.cli.options import parse_run_args

    options, image, command = parse_run_args(["--trace", "--rm", "busybox", "true"])
    assert options["trace"] is True and image == "busybox" and command == ["true"]
    options, _, _ = parse_run_args(["busybox"])
    assert options["trace"] is False


def test_preflight_refuses_non_root_in_one_line():
    from isoinspect.inspector.tracer import TracerUnavailable, preflight

    with pytest.raises(TracerUnavailable) as info:
        preflight(euid=1000)
    assert "root" in str(info.value) and "\n" not in str(info.value)
    assert "cgroup readers only" in str(info.value)


def _bare_tracer():
    from isoinspect.inspector.tracer import Tracer

    tracer = Tracer.__new__(Tracer)        # the event path only: no BPF
    tracer.attributor, tracer.keep, tracer.events, tracer.on_event = Attributor(), True, [], None
    return tracer


def test_handle_attributes_by_mkdir_path_then_pid_tree():
    tracer = _bare_tracer()
    path = f"/docker/{HEX}"
    tracer.handle({"event": "cgroup_mkdir", "ts_ns": 1, "pid": 1, "cgroup_id": 1,
                   "hierarchy": 0, "id": 500, "path": path})
    tracer.handle({"event": "newtask", "ts_ns": 2, "pid": 10, "cgroup_id": 500,
                   "target_pid": 11})
    tracer.handle({"event": "first_run", "ts_ns": 3, "pid": 11, "cgroup_id": 0,
                   "target_pid": 11, "delay_ns": 5})
    tracer.handle({"event": "cgroup_attach", "ts_ns": 4, "pid": 1, "cgroup_id": 1,
                   "hierarchy": 3, "id": 9, "path": path, "target_pid": 12})
    tracer.handle({"event": "exec", "ts_ns": 5, "pid": 99, "cgroup_id": 1})
    assert [e.get("container_id") for e in tracer.events] == [HEX, HEX, HEX, HEX, None]
    assert tracer.attributor.lookup(pid=12).id == HEX


def test_fragments_never_return_early():
    """Blocks of several probes share one TRACEPOINT_PROBE: an early return would skip the
    blocks after it."""
    for filtered in (True, False):
        for name, body in _probe_bodies(program(filter_enabled=filtered)).items():
            assert body.count("return 0;") == 1 and body.rstrip().endswith("return 0;"), name


def test_ring_buffer_by_default_perf_buffer_on_request():
    ring = program()
    assert "BPF_RINGBUF_OUTPUT(events, 1024)" in ring and "perf_submit" not in ring
    assert "dropped.increment(0)" in ring              # a full ring buffer counts lost events
    perf = program(buffer="perf")
    assert "BPF_PERF_OUTPUT(events)" in perf and "ringbuf_output" not in perf
    with pytest.raises(ValueError):
        program(buffer="pipe")


def test_without_bcc_trace_says_so_in_one_line_and_still_runs_the_command(tmp_path):
    """The PyPI package named 'bcc' (or anything without BPF) must not be mistaken for BCC."""
    (tmp_path / "bcc.py").write_text("# not BCC\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "isoinspect", "trace", "--", "sh", "-c",
                          "exit 3"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    if os.geteuid() == 0:
        assert len(lines) == 1 and "is not BCC" in lines[0] and "cgroup readers only" in lines[0]
    else:
        assert len(lines) == 1 and "needs root" in lines[0]


def test_load_failure_is_one_line_with_the_compiler_error():
    from isoinspect.inspector.tracer import TracerUnavailable, _load

    class FakeBcc:
        @staticmethod
        def BPF(text):
            os.write(2, b"/virtual/main.c:3:1: error: unknown type name 'foo_t'\n")
            raise Exception("Failed to compile BPF module <text>")

    with pytest.raises(TracerUnavailable) as info:
        _load(FakeBcc, "int x;")
    message = str(info.value)
    assert "unknown type name 'foo_t'" in message and "cgroup readers only" in message
    assert "\n" not in message


def test_log2_histogram_summary():
    from isoinspect.inspector.tracer import summarize_log2

    assert summarize_log2({}, 0) == {"count": 0}
    out = summarize_log2({1: 50, 4: 45, 17: 5}, 50 * 1 + 45 * 10 + 5 * 70000)
    assert out["count"] == 100 and out["p50_us_le"] == 1 and out["p99_us_le"] == 131071
    assert out["max_us_le"] == 131071 and out["buckets"][1] == {"le_us": 15, "count": 45}


def test_runq_delay_only_with_a_filter():
    body = _probe_bodies(program(["enforcement"]))
    assert "runq_hist.increment(bpf_log2l(delta_us))" in body["sched:sched_switch"]
    assert "filter_pids.lookup(&woken)" in body["sched:sched_wakeup_new"]
    assert "#if FILTER_ENABLED" in body["sched:sched_wakeup"]


def test_namer_gives_containers_their_runtime_names():
    att = Attributor(namer=lambda c: "calm_otter" if c.runtime == "isoinspect" else None)
    att.note_cgroup(5, f"/isoinspect/{HEX}")
    att.note_cgroup(6, f"/docker/{HEX[::-1]}")
    assert att.lookup(cgroup_id=5).name == "calm_otter"
    assert att.lookup(cgroup_id=6).name == HEX[::-1][:12]
