"""The HTML report as a person sees it: written by the real CLI, opened in headless Chromium.

Chromium is driven over the DevTools protocol (python3-websocket): the page is loaded from a
file:// URL, every image must be a data: URI that decodes, every section must be there, nothing
may be fetched from a network, no console error or exception may appear, and the page must
print (PDF) with the navigation hidden. The full-page screenshot is kept in the test's tmp dir.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.request

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "isoinspect")
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")
SECTIONS = ["summary", "startup", "verification", "latency", "phases", "concurrency",
            "namespaces", "enforcement", "workload-overhead", "density", "exposure", "overhead",
            "traces", "isolation", "runs", "comparison"]
#: the sections of bench overhead, bench density and exposure: a table and a chart each
MEASURED = ["workload-overhead", "density", "exposure"]
CHROMIUM = shutil.which("chromium")
TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                         "(make setup installs it)")


class DevTools:
    """A minimal DevTools-protocol client for one page: commands, and the events seen."""

    def __init__(self, url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(url, timeout=TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for message in self.events:
                if message.get("method") == event:
                    return message
            self.events.append(json.loads(self.socket.recv()))
        raise AssertionError(f"no {event} within {TIMEOUT}s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]

    def named(self, *methods: str) -> list[dict]:
        return [m for m in self.events if m.get("method") in methods]


@pytest.fixture
def chromium(tmp_path):
    """Headless Chromium on an ephemeral DevTools port; yields a DevTools client for its page."""
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, f"chromium exited with {process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages: list[dict] = []
        while not pages:        # the first tab can show up just after the port opens
            assert time.monotonic() < deadline, "chromium opened no page"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                        timeout=TIMEOUT) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            time.sleep(0 if pages else 0.1)
        client = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield client
        client.socket.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=env)


@pytest.fixture
def results(tmp_path) -> dict:
    """A results directory holding two fixture runs under their run ids, as producers write."""
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("full.json", "rerun.json"):
        data = json.load(open(os.path.join(FIXTURES, name)))
        if name == "full.json":     # the isolation matrix, as `isoinspect isolation` measured it
            data["results"] += json.load(open(os.path.join(FIXTURES, "isolation-results.json")))
        (folder / f"{data['run_id']}.json").write_text(json.dumps(data))
    return dict(os.environ, ISOINSPECT_RESULTS=str(folder))


PAGE_FACTS = """(async () => {
    const images = [...document.images];
    await Promise.all(images.map(i => i.decode().catch(() => null)));
    return {
        title: document.title,
        sections: [...document.querySelectorAll('section')].map(s => ({
            id: s.id, heading: s.querySelector('h2').textContent,
            empty: !!s.querySelector('p.empty'),
            rows: s.querySelectorAll('tbody tr').length,
            charts: [...s.querySelectorAll('figure img')].map(i => i.naturalWidth)})),
        images: images.map(i => ({src: i.src.slice(0, 22), complete: i.complete,
                                  width: i.naturalWidth, height: i.naturalHeight,
                                  shown: i.getBoundingClientRect().width,
                                  caption: (i.closest('figure')?.querySelector('figcaption')
                                            ?.textContent || '').length})),
        matrix: [...document.querySelectorAll('#verification td[class^=status-]')]
                .map(td => td.className),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        height: document.documentElement.scrollHeight,
    };
})()"""


def open_page(chromium: DevTools, path) -> tuple[dict, list[str], list[dict]]:
    """Load ``path``; return the page's facts, every URL it requested, and its errors."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        chromium.call(f"{domain}.enable")
    chromium.call("Page.navigate", url=path.as_uri())
    chromium.wait_for("Page.loadEventFired")
    page = chromium.evaluate(PAGE_FACTS)
    requests = [m["params"]["request"]["url"] for m in chromium.named("Network.requestWillBeSent")]
    errors = chromium.named("Runtime.exceptionThrown") + [
        m for m in chromium.named("Runtime.consoleAPICalled", "Log.entryAdded")
        if (m["params"].get("type") or m["params"].get("entry", {}).get("level")) in
        ("error", "assert")]
    return page, requests, errors


def test_report_opens_in_chromium_with_sections_images_and_no_errors(tmp_path, results,
                                                                     chromium):
    out = tmp_path / "report.html"
    done = cli("report", "20261128T09", "latest", "-o", str(out), env=results)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and done.stderr == ""

    page, requests, errors = open_page(chromium, out)
    assert page["title"] == "isoinspect report"
    assert [s["id"] for s in page["sections"]] == SECTIONS
    assert not any(s["empty"] for s in page["sections"]), page["sections"]
    assert len(page["images"]) == 11         # 10 charts of the runs + the comparison
    measured = {s["id"]: s for s in page["sections"] if s["id"] in MEASURED}
    assert {name: (s["rows"] > 2, len(s["charts"])) for name, s in measured.items()} == \
        {name: (True, 1) for name in MEASURED}
    assert all(width > 500 for s in measured.values() for width in s["charts"])
    for image in page["images"]:
        assert image["src"] == "data:image/png;base64,"
        assert image["complete"] and image["width"] > 500 and image["height"] > 100, image
        assert 0 < image["shown"] <= 1280 and image["caption"] > 60, image
    assert len(page["matrix"]) == 32 and {"status-pass", "status-fail", "status-unsupported",
                                          "status-error"} <= set(page["matrix"])
    assert page["overflow"] <= 0, "the page is wider than a 1280 px laptop window"
    # the file itself and its inline images, nothing else
    assert [url for url in requests if not url.startswith("data:")] == [out.as_uri()]
    assert errors == [], errors

    shot = chromium.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    (tmp_path / "report.png").write_bytes(png)
    width, height = png_size(png)
    assert 1200 <= width <= 1280 and height >= page["height"] - 1 and height > 4000

    chromium.call("Emulation.setEmulatedMedia", media="print")
    assert chromium.evaluate("getComputedStyle(document.querySelector('nav')).display") == "none"
    pdf = base64.b64decode(chromium.call("Page.printToPDF", printBackground=True)["data"])
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 4


def test_the_checks_see_a_fetch_a_broken_image_and_a_console_error(tmp_path, chromium):
    """The same checks on a page that breaks the rules: each breach is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                   '<section id="s"><h2>s</h2><figure><img src="data:image/png;base64,AAAA">'
                   '<figcaption>x</figcaption></figure><img src="http://127.0.0.1:9/x.png">'
                   '</section><script>console.error("boom")</script></body></html>')
    page, requests, errors = open_page(chromium, bad)
    assert [i["width"] for i in page["images"]] == [0, 0]       # neither decodes
    assert "http://127.0.0.1:9/x.png" in requests
    assert any(m["params"].get("type") == "error" for m in errors)


@pytest.mark.parametrize("name, message", [
    ("corrupt.json", "is corrupt"),
    ("newer-schema.json", "written by a newer isoinspect"),
    ("empty.json", "has no results"),
    ("missing.json", "no run record at"),
])
def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, results, name, message):
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    done = cli("report", os.path.join(FIXTURES, name), "-o", str(out), env=results)
    assert done.returncode == 125 and done.stdout == ""
    assert done.stderr.startswith("isoinspect: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert os.listdir(out.parent) == []


def test_report_of_a_real_benchmark_run(tmp_path, chromium):
    """A record written by the real `bench startup` (two quick host targets) renders, opens."""
    results = tmp_path / "results"
    env = dict(os.environ, ISOINSPECT_RESULTS=str(results))
    bench = subprocess.run([CLI, "bench", "startup", "--runs", "5", "--warmup", "1",
                            "--targets", "host-exec,unshare", "--trace-runs", "0"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert bench.returncode == 0, bench.stderr[-2000:]
    out = tmp_path / "real.html"
    done = cli("report", "latest", "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    page, requests, errors = open_page(chromium, out)
    assert [s["id"] for s in page["sections"]] == SECTIONS[:-1]     # one run: no comparison
    empty = {s["id"] for s in page["sections"] if s["empty"]}
    assert {"summary", "startup", "latency"}.isdisjoint(empty) and "verification" in empty
    assert page["images"] and all(i["width"] > 500 for i in page["images"])
    text = out.read_text()
    assert "host-exec" in text and "unshare" in text and errors == []


def test_report_of_real_overhead_density_and_exposure_runs(tmp_path, chromium):
    """Records written by the real bench overhead, bench density and exposure (quick: the host
    and runc) render their three sections with data, and the page opens without errors."""
    env = dict(os.environ, ISOINSPECT_RESULTS=str(tmp_path / "results"))
    for command in (["bench", "overhead", "--quick", "--targets", "host,runc", "--tests",
                     "cpu,getppid"],
                    ["bench", "density", "--targets", "host,runc", "--levels", "1,2"],
                    ["exposure", "--runtime", "runc", "--workload", "idle", "--duration", "1"]):
        done = subprocess.run([CLI, *command], capture_output=True, text=True, timeout=300,
                              env=env)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    runs = sorted(n for n in os.listdir(tmp_path / "results") if n.endswith(".json"))
    assert len(runs) == 3, runs
    out = tmp_path / "measured.html"
    done = cli("report", *[str(tmp_path / "results" / name) for name in runs], "-o", str(out),
               env=env)
    assert done.returncode == 0, done.stderr
    page, requests, errors = open_page(chromium, out)
    measured = {s["id"]: s for s in page["sections"] if s["id"] in MEASURED}
    assert {name: (s["empty"], len(s["charts"])) for name, s in measured.items()} == \
        {name: (False, 1) for name in MEASURED}
    assert measured["workload-overhead"]["rows"] == 2 and measured["density"]["rows"] == 4
    assert measured["exposure"]["rows"] == 1 and errors == []
    assert all(width > 500 for s in measured.values() for width in s["charts"])


def test_results_dir_option_and_default_output_name(tmp_path, results):
    folder = results["ISOINSPECT_RESULTS"]
    env = {k: v for k, v in results.items() if k != "ISOINSPECT_RESULTS"}
    done = subprocess.run([CLI, "report", "latest", "--results-dir", folder],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "isoinspect-report-20261128T103000Z-abcdef.html"
    assert done.stdout == f"{written}\n" and written.read_text().startswith("<!DOCTYPE html>")
