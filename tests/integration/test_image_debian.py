"""A Debian bookworm base made with debootstrap (cached; ~40 s the first time) runs python3."""

from __future__ import annotations

import json


def test_debian_base_runs_python3(iso):
    made = iso("images", "--ensure-debian", timeout=600)
    assert made.returncode == 0, made.stderr
    assert "debian:bookworm created" in made.stderr
    run = iso("run", "--rm", "debian:bookworm", "python3", "-c",
              "import platform, sys; print(sys.version_info[:2], platform.freedesktop_os_release()"
              "['VERSION_CODENAME'])")
    assert run.stdout.strip() == "(3, 11) bookworm", run.stderr
    config = json.loads(iso("image", "inspect", "debian:bookworm", check=True).stdout)[0]
    assert len(config["RootFS"]["Layers"]) == 1 and config["Size"] > 50_000_000
    again = iso("images", "--ensure-debian")
    assert "debian:bookworm present" in again.stderr
