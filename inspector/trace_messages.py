"""What a measured process and its tracer process say to each other (``trace_session`` ->
``trace_server``): one request, one reply, pickled over a Unix socket pair.

Events stay the inspector's decoded dicts (what ``timeline`` and ``events`` read); everything
else is a typed message. Requests are small and answered at once, so a request made between two
measured runs costs the measured process one round trip and nothing during the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# -- requests (measured process -> tracer process) ---------------------------------------------

@dataclass(frozen=True)
class Open:
    """Load the probes (the first request); answered by Ready or Failed."""

    probes: tuple[str, ...]
    filter_enabled: bool = True
    measure_cost: bool = True
    all_clones: bool = False
    all_prctl: bool = False
    buffer: str = "ring"


@dataclass(frozen=True)
class Watch:
    """Add pids (their trees are followed in the kernel) and cgroup ids to the filter."""

    pids: tuple[int, ...] = ()
    cgroups: tuple[int, ...] = ()


@dataclass(frozen=True)
class Unwatch:
    """Remove pids and cgroup ids; ``everything``: empty the filter (pid trees included)."""

    pids: tuple[int, ...] = ()
    cgroups: tuple[int, ...] = ()
    everything: bool = False


@dataclass(frozen=True)
class Begin:
    """A run begins: forget the events kept so far, then watch ``watch``; answered by a Snapshot
    (the probes' cost so far, to subtract at the end of the run)."""

    watch: Watch = field(default_factory=Watch)


@dataclass(frozen=True)
class Collect:
    """Read the buffer now and hand over the events kept since Begin (or the last Collect);
    ``unwatch_all``: then empty the filter (the run is over)."""

    unwatch_all: bool = False


@dataclass(frozen=True)
class AskCost:
    """The probes' own cost since load."""


@dataclass(frozen=True)
class AskRunq:
    """The run-queue delay histogram of traced tasks; ``clear``: reset it instead."""

    clear: bool = False


@dataclass(frozen=True)
class Close:
    """Detach the probes and exit."""


# -- replies (tracer process -> measured process) ----------------------------------------------

@dataclass(frozen=True)
class ProbeCost:
    """The probes' own run time since load (kernel.bpf_stats) and the events lost."""

    mode: str
    bpf_stats: str | None
    run_time_ns: int
    run_cnt: int
    ns_per_run: float
    lost_events: int
    programs: int
    load_seconds: float
    missing_tracepoints: tuple[str, ...] = ()

    @classmethod
    def from_tracer(cls, cost: dict) -> "ProbeCost":
        return cls(cost["mode"], cost["bpf_stats"], cost["run_time_ns"], cost["run_cnt"],
                   cost["ns_per_run"], cost["lost_events"], cost["programs"],
                   cost["load_seconds"], tuple(cost["missing_tracepoints"]))

    def as_dict(self) -> dict:
        """``Tracer.cost()``'s shape (reports and ``run --trace`` print it)."""
        return {"mode": self.mode, "bpf_stats": self.bpf_stats, "run_time_ns": self.run_time_ns,
                "run_cnt": self.run_cnt, "ns_per_run": self.ns_per_run,
                "lost_events": self.lost_events, "programs": self.programs,
                "load_seconds": self.load_seconds,
                "missing_tracepoints": list(self.missing_tracepoints)}


@dataclass(frozen=True)
class Ready:
    pid: int
    mode: str
    buffer: str
    missing: tuple[str, ...]
    checks: tuple[dict, ...]
    load_seconds: float
    stats_method: str | None


@dataclass(frozen=True)
class Failed:
    """The probes could not be loaded (or a request failed): the one-line reason."""

    reason: str


@dataclass(frozen=True)
class Done:
    """A request without an answer was carried out."""


@dataclass(frozen=True)
class Snapshot:
    cost: ProbeCost


@dataclass(frozen=True)
class Events:
    """Decoded (not attributed) events since Begin / the last Collect, and the cost now."""

    events: list[dict]
    cost: ProbeCost


@dataclass(frozen=True)
class Runq:
    histogram: dict
