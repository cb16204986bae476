"""The isolation verdict names what differs from Docker's default, per kind of unit."""

from __future__ import annotations

from isoinspect.inspector.guest_view import guest_card, parse_probe, probe_script
from isoinspect.inspector.verdict import Facts, judge
from isoinspect.runtime.linux.capabilities import DEFAULT_CAPABILITIES

DOCKER_NS = {"cgroup": "shared", "ipc": "own", "mnt": "own", "net": "own", "pid": "own",
             "time": "shared", "user": "shared", "uts": "own"}


def docker(**changes) -> Facts:
    base = dict(namespaces=dict(DOCKER_NS), capabilities=list(DEFAULT_CAPABILITIES),
                seccomp="filter", no_new_privs=False, visible_masked=[], writable_readonly=[],
                runs_as_root=True, user_namespace=False)
    base.update(changes)
    return Facts(**base)


def test_docker_default_is_the_reference_and_root_is_said():
    verdict = judge(docker())
    assert verdict.level == "confined" and verdict.missing == [] and verdict.extra == []
    assert verdict.text == ("confined like Docker's default; runs as root without a user "
                            "namespace (uid 0 is the host's root)")


def test_what_is_missing_is_named_not_counted():
    verdict = judge(docker(seccomp="disabled", capabilities=[*DEFAULT_CAPABILITIES, "SYS_ADMIN"],
                           visible_masked=["/proc/kcore"], no_new_privs=True))
    assert verdict.level == "weaker than Docker's default"
    assert verdict.missing == ["capabilities beyond Docker's default: SYS_ADMIN",
                               "no seccomp filter", "unmasked: /proc/kcore"]
    assert "plus no_new_privs" in verdict.text


def test_host_process_is_not_confined():
    verdict = judge(docker(namespaces={n: "shared" for n in DOCKER_NS}, seccomp="disabled"))
    assert verdict.level == "not confined"


def test_sentry_and_guest_levels():
    sentry = judge(docker(kernel="sentry", namespaces={n: "own" for n in DOCKER_NS},
                          seccomp="disabled", visible_masked=["/sys/firmware"]))
    assert sentry.level == "sandboxed" and sentry.missing == ["no seccomp filter"]
    assert "the Sentry's kernel, not the host's" in sentry.text
    guest = judge(docker(kernel="guest", namespaces={n: "own" for n in DOCKER_NS}))
    assert guest.level == "separate kernel" and guest.text.startswith("separate kernel")


def test_guest_card_from_probe_output(monkeypatch):
    import isoinspect.inspector.guest_view as gv

    monkeypatch.setattr(gv, "host_boot_id", lambda: "host-boot")
    text = "\n".join(["noise", "@@status", "Uid:\t0\t0\t0\t0", "CapEff:\t00000000a80405fb",
                      "CapBnd:\t00000000a80405fb", "Seccomp:\t0", "@@mountinfo",
                      "8 8 0:8 / / rw - 9p none rw", "@@ns", "net net:[110]", "@@exists",
                      "/sys/firmware", "/proc/sys", "@@writable", "/proc/sys", "@@boot_id",
                      "guest-boot", "@@version", "Linux version 4.4.0", "@@end"])
    assert parse_probe(text)["ns"] == "net net:[110]"
    card = gv.guest_card(text, "sentry")
    assert card["shares_host_kernel"] == "via the Sentry" and card["runs_as_root"]
    assert card["paths"]["visible"] == ["/sys/firmware"]
    assert card["paths"]["writable"] == ["/proc/sys"]
    assert len(card["capabilities"]["effective"]) == 13
    same = gv.guest_card(text.replace("guest-boot", "host-boot"), "guest")
    assert same["kernel"] == "host"           # the probe ran on the host kernel after all
    assert "$p/status" in probe_script("1") and guest_card is gv.guest_card


def test_a_qemu_process_without_its_guest_view_is_a_separate_kernel():
    import os

    from isoinspect.inspector.guest_view import qemu_card
    from isoinspect.inspector.scorecard import format_card

    card = qemu_card(os.getpid(), None)      # any host process stands in for QEMU here
    assert card["verdict"]["level"] == "separate kernel" and card["shares_host_kernel"] == "no"
    assert card["sandbox_privileges"]["qemu"]["pid"] == os.getpid()
    text = format_card(card)
    assert "workload      in the guest, not readable from the host" in text
    assert "capabilities  " not in text and "host kernel   no" in text
