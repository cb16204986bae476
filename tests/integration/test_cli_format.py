"""--format/--json on ps and inspect -f, read back from a real container the CLI started."""

from __future__ import annotations

import json
import os


def test_ps_format_json_and_inspect_format(iso):
    started = iso("run", "-d", "--name", "isoinspect-fmt-a", "busybox", "sleep", "30", check=True)
    cid = started.stdout.strip()
    ps = iso("ps", "--format", "{{.ID}}|{{.Names}}|{{.Image}}|{{.State}}", check=True)
    assert ps.stdout == f"{cid[:12]}|isoinspect-fmt-a|busybox|running\n"
    table = iso("ps", "--format", "table {{.Names}}\\t{{.Status}}", check=True).stdout
    assert table.splitlines()[0].split() == ["NAMES", "STATUS"]
    assert table.splitlines()[1].startswith("isoinspect-fmt-a   Up ")
    row = json.loads(iso("ps", "--json", check=True).stdout)
    assert row["ID"] == cid[:12] and row["Names"] == "isoinspect-fmt-a" and row["Pid"] > 0
    pid = iso("inspect", "-f", "{{.State.Pid}}", "isoinspect-fmt-a", check=True).stdout.strip()
    assert int(pid) == row["Pid"] and os.path.exists(f"/proc/{pid}")
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[:2] == [b"sleep", b"30"]
    cmd = iso("inspect", "--format", "{{json .Config.Cmd}}", cid, check=True).stdout
    assert json.loads(cmd) == ["sleep", "30"]
    bad = iso("ps", "--format", "{{.Bogus}}")
    assert bad.returncode == 1 and "can't evaluate field Bogus" in bad.stderr
    assert iso("rm", "-f", "isoinspect-fmt-a").returncode == 0
    stopped = iso("ps", "-a", "--format", "{{.Names}}", check=True)
    assert "isoinspect-fmt-a" not in stopped.stdout


def test_images_history_and_network_ls_json(iso):
    image = json.loads(iso("images", "--json", check=True).stdout.splitlines()[0])
    assert image["Repository"] == "busybox" and image["Tag"] == "latest"
    tags = iso("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert "busybox:latest" in tags
    history = [json.loads(line) for line in iso("history", "--json", "busybox",
                                                check=True).stdout.splitlines()]
    assert history and history[0]["ID"] == image["ID"]
    both = iso("images", "--json", "--format", "{{.ID}}")
    assert both.returncode == 125 and "cannot be used together" in both.stderr
    networks = iso("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout
    assert all(len(line.split()) == 2 for line in networks.splitlines())
