"""What a runner runs inside a target: an image layer, one command line, one output parser.

``bench overhead`` measures the workload program (benches/overhead/program.py); a second suite
(e.g. Debian's sysbench/fio/iperf3 in another image) plugs into the same runners by giving its
own :class:`Suite`. A run's output is trusted only when every requested test has its line and
the end marker is there: anything else is a :class:`RunError` (the target's error, never a
zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from isoinspect.benches.overhead.base_image import BaseImage


class RunError(RuntimeError):
    """One run of a suite inside a target gave no usable output (the reason is the message)."""


@dataclass(frozen=True)
class Suite:
    """Which layer goes into every target's image, which argv runs it, how to read it.

    ``layer()``: a directory whose content is added on top of the target's base image (the
    same content, the same way, for every target). ``command(binary, tests, duration_ms)``: the
    argv of one run (``binary`` is where the suite's program is inside that target).
    ``parse(text)``: the figures (objects with ``test``, ``status``, ``ns_per_op``, ``value``,
    ``unit``, ``reason``). ``end``: the marker printed after the last test.
    """

    name: str
    layer: Callable[[], str]
    binary: str
    command: Callable[[str, Sequence[str], int], list[str]]
    parse: Callable[[str], list]
    end: str
    tests: Callable[[], list[str]]
    #: seconds a run may take beyond its tests' own time (start-up, warm-ups)
    slack_s: float = 30.0
    #: the image the layer goes on top of in container targets (None: busybox); base_image.py
    base: "BaseImage | None" = None

    def argv(self, tests: Sequence[str], duration_ms: int, binary: str | None = None) -> list[str]:
        return self.command(binary or self.binary, tests, duration_ms)

    def timeout(self, tests: Sequence[str], duration_ms: int, slowdown: float = 1.0) -> float:
        """How long one run of ``tests`` may take (``slowdown``: e.g. an emulated CPU)."""
        return self.slack_s + slowdown * len(tests) * (3 * duration_ms / 1000.0 + 2.0)

    def figures(self, text: str, tests: Sequence[str]) -> dict:
        """test -> figure of one run's output; RunError if a test's line or the end is missing."""
        if self.end not in text:
            raise RunError(f"no {self.end} in the output: {_tail(text)}")
        try:
            found = {figure.test: figure for figure in self.parse(text)}
        except ValueError as exc:  # a malformed line: the run is not trusted either
            raise RunError(str(exc)) from None
        missing = [test for test in tests if test not in found]
        if missing:
            raise RunError(f"no line for test(s) {', '.join(missing)}: {_tail(text)}")
        return {test: found[test] for test in tests}


def _tail(text: str, limit: int = 300) -> str:
    text = " ".join(text.strip().split())
    return repr(text[-limit:]) if text else "(no output)"


def workload_suite() -> Suite:
    """The workload program of benches/overhead/program.py (our own gVisor-style loops)."""
    from isoinspect.benches.overhead import program

    def command(binary: str, tests: Sequence[str], duration_ms: int) -> list[str]:
        return [binary, "-d", "/tmp", "-t", str(duration_ms), *tests]

    return Suite(name="workload", layer=program.layer_dir,
                 binary="/usr/local/bin/isoinspect-workload", command=command,
                 parse=program.parse, end="@@W-END",
                 tests=lambda: list(program.TEST_NAMES))


SUITE_NAMES = ("own", "tools", "all")


def make_suite(name: str) -> Suite:
    """``--suite``: own (the workload program on busybox), tools (sysbench, fio, iperf3 in
    debian:bookworm-tools, with the workload's cpu control), all (both, in the tools image)."""
    from isoinspect.benches.overhead import tools
    from isoinspect.runtime.errors import USAGE_EXIT_CODE, UsageError

    if name == "own":
        return workload_suite()
    if name in ("tools", "all"):
        return tools.tools_suite(with_every_own_test=name == "all")
    raise UsageError(f"unknown suite {name!r}; known: {', '.join(SUITE_NAMES)}",
                     exit_code=USAGE_EXIT_CODE)
