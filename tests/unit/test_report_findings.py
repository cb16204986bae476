"""The findings summary: one sentence per finding with its number and interval, and only what
the confidence interval supports."""

from __future__ import annotations

import os
import random

from isoinspect.reports import findings, load, render

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")


def view(*names: str) -> dict:
    return load.merged(load.load_runs([os.path.join(FIXTURES, n) for n in names]))


def startup(target: str, median: float, seed: int, n: int = 30) -> dict:
    rng = random.Random(seed)
    samples = [median * (1 + rng.uniform(-0.1, 0.1)) for _ in range(n)]
    return {"kind": "startup", "target": target, "metric": "start_to_ready", "status": "ok",
            "samples": samples, "rounds": list(range(n))}


def test_fastest_runtime_with_ratios_against_runc_gvisor_docker_and_the_vm():
    [sentence] = findings.startup(view("full.json"))
    assert sentence.startswith("isoinspect-lib starts fastest (start_to_ready p50 6.")
    for rival in ("runc's", "gVisor (runsc)'s", "Docker's", "the VM (qemu)'s"):
        assert rival in sentence
    assert "0.29× [0.273, 0.305] runc's" in sentence         # ratio with its 95% CI


def test_no_startup_finding_when_the_ci_does_not_support_it():
    same = {"results": [startup("runc", 0.02, 1), startup("docker", 0.02, 2)]}
    assert findings.startup(same) == []
    apart = {"results": [startup("runc", 0.02, 1), startup("docker", 0.2, 2),
                         startup("isoinspect-lib", 0.02, 3)]}
    [sentence] = findings.startup(apart)
    assert "within the noise of each other" in sentence and "Docker's" in sentence


def test_verification_says_who_enforced_everything_and_why_not():
    sentences = findings.verification(view("verify-control.json"))
    assert sentences[0] == "runc (7 checks) enforced every limit checked."
    assert "failed 7 of 7 checks, as expected" in sentences[1]
    full = findings.verification(view("full.json"))
    assert any(s.startswith("gVisor (runsc) enforced 5 of 8 limits; not: ") and
               "cpu-shares FAIL" in s for s in full)


def test_tracer_cost_beyond_noise_or_its_upper_bound():
    def result(target, ratio, ci):
        return {"kind": "trace_overhead", "status": "ok", "target": target, "ratio": ratio,
                "ci": ci}
    sentences = findings.tracer({"results": [result("runc", 1.05, [0.97, 1.17]),
                                             result("docker", 1.16, [1.07, 1.20]),
                                             result("runsc", 1.2, [None, None]),
                                             result("qemu", 0.86, [0.81, 0.97])]})
    assert sentences == [
        "Tracing a start-up costs Docker +16.0% [+7.0%, +20.0%] (traced against untraced "
        "p50, 95% CI, paired runs).",
        "The tracer's cost is within the noise for runc (at most +17.0%) and the VM (qemu) "
        "(traced 0.86× [0.81, 0.97] untraced)."]


def test_overhead_and_density_headlines():
    def syscall(target, ratio, ci):
        return {"kind": "overhead", "target": target, "test": "getppid", "status": "ok",
                "ratio": {"ratio": ratio, "ci": ci, "vs": "host"}}
    mib = 2 ** 20
    results = [syscall("isoinspect", 1.16, [1.07, 1.20]), syscall("runsc", 1189, [1100, 1250]),
               syscall("runc", 1.02, [0.95, 1.1]),
               {"kind": "density", "target": "runsc", "level": 4, "status": "ok",
                "per_instance_bytes": {"estimate": 11.5 * mib, "ci": [11.46 * mib, 11.55 * mib]}},
               {"kind": "density", "target": "runsc", "level": 1, "status": "ok",
                "per_instance_bytes": {"estimate": 30 * mib, "ci": [29 * mib, 31 * mib]}},
               {"kind": "density", "target": "isoinspect", "level": 4, "status": "ok",
                "per_instance_bytes": {"estimate": 0.19 * mib, "ci": [0.18 * mib, 0.2 * mib]}}]
    overhead = findings.overhead({"results": results})
    assert overhead[0] == ("A system call's round trip (getppid) against the host's: "
                           "isoinspect's ×1.16 [1.07, 1.20] and gVisor (runsc)'s ×1,189 [1,100, "
                           "1,250] (p50 ratio, 95% CI).")
    assert overhead[1] == "Within the noise of the host's system call round trip: runc's " \
                          "×1.02 [0.95, 1.10]."
    [density] = findings.density({"results": results})
    assert "isoinspect 0.190 MiB [0.180, 0.200] (n=4) and gVisor (runsc) 11.50 MiB [11.46, " \
           "11.55] (n=4)" in density


def test_the_summary_opens_with_findings_and_keeps_unsupported_in_a_note():
    html = render.render(load.load_runs([os.path.join(FIXTURES, "full.json")]))
    summary = html[html.index('id="summary"'):html.index('id="startup"')]
    first = summary[summary.index('<ul class="findings">'):summary.index("</ul>")]
    rest = summary[summary.index('<ul class="notes">'):]
    assert "starts fastest" in first and "crun refuses hybrid cgroups" not in first
    assert "crun: unsupported (crun refuses hybrid cgroups" in rest
