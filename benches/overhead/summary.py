"""From figures to the overhead table: per target and test, p50 with its CI and the ratio to
the host; the cpu control check; the fixed-width table and the RunRecord results.

The ratio is time per unit of work in the target / on the host (p50 over rounds, both from
``ns_per_op``): 1.0 costs nothing, 2.0 takes twice as long, whatever the displayed unit (a
throughput in MiB/s that halves is a ratio of 2). Container rounds run interleaved with the
host's, so their ratios are paired by round; a batch target (the VM) ran on its own, unpaired.
``control`` divides a ratio by the target's own cpu-control ratio: for a VM under TCG, whose
emulated CPU slows everything, what is left is the cost of the isolation itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from isoinspect.benches import stats

BASELINE = "host"
CONTROL = "cpu"
#: a container target's cpu control outside this band means the harness, not the target
CONTROL_BAND = (0.85, 1.18)
#: tests whose point is the device under the file system (their write must leave memory)
DEVICE_TESTS = ("file_fsync", "file_direct")
NO_DEVICE = "fsync does not reach a device (tmpfs/overlay-in-memory)"


@dataclass
class Series:
    """One target's figures for one test, round by round (seconds per op, displayed value)."""

    target: str
    test: str
    rounds: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    unit: str = ""
    unsupported: str = ""
    errors: list[str] = field(default_factory=list)
    #: the file system the test wrote in (the last round's that said; "" if none did)
    fs: str = ""
    fs_magic: str = ""
    in_memory: bool = False

    def add(self, round_index: int, figure) -> None:
        """Record one round's figure of this test (ok, unsupported or error)."""
        if getattr(figure, "fs", ""):   # the tools suite's figures name no file system
            self.fs, self.fs_magic = figure.fs, figure.fs_magic
            self.in_memory = self.in_memory or figure.in_memory
        if figure.status == "ok" and figure.ns_per_op is not None and figure.ns_per_op > 0:
            self.rounds.append(round_index)
            self.seconds.append(figure.ns_per_op / 1e9)
            self.values.append(figure.value)
            self.unit = figure.unit or self.unit
        elif figure.status == "unsupported":
            self.unsupported = figure.reason or "unsupported"
        else:
            self.errors.append(f"round {round_index + 1}: {figure.status} "
                               f"{figure.reason or 'no measurement'}")

    def by_round(self) -> dict[int, float]:
        return dict(zip(self.rounds, self.seconds))


@dataclass
class TargetInfo:
    """What a table and a record need to know about one target besides its series."""

    name: str
    status: str = "pending"   # pending | ok | unsupported | error | skipped
    reason: str = ""
    version: str = ""
    container: bool = True
    batch: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Cell:
    """One (target, test): status, p50 with its CI, the displayed value and the ratios."""

    target: str
    test: str
    status: str
    reason: str = ""
    unit: str = ""
    value: float | None = None
    summary: dict = field(default_factory=lambda: {"n": 0})
    ratio: dict | None = None
    control: dict | None = None
    harness_suspect: bool = False
    fs: str = ""
    fs_magic: str = ""
    #: a device test (DEVICE_TESTS) that wrote to a memory file system: its figure is memory's
    no_device: bool = False

    def to_result(self, series: Series, info: TargetInfo) -> dict:
        """The RunRecord ``overhead`` result (samples in seconds per op, like every record)."""
        out = {"kind": "overhead", "target": self.target, "test": self.test,
               "status": self.status, "reason": self.reason, "version": info.version,
               "unit": "s/op", "value_unit": self.unit, "value": self.value,
               "values": list(series.values), "samples": list(series.seconds),
               "rounds": list(series.rounds), "stats": self.summary}
        if self.ratio:
            out["ratio"] = self.ratio
        if self.control:
            out["control_ratio"] = self.control
        if info.labels:
            out["labels"] = dict(info.labels)
        if self.harness_suspect:
            out["harness_suspect"] = True
        if self.fs:
            out["fs"], out["fs_magic"] = self.fs, self.fs_magic
        if self.no_device:
            out["no_device"], out["device_note"] = True, no_device_text(self)
        errors = series.errors + info.errors
        if errors:
            out["errors"], out["error_count"] = errors[:10], len(errors)
        return out


def host_ratio(series: Series, host: Series | None, paired: bool) -> dict | None:
    """p50 seconds per op of ``series`` / the host's, paired by round when both have >= 2
    common rounds (and ``paired``), else each side resampled on its own."""
    if host is None or not series.seconds or not host.seconds:
        return None
    own, base = series.by_round(), host.by_round()
    common = [r for r in own if r in base]
    if paired and len(common) >= 2:
        ratio = stats.ratio_ci([own[r] for r in common], [base[r] for r in common], paired=True)
    else:
        ratio = stats.ratio_ci(series.seconds, host.seconds, paired=False)
    ratio["vs"] = BASELINE
    return ratio


def control_ratio(series: Series, control: Series | None, host: Series | None,
                  host_control: Series | None) -> dict | None:
    """The ratio to the host divided by the target's own cpu-control ratio (with a CI)."""
    if None in (control, host, host_control) or series.test == CONTROL:
        return None
    sides = []
    for test, ctl in ((series, control), (host, host_control)):
        mine, theirs = test.by_round(), ctl.by_round()
        common = [r for r in mine if r in theirs]
        if not common:
            return None
        sides.append(([mine[r] for r in common], [theirs[r] for r in common]))
    (num, num_ctl), (den, den_ctl) = sides
    ratio = stats.control_ratio_ci(num, num_ctl, den, den_ctl)
    ratio["vs"] = f"{BASELINE}, over the target's own {CONTROL} ratio"
    return ratio


def status_of(series: Series, info: TargetInfo) -> tuple[str, str]:
    """A cell's status and reason: a test without a measurement is never a zero."""
    if info.status in ("unsupported", "skipped"):
        return info.status, info.reason
    if series.seconds:
        return "ok", ""
    if series.unsupported:
        return "unsupported", series.unsupported
    if series.errors:
        return "error", series.errors[-1]
    if info.errors:
        return "error", info.errors[-1]
    if info.status == "error":
        return "error", info.reason
    return "skipped", info.reason or "not measured (interrupted?)"


def cells_for(infos: list[TargetInfo], series: dict[tuple[str, str], Series],
              tests: list[str]) -> list[Cell]:
    """Every (target, test) cell, with the cpu control check applied to container targets."""
    cells = []
    for info in infos:
        control = series.get((info.name, CONTROL))
        host_control = series.get((BASELINE, CONTROL))
        for test in tests:
            one = series.setdefault((info.name, test), Series(info.name, test))
            status, reason = status_of(one, info)
            cell = Cell(info.name, test, status, reason, one.unit, fs=one.fs,
                        fs_magic=one.fs_magic,
                        no_device=one.in_memory and test in DEVICE_TESTS)
            if one.seconds:
                cell.summary = stats.summarize(one.seconds)
                cell.value = stats.median(one.values)
                if info.name != BASELINE:
                    host = series.get((BASELINE, test))
                    cell.ratio = host_ratio(one, host, paired=not info.batch)
                    cell.control = control_ratio(one, control, host, host_control)
            cells.append(cell)
    for name in suspects(cells, infos):
        for cell in cells:
            if cell.target == name:
                cell.harness_suspect = True
    return cells


def no_device_text(cell: Cell) -> str:
    """Why a device test's figure is memory's: the file system it found (statfs f_type)."""
    return f"{NO_DEVICE}: wrote to {cell.fs} ({cell.fs_magic})"


def suspects(cells: list[Cell], infos: list[TargetInfo]) -> list[str]:
    """Container targets whose cpu control ratio is outside CONTROL_BAND (the harness is
    then wrong, or the machine too noisy: a pure CPU loop costs the same in a container)."""
    containers = {info.name for info in infos if info.container}
    low, high = CONTROL_BAND
    return [cell.target for cell in cells
            if cell.test == CONTROL and cell.target in containers and cell.ratio
            and not low <= cell.ratio["ratio"] <= high]


# -- presentation --------------------------------------------------------------------------

def number(value: float) -> str:
    """Three significant digits or so, no exponent."""
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def ratio_text(ratio: dict | None) -> str:
    if not ratio:
        return ""
    low, high = ratio["ci"]
    return f"x{ratio['ratio']:.2f} [{low:.2f}, {high:.2f}]"


def cell_text(cell: Cell, with_control: bool = False) -> str:
    """``value unit (xratio [lo, hi])``, ``with_control`` also ``/cpu xratio [lo, hi]``."""
    if cell.status != "ok":
        return cell.status
    text = f"{number(cell.value)} {cell.unit}"
    if cell.no_device:
        text += f" [{cell.fs}]"
    if cell.ratio:
        text += f" ({ratio_text(cell.ratio)})"
    if with_control and cell.control:
        text += f" /{CONTROL} {ratio_text(cell.control)}"
    return text


def format_table(cells: list[Cell], infos: list[TargetInfo], tests: list[str]) -> list[str]:
    """Rows = tests, columns = targets (those that measured something), then the notes; a
    batch target's (the VM's) cells also carry the ratio over its own cpu control."""
    shown = [info for info in infos if any(c.target == info.name and c.status == "ok"
                                           for c in cells)]
    by_key = {(c.target, c.test): c for c in cells}
    headers = ["test"] + [_column(info) for info in shown]
    rows = [[test] + [cell_text(by_key[(info.name, test)], info.batch) for info in shown]
            for test in tests]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines + notes(cells, infos)


def _column(info: TargetInfo) -> str:
    accelerator = info.labels.get("accelerator")
    return f"{info.name} ({accelerator})" if accelerator else info.name


def notes(cells: list[Cell], infos: list[TargetInfo]) -> list[str]:
    out = []
    for info in infos:
        if info.status in ("unsupported", "skipped", "error") and info.reason:
            out.append(f"  {info.name}: {info.status}: {info.reason}")
        elif info.errors:
            out.append(f"  {info.name}: {len(info.errors)} failed run(s); last: {info.errors[-1]}")
    for cell in cells:
        if cell.status in ("unsupported", "error") and cell.reason and \
                not any(i.name == cell.target and i.status != "ok" for i in infos):
            out.append(f"  {cell.target} {cell.test}: {cell.status}: {cell.reason}")
    out += [f"  {cell.target} {cell.test}: {no_device_text(cell)}" for cell in cells
            if cell.no_device and cell.status == "ok"]
    for name in dict.fromkeys(c.target for c in cells if c.harness_suspect):
        out.append(warning(name, next(c for c in cells if c.target == name
                                      and c.test == CONTROL)))
    return (["notes:"] + out) if out else []


def warning(target: str, control: Cell) -> str:
    low, high = CONTROL_BAND
    return (f"  harness suspect: {target}'s {CONTROL} control is {ratio_text(control.ratio)} "
            f"the host's, outside [{low}, {high}] (a pure CPU loop should cost the same)")
