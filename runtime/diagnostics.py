"""One diagnostics vocabulary: the :class:`Check` result, its closed :class:`Status`, and the
registry every diagnostic function is registered in, once, under a group.

Why one place: ``doctor`` (host, inspector and peer checks), the inspector's capability probes
and ``verify``'s limit checks used to have three result types with overlapping status words
(ok/missing/degraded/unknown plus free-form overrides, and PASS/FAIL/UNSUPPORTED/ERROR). A fact
of this host now has one status whoever reports it, and doctor, verify and the tests find the
checks in one registry instead of each keeping a list.

Groups: ``host`` (runtime.hostcheck), ``inspector`` (inspector.capabilities), ``peers``
(benches.peers) and ``verify`` (benches.verify.verify). A module registers its checks when it is
imported; the command that runs a group imports the module. Not on the container start path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping


class Status(enum.StrEnum):
    """What a check found, as doctor words it (a closed set; compares equal to its word).
    ``ok`` is the tri-state doctor's JSON and exit code use; ``verdict`` is verify's word
    (None where verify has no such outcome)."""

    OK = "ok"                    # works / the limit was enforced
    FAIL = "missing"             # does not work / the limit was not enforced
    DEGRADED = "degraded"        # does not work, isoinspect works around it
    UNSUPPORTED = "unsupported"  # cannot work here (a runtime or host that lacks it); detail: why
    SKIP = "n/a"                 # does not apply to this host's setup
    ERROR = "unknown"            # could not be tried, or the check itself broke

    @property
    def ok(self) -> bool | None:
        return _OK[self]

    @property
    def verdict(self) -> str | None:
        return _VERDICT.get(self)

    @classmethod
    def judge(cls, ok: bool | None, degraded: bool = False) -> Status:
        """Works (True), does not (False: DEGRADED if worked around) or not tried (None)."""
        if ok is True:
            return cls.OK
        if ok is None:
            return cls.ERROR
        return cls.DEGRADED if degraded else cls.FAIL

    @classmethod
    def from_verdict(cls, verdict: str) -> Status:
        """verify's PASS / FAIL / UNSUPPORTED / ERROR -> the status; ValueError otherwise."""
        for status, word in _VERDICT.items():
            if word == verdict:
                return status
        raise ValueError(f"unknown verify status {verdict!r}")


_OK = {Status.OK: True, Status.FAIL: False, Status.DEGRADED: False, Status.UNSUPPORTED: False,
       Status.SKIP: None, Status.ERROR: None}
_VERDICT = {Status.OK: "PASS", Status.FAIL: "FAIL", Status.UNSUPPORTED: "UNSUPPORTED",
            Status.ERROR: "ERROR"}
VERDICTS = tuple(_VERDICT.values())


@dataclass(frozen=True)
class Check:
    """One diagnostic result: what was checked, what was found, and what isoinspect does
    about it (``impact``). ``data`` holds machine-readable evidence (versions, paths, counts)."""

    name: str
    status: Status
    detail: str = ""
    impact: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):  # a bool from the old ok/degraded style
            raise TypeError(f"check {self.name!r}: status must be a Status, not "
                            f"{self.status!r}")

    @property
    def ok(self) -> bool | None:
        return self.status.ok

    def as_dict(self) -> dict[str, Any]:
        """The JSON row doctor prints (and the inspector puts in its trace records)."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "impact": self.impact,
                "degraded": self.status is Status.DEGRADED, "data": dict(self.data),
                "status": self.status.value}


def crashed(name: str, exc: BaseException) -> Check:
    """The result of a check that raised: a broken check must not take its command down."""
    return Check(name, Status.ERROR, f"check crashed: {type(exc).__name__}: {exc}",
                 "please report this")


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Entry:
    """A registered check. ``family`` subdivides the group: doctor's table section ("Host",
    "cgroups", ...) or verify's limit ("memory", "cpu", ...). ``run`` takes no arguments and
    returns a Check or several for doctor's groups; verify's take (runtime, context) and run
    under ``timeout`` seconds."""

    group: str
    name: str
    run: Callable[..., Any]
    family: str = ""
    timeout: float | None = None


class Registry:
    """Checks by group, in registration order; a (group, name) is registered once."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}

    def add(self, entry: Entry) -> Entry:
        key = (entry.group, entry.name)
        old = self._entries.get(key)
        if old is not None and _origin(old.run) != _origin(entry.run):
            raise ValueError(f"check {entry.name!r} is already registered in group "
                             f"{entry.group!r} (by {_origin(old.run)})")
        self._entries[key] = entry  # the same function again: a module reload
        return entry

    def register(self, group: str, name: str, family: str = "",
                 timeout: float | None = None) -> Callable[[Callable], Callable]:
        """Decorator: register the function as check *name* of *group*; it stays callable
        with its own (test) arguments."""
        def decorate(fn: Callable) -> Callable:
            self.add(Entry(group, name, fn, family, timeout))
            return fn
        return decorate

    def entries(self, group: str) -> list[Entry]:
        return [e for e in self._entries.values() if e.group == group]

    def run(self, group: str, names: Iterable[str] | None = None
            ) -> list[tuple[Entry, Check]]:
        """Run the no-argument checks of *group* (all, or the entries *names*) in order; a
        check that raises gives an ERROR result named after its entry, the others still run."""
        entries = self.entries(group)
        if names is not None:
            wanted = set(names)
            unknown = wanted - {e.name for e in entries}
            if unknown:
                raise KeyError(f"no check {', '.join(sorted(unknown))} in group {group!r}")
            entries = [e for e in entries if e.name in wanted]
        out: list[tuple[Entry, Check]] = []
        for entry in entries:
            try:
                found = entry.run()
            except Exception as exc:  # noqa: BLE001 - reported as the check's result
                out.append((entry, crashed(entry.name, exc)))
                continue
            results = [found] if isinstance(found, Check) else list(found)
            out.extend((entry, check) for check in results)
        return out


def by_family(results: Iterable[tuple[Entry, Check]]) -> dict[str, list[Check]]:
    """Results of :meth:`Registry.run` grouped by their entry's family, in order."""
    out: dict[str, list[Check]] = {}
    for entry, check in results:
        out.setdefault(entry.family, []).append(check)
    return out


def _origin(fn: Callable) -> str:
    target = getattr(fn, "func", fn)  # functools.partial
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


REGISTRY = Registry()
register = REGISTRY.register

