"""The timeline's exec phase is the user's command, not a runtime's hop through a descriptor."""

from isoinspect.inspector import timeline


def _ev(event, ts, **extra):
    return dict(event=event, ts_ns=ts, pid=7, cgroup_id=42, **extra)


def test_exec_of_a_descriptor_stub_is_skipped_for_the_command():
    events = [_ev("seccomp", 10, dur_ns=1), _ev("exec", 20, filename="/dev/fd/92"),
              _ev("exec", 30, filename="/bin/true")]
    phases = {p["phase"]: p for p in timeline.build(events, cgroup_id=42, init_pid=7)["phases"]}
    assert (phases["exec"]["detail"], phases["exec"]["ts_ns"]) == ("/bin/true", 30)


def test_only_a_descriptor_exec_is_still_shown():
    events = [_ev("exec", 20, filename="/proc/self/fd/3")]
    phases = {p["phase"]: p for p in timeline.build(events, cgroup_id=42, init_pid=7)["phases"]}
    assert phases["exec"]["detail"] == "/proc/self/fd/3"
