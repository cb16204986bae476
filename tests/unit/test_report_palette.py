"""One colour and one order per runtime: every chart the report draws colours a runtime alike,
tables list runtimes in the same order, and the legend appears once."""

from __future__ import annotations

import os
import re

import pytest
from matplotlib.colors import to_hex

from isoinspect.reports import charts, load, palette, render

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module")
def drawn():
    """Every figure the report draws (full run + control + a second run to compare)."""
    figures = []
    original = charts._png

    def keep(figure):
        figures.append(figure)
        return original(figure)

    charts._png = keep
    try:
        html = render.render(load.load_runs([fixture(n) for n in
                                             ("full.json", "rerun.json",
                                              "verify-control.json")]))
    finally:
        charts._png = original
    return figures, html


def runtime_artists(figure):
    """(runtime, colour) of every artist the charts tagged with a runtime (gid)."""
    found = []
    for artist in figure.findobj(lambda a: bool(getattr(a, "get_gid", lambda: None)())):
        if hasattr(artist, "get_color") and not hasattr(artist, "get_facecolor"):
            colour = artist.get_color()
        elif hasattr(artist, "get_facecolor"):
            colour = artist.get_facecolor()
        else:
            colour = artist.get_color()
        found.append((artist.get_gid(), to_hex(colour)))
    return found


def test_a_runtime_has_one_colour_in_every_chart(drawn):
    figures, _ = drawn
    seen: dict[str, set[str]] = {}
    charts_with = 0
    for figure in figures:
        artists = runtime_artists(figure)
        charts_with += bool(artists)
        for runtime, colour in artists:
            seen.setdefault(runtime, set()).add(colour)
    assert charts_with >= 6           # CDF, phases, concurrency, enforcement, tracer, traces
    assert {"runc", "docker", "runsc", "isoinspect-lib", "qemu"} <= set(seen)
    for runtime, colours in seen.items():
        assert colours == {palette.colour(runtime)}, runtime
    assert len({palette.colour(r) for r in ("runc", "runsc", "docker", "qemu",
                                            "isoinspect-lib", "isoinspect-cli")}) == 6


def test_tables_list_runtimes_in_one_order_with_their_swatch(drawn):
    _, html = drawn
    startup = html[html.index('id="startup"'):html.index('id="verification"')]
    rows = re.findall(r'<span class="swatch" style="background: (#\w+)"></span>([\w-]+)',
                      startup)
    names = [name for _, name in rows]
    assert names == palette.ordered(names) and "runc" in names
    assert all(colour == palette.colour(name) for colour, name in rows)
    matrix = html[html.index('<table class="matrix"'):]
    header = re.findall(r"<th>([^<]*)</th>", matrix[:matrix.index("</thead>")])[2:]
    assert header == palette.ordered(header) and header[-1] == "control"


def test_the_legend_is_drawn_once_with_every_runtime(drawn):
    _, html = drawn
    assert html.count('class="legend"') == 1
    legend = html[html.index('class="legend"'):html.index("</p>", html.index('class="legend"'))]
    for name in ("runc", "runsc", "docker", "qemu", "control"):
        assert f"</span>{name}</span>" in legend


def test_unknown_and_machine_qualified_names_keep_their_colour():
    assert palette.colour("youki") == palette.colour("youki")
    assert palette.colour("runc @ host-b (6.1)") == palette.colour("runc")
    assert palette.ordered(["qemu", "control", "mystery", "runc", "host-exec"]) == \
        ["host-exec", "runc", "qemu", "control", "mystery"]
    assert palette.linestyle("runc @ b", {"a", "b"}) != palette.linestyle("runc @ a", {"a", "b"})
