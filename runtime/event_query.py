"""Reading the event log for ``isoinspect events``: time bounds, filters, Docker's shapes, and
following the log as it grows (runtime/events.py writes it)."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Iterator

from isoinspect.runtime.errors import UsageError
from isoinspect.runtime.events import Event

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}
_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
FILTER_KEYS = ("container", "event", "type", "image")


def parse_duration(text: str) -> float | None:
    """Go's duration syntax (``10m``, ``1h30m``, ``1.5s``) in seconds; None if it is not one."""
    if not text or _DURATION_PART.sub("", text) != "":
        return None
    return sum(float(number) * _UNIT_SECONDS[unit]
               for number, unit in _DURATION_PART.findall(text))


def parse_time(text: str, now: float) -> float:
    """Docker's --since/--until value as a Unix time: a duration before ``now``, Unix seconds
    (``1700000000.5``), or an RFC 3339 date-time / date (local time unless it has a zone)."""
    duration = parse_duration(text)
    if duration is not None:
        return now - duration
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise UsageError(f"invalid time {text!r}: use a duration (10m, 1h30m), Unix seconds or "
                         "an RFC 3339 date (2006-01-02T15:04:05Z)")
    return parsed.timestamp()


@dataclass(frozen=True)
class EventFilter:
    """Docker's --filter: values of one key are alternatives, different keys must all match."""

    values: dict = field(default_factory=dict)  # key -> tuple of accepted values

    @classmethod
    def parse(cls, items: list[str]) -> "EventFilter":
        values: dict[str, tuple] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or key not in FILTER_KEYS or not value:
                raise UsageError(f"invalid filter {item!r}: use KEY=VALUE with KEY one of "
                                 f"{', '.join(FILTER_KEYS)}")
            values[key] = values.get(key, ()) + (value,)
        return cls(values)

    def matches(self, event: Event) -> bool:
        for key, accepted in self.values.items():
            if key == "event" and not _action_matches(event.action, accepted):
                return False
            if key == "type" and event.type not in accepted:
                return False
            if key == "container" and (event.type != "container" or not any(
                    value in (event.attributes.get("name"), event.id)
                    or (len(value) >= 3 and event.id.startswith(value)) for value in accepted)):
                return False
            if key == "image" and not any(
                    value in (event.attributes.get("image"), event.attributes.get("name"),
                              event.id) for value in accepted):
                return False
        return True


# Actions that carry the command after a colon ("exec_start: sh -c ls"): dockerd matches a
# filter naming one of them bare by prefix, every other filter exactly.
_PREFIX_ACTIONS = frozenset(("exec_create", "exec_start", "health_status"))


def _action_matches(action: str, accepted: tuple) -> bool:
    if action in accepted:
        return True
    return not _PREFIX_ACTIONS.isdisjoint(accepted) and action.startswith(accepted)


def _decode(line: bytes) -> Event | None:
    """One log line; a torn or foreign line is skipped, never fatal."""
    try:
        values = json.loads(line)
        return Event(**values)
    except (ValueError, TypeError):
        return None


def _lines(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            yield from handle
    except FileNotFoundError:
        return


def read(log: str, since: float | None, until: float | None,
         match: EventFilter) -> list[Event]:
    """Logged events in [since, until], oldest first (the rotated generation included)."""
    found = []
    for path in (log + ".1", log):
        for line in _lines(path):
            event = _decode(line)
            if _in_bounds(event, match, since, until):
                found.append(event)
    found.sort(key=lambda e: e.time_ns)
    return found


def _in_bounds(event: Event | None, match: EventFilter, since: float | None,
               until: float | None) -> bool:
    if event is None or not match.matches(event):
        return False
    seconds = event.time_ns / 1e9
    return (since is None or seconds >= since) and (until is None or seconds <= until)


def follow(log: str, match: EventFilter, since: float | None = None, until: float | None = None,
           interval: float = 0.1) -> Iterator[Event]:
    """Events from ``since`` (None: from now on), then every event appended to ``log``
    (across rotations) until ``until`` has passed, if given; the same file handle reads the
    past and the new lines, so none is missed or shown twice."""
    handle = None
    inode = None
    if since is not None:
        for line in _lines(log + ".1"):
            event = _decode(line)
            if _in_bounds(event, match, since, until):
                yield event
    try:
        while until is None or time.time() <= until:
            if handle is None:
                try:
                    handle = open(log, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                    if since is None:
                        handle.seek(0, os.SEEK_END)
                except FileNotFoundError:
                    handle = None
                    since = 0.0  # once it appears, all of it is new
            if handle is not None:
                for line in iter(handle.readline, b""):
                    if not line.endswith(b"\n"):  # a line still being written
                        handle.seek(-len(line), os.SEEK_CUR)
                        break
                    event = _decode(line)
                    if _in_bounds(event, match, since, until):
                        yield event
                try:
                    if os.stat(log).st_ino != inode:  # rotated: read the new file from its start
                        handle.close()
                        handle = open(log, "rb")
                        inode = os.fstat(handle.fileno()).st_ino
                        continue
                except FileNotFoundError:
                    pass
            time.sleep(interval)
    finally:
        if handle is not None:
            handle.close()


class Attributes(dict):
    """Docker's Actor.Attributes, a Go map: a key an event lacks reads as "<no value>" in a
    --format (``{{.Actor.Attributes.exitCode}}`` on a start event), not an error."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return "<no value>"


def docker_shape(event: Event) -> dict:
    """The event as ``docker events --format '{{json .}}'`` prints it."""
    seconds = event.time_ns // 1_000_000_000
    shaped = {"Type": event.type, "Action": event.action,
              "Actor": {"ID": event.id,  # keys sorted, as Go writes a map
                        "Attributes": Attributes(sorted(event.attributes.items()))},
              "scope": "local", "time": seconds, "timeNano": event.time_ns}
    if event.type == "container":
        shaped.update(status=event.action, id=event.id, **{"from": event.attributes["image"]})
    return shaped


def docker_line(event: Event) -> str:
    """Docker's default line: ``TIME TYPE ACTION ID (k=v, ...)``, local time in RFC 3339 with
    nanoseconds."""
    seconds, nanos = divmod(event.time_ns, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}"
             + (offset[:3] + ":" + offset[3:] if offset not in ("+0000", "") else "Z"))
    attributes = ", ".join(f"{key}={value}" for key, value in sorted(event.attributes.items()))
    return f"{stamp} {event.type} {event.action} {event.id} ({attributes})"
