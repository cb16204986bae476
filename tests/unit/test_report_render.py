"""reports.render: sections in order, graceful gaps, escaping, and an atomic write."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser

import pytest

from isoinspect.benches.record import RecordError
from isoinspect.reports import charts, load, render
from isoinspect.runtime.errors import IsoinspectError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
SECTIONS = ["summary", "startup", "verification", "latency", "phases", "concurrency",
            "namespaces", "enforcement", "workload-overhead", "density", "exposure", "overhead",
            "traces", "isolation", "runs"]


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


class Page(HTMLParser):
    """Section ids, image sources and every external reference of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        for name in ("src", "href"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])


@pytest.fixture(scope="module")
def full_html():
    return render.render(load.load_runs([fixture("full.json")]))


def test_full_run_has_every_section_in_order_and_only_inline_images(full_html):
    page = Page(full_html)
    assert page.sections == SECTIONS
    assert len(page.images) == 10 and all(s.startswith("data:image/png;base64,")
                                        for s in page.images)
    assert all(link.startswith("#") for link in page.links)     # nothing to fetch
    assert "default-src 'none'; img-src data:" in full_html
    assert not re.search(r"https?://", full_html)
    assert "@media print" in full_html
    for text in ("25 PASS", "2 FAIL", "1 ERROR", "4 UNSUPPORTED", "× isoinspect-cli",
                 "1 (reference)", "tracepoints", "TCG", "hybrid", "6.18.0-pvm",
                 "crun refuses hybrid cgroups", "runsc · cpu-shares · FAIL",
                 "2026-11-28 09:00:00 UTC", "2026-11-28 09:04:00 UTC"):
        assert text in full_html, text
    assert "in this run" not in full_html      # no section had to say it is missing


def test_verification_cells_show_verdict_and_figures(full_html):
    cells = re.findall(r'<td class="status-fail" title="([^"]*)">FAIL<small>([^<]*)</small>',
                       full_html)
    assert sorted(figures for _, figures in cells) == ["2.9 vs 2 ± 0.3 ratio",
                                                       "20.5 vs 10 ± 1.5 MiB/s"]
    assert all("outside" in why for why, _ in cells)
    matrix = full_html[full_html.index('id="verification"'):full_html.index('id="latency"')]
    assert matrix.count('class="status-unsupported"') == 4


def test_sections_without_data_say_so():
    text = render.render(load.load_runs([fixture("startup-only.json")]))
    assert Page(text).sections == SECTIONS
    for message in ("No verification in this run.", "No concurrency sweep in this run.",
                    "No namespace cost measurement in this run.",
                    "No enforcement time series in this run.",
                    "No tracer overhead measurement in this run.",
                    "No traced start-up in this run.",
                    "No workload overhead measurement (bench overhead) in this run.",
                    "No density measurement (bench density) in this run.",
                    "No exposure measurement (isoinspect exposure) in this run."):
        assert message in text, message
    assert len(Page(text).images) == 2          # latency CDF and phases only


def test_two_runs_add_a_comparison_with_ratios_and_changed_verdicts():
    text = render.render(load.load_runs([fixture("full.json"), fixture("rerun.json")]))
    page = Page(text)
    assert page.sections == SECTIONS + ["comparison"]
    assert "20261128T103000Z-abcdef vs 20261128T090000Z-a1b2c3" in text
    comparison = text[text.index('id="comparison"'):]
    lib = re.search(r'<td class="text">isoinspect-lib</td>.*?</tr>', comparison, re.S).group(0)
    assert "faster, beyond noise" in lib and "0.8" in lib
    assert "isoinspect · io-write-bps: FAIL → PASS" in text
    assert "chart-comparison" in text


def test_text_from_a_record_is_escaped(tmp_path):
    data = json.load(open(fixture("startup-only.json")))
    data["results"][0]["target"] = "<script>alert(1)</script>"
    data["machine"]["kernel"] = '"><img src=x>'
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    text = render.render(load.load_runs([str(path)]))
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert '<img src=x>' not in text


def test_write_report_prints_absolute_path_and_default_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = render.write_report([fixture("startup-only.json")])
    assert path == str(tmp_path / "isoinspect-report-20261128T100000Z-d4e5f6.html")
    assert open(path).read().startswith("<!DOCTYPE html>")
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_a_failing_render_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "report.html"

    def broken(*args, **kwargs):
        raise RuntimeError("chart exploded")

    monkeypatch.setattr(charts, "namespace_cost", broken)
    with pytest.raises(RuntimeError, match="chart exploded"):
        render.write_report([fixture("full.json")], str(out))
    assert os.listdir(tmp_path) == []
    out.write_text("old report")
    with pytest.raises(RuntimeError):
        render.write_report([fixture("full.json")], str(out))
    assert out.read_text() == "old report" and os.listdir(tmp_path) == ["report.html"]


def test_a_failing_write_removes_its_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(IsoinspectError, match="cannot write the report to .*: Permission denied"):
        render.write_report_file(str(tmp_path / "r.html"), "<html></html>")
    assert os.listdir(tmp_path) == []


def test_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "r.html"
    for name in ("corrupt.json", "newer-schema.json", "empty.json"):
        with pytest.raises(RecordError):
            render.write_report([fixture("full.json"), fixture(name)], str(out))
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsoinspectError, match="is a directory"):
        render.write_report([fixture("full.json")], str(tmp_path))


def test_runs_of_different_kinds_combine_into_one_report():
    text = render.render(load.load_runs([fixture("verify-only.json"),
                                         fixture("startup-only.json")]))
    page = Page(text)
    assert page.sections == SECTIONS + ["comparison"]
    assert "No verification in this run." not in text and "25 PASS" in text
    assert "No measurement appears in more than one of these runs" in text
    assert "No concurrency sweep in these runs." in text
    listed = text[text.index('id="runs"'):]                  # oldest first
    assert listed.index("20261128T100000Z-d4e5f6") < listed.index("20261128T104500Z-fedcba")


def test_the_newest_result_of_a_measurement_wins():
    runs = load.load_runs([fixture("rerun.json"), fixture("full.json")])   # any order
    view = load.merged(runs)
    assert [s["run_id"] for s in view["sources"]] == ["20261128T090000Z-a1b2c3",
                                                      "20261128T103000Z-abcdef"]
    lib = [r for r in view["results"] if r["kind"] == "startup"
           and r["target"] == "isoinspect-lib"]
    assert len(lib) == 1 and lib[0]["_run"] == "20261128T103000Z-abcdef"
    verdicts = {(r["runtime"], r["check"]): r["status"] for r in view["results"]
                if r["kind"] == "verify"}
    assert len(verdicts) == 32 and verdicts["isoinspect", "io-write-bps"] == "PASS"


def test_a_legacy_record_is_migrated_and_rendered(tmp_path):
    """Version 0 (the old `bench startup --json` output) goes through record.load's migration."""
    legacy = {"schema": "isoinspect.bench.startup/1", "started": 1795856400.0,
              "machine": {"kernel": "6.1.0", "cgroup_mode": "unified"},
              "targets": {"runc": {"measures": "lifecycle", "status": "ready",
                                   "samples": [0.020, 0.021, 0.019, 0.022, 0.020]},
                          "isoinspect-lib": {"measures": "lifecycle", "status": "ready",
                                             "samples": [0.006, 0.0061, 0.0059, 0.0062]},
                          "crun": {"status": "skipped", "reason": "hybrid cgroups"}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy))
    text = render.render(load.load_runs([str(path)]))
    assert "metric &#39;lifecycle&#39;" in text and "1 (reference)" in text
    assert "crun: skipped (hybrid cgroups)" in text and "6.1.0" in text
    assert len(Page(text).images) == 1           # the latency CDF


def test_the_cli_does_not_import_the_report_stack():
    """pandas, matplotlib and Jinja2 load only when a report is written, not with the CLI."""
    import subprocess
    import sys

    code = ("import sys, isoinspect.cli.main, isoinspect.cli.report_cmd; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'jinja2', 'numpy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tracer_overhead_shows_one_row_per_target_and_how_it_was_measured(tmp_path):
    """A newer record (tracer process: one trace_overhead per target, with its setup) next to
    an older one (one in-process result, no setup): both render, newest per target wins."""
    old = json.loads(open(fixture("full.json")).read())
    new = json.loads(json.dumps(old))
    new["run_id"], new["created"] = "20261206T120000Z-0f0f0f", old["created"] + 86400
    new["results"] = []
    for number, target in enumerate(("isoinspect-cli", "runc", "docker")):
        without = [0.010 + 0.001 * i for i in range(8)]
        with_ = [s * (1.01 + 0.01 * number) for s in without]
        new["results"].append({
            "kind": "trace_overhead", "status": "ok", "target": target, "metric": "lifecycle",
            "setup": "tracer in a separate process, interleaved, 8 pairs", "pairs": 8,
            "samples_with": with_, "samples_without": without, "ratio": 1.01 + 0.01 * number,
            "ci": [0.99, 1.05 + number / 100], "bpf_run_time_ns": 8 * 150_000,
            "events": 800, "lost": 0})
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    runs = load.load_runs([fixture("full.json"), str(path)])
    frame = load.trace_overhead([load.merged(runs)])
    assert sorted(frame.target) == ["docker", "isoinspect-cli", "isoinspect-lib", "runc"]
    setups = dict(zip(frame.target, frame.setup))
    assert setups["runc"] == "tracer in a separate process, interleaved, 8 pairs"
    assert setups["isoinspect-lib"] == load.LEGACY_OVERHEAD_SETUP
    assert dict(zip(frame.target, frame.bpf_us_per_run))["runc"] == pytest.approx(150.0)
    text = render.render(runs)
    overhead = text[text.index('id="overhead"'):text.index('id="traces"')]
    assert "tracer in a separate process, interleaved, 8 pairs" in overhead
    for target in ("isoinspect-cli", "runc", "docker", "isoinspect-lib"):
        assert target in overhead
