"""The parsers of ``isoinspect events``: --since/--until values, --filter, and the log's lines."""

from __future__ import annotations

import pytest

from isoinspect.runtime.errors import UsageError
from isoinspect.runtime.event_query import EventFilter, parse_duration, parse_time, read
from isoinspect.runtime.events import Event, record
from isoinspect.runtime.roots import Roots


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("1h30m", 5400), ("1.5s", 1.5),
                                           ("250ms", 0.25), ("0s", 0), ("2h", 7200)])
def test_durations_are_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "1h 2m", "-5m"])
def test_non_durations(text):
    assert parse_duration(text) is None


def test_times_accept_docker_forms():
    now = 1_800_000_000.0
    assert parse_time("10m", now) == now - 600
    assert parse_time("1700000000", now) == 1_700_000_000
    assert parse_time("1700000000.25", now) == 1_700_000_000.25
    assert parse_time("2023-11-14T22:13:20Z", now) == 1_700_000_000
    assert parse_time("2023-11-14T23:13:20+01:00", now) == 1_700_000_000
    with pytest.raises(UsageError):
        parse_time("yesterday", now)


def _event(action: str, name: str = "web", cid: str = "a" * 64, kind: str = "container"):
    return Event(time_ns=1_700_000_000_000_000_000, type=kind, action=action, id=cid,
                 attributes={"name": name, "image": "busybox"})


def test_filters_or_within_a_key_and_across_keys():
    match = EventFilter.parse(["event=die", "event=start", "container=web"])
    assert match.matches(_event("die")) and match.matches(_event("start"))
    assert not match.matches(_event("create"))
    assert not match.matches(_event("die", name="db"))
    assert EventFilter.parse(["container=aaaa"]).matches(_event("die"))  # an id prefix
    assert not EventFilter.parse(["type=image"]).matches(_event("die"))
    for bad in ("event", "colour=red", "event="):
        with pytest.raises(UsageError):
            EventFilter.parse([bad])


def test_exec_actions_match_by_prefix_as_dockerd_does():
    """dockerd: a filter naming exec_create, exec_start or health_status bare matches the
    actions that carry a command after it; any other filter value matches exactly."""
    start, die = _event("exec_start: sh -c exit 3"), _event("exec_die")
    assert EventFilter.parse(["event=exec_start"]).matches(start)
    assert not EventFilter.parse(["event=exec_create"]).matches(start)
    assert EventFilter.parse(["event=exec_die"]).matches(die)
    assert not EventFilter.parse(["event=exec_start: sh"]).matches(start)  # exact: no
    assert not EventFilter.parse(["event=exec"]).matches(start)
    assert not EventFilter.parse(["event=exec_d"]).matches(die)


def test_log_lines_round_trip_and_torn_lines_are_skipped(tmp_path):
    roots = Roots(str(tmp_path))
    record(roots, _event("create"))
    with open(roots.run("events.log"), "ab") as handle:
        handle.write(b'{"time_ns": 1, "type"\n')  # torn or foreign: skipped
    record(roots, _event("die"))
    found = read(roots.run("events.log"), None, None, EventFilter())
    assert [event.action for event in found] == ["create", "die"]
    assert found[0] == _event("create")


def test_log_rotates_past_its_bound_and_reads_both_generations(tmp_path):
    from isoinspect.runtime.events import MAX_BYTES

    roots = Roots(str(tmp_path))
    record(roots, _event("create"))
    with open(roots.run("events.log"), "ab") as handle:
        handle.write(b"\n" * MAX_BYTES)  # blank lines: skipped by the reader
    record(roots, _event("die"))
    assert (tmp_path / "run" / "events.log.1").stat().st_size > MAX_BYTES
    assert (tmp_path / "run" / "events.log").stat().st_size < 1000
    found = read(roots.run("events.log"), None, None, EventFilter())
    assert [event.action for event in found] == ["create", "die"]


def test_hand_made_json_lines_are_json():
    """events.encode avoids importing json on the start path; json must read what it writes."""
    import json

    from isoinspect.runtime.events import encode

    event = Event(time_ns=7, type="container", action="die", id="x",
                  attributes={"name": 'q"uote\\back\nnew\x01ctl é', "exitCode": "3"})
    assert json.loads(encode(event)) == event.to_dict()


@pytest.mark.parametrize("attributes", [{}, {"name": "web-1", "image": "busybox:1.36"},
                                        {"name": "a b", "exitCode": "137", "signal": "15"},
                                        {"name": "é", "image": "x"}, {"name": "tab\there"},
                                        {"name": "q'uote<>&{}"}, {"del": "\x7f"}])
def test_event_lines_are_json_dumps_byte_for_byte(attributes):
    """Plain text (no _json needed) and the rest (through _json): json.dumps' bytes."""
    import json

    from isoinspect.runtime.events import encode

    event = Event(time_ns=1700000000123456789, type="container", action="destroy",
                  id="ab" * 32, attributes=attributes)
    expected = json.dumps({"time_ns": event.time_ns, "type": "container", "action": "destroy",
                           "id": event.id, "attributes": attributes}) + "\n"
    assert encode(event) == expected.encode()


def test_a_plain_event_line_loads_no_json_accelerator():
    """rm and stop write plain events: json_lite writes them without loading _json."""
    import subprocess
    import sys

    code = ("import sys; from isoinspect.runtime.events import Event, encode; "
            "encode(Event(time_ns=1, type='container', action='destroy', id='x', "
            "attributes={'name': 'web', 'image': 'busybox'})); "
            "print(sorted(m for m in sys.modules if 'json' in m))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['isoinspect.runtime.json_lite']"
