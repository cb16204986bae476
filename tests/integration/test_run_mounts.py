"""`run -v` / `--mount` bind mounts and `--env-file`, against real containers."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest
from test_runtime_real import userns_iso  # noqa: F401 - the fixture: a root the remapped uid reaches


def test_volume_rw_and_ro(iso, tmp_path):
    host = tmp_path / "isoinspect-share"
    host.mkdir()
    (host / "in.txt").write_text("from-host\n")
    result = iso("run", "--rm", "--network", "none", "-v", f"{host}:/data", "busybox", "sh",
                 "-c", "cat /data/in.txt; echo from-ctr > /data/out.txt")
    assert (result.returncode, result.stdout) == (0, "from-host\n"), result.stderr
    assert (host / "out.txt").read_text() == "from-ctr\n"
    result = iso("run", "--rm", "--network", "none", "-v", f"{host}:/data:ro", "busybox",
                 "sh", "-c", "cat /data/in.txt; echo x > /data/no.txt")
    assert result.returncode == 1
    assert result.stdout == "from-host\n"
    assert "Read-only file system" in result.stderr
    assert not (host / "no.txt").exists()


def test_inspect_shows_the_mounts(iso, tmp_path):
    iso("run", "-d", "--name", "isoinspect-mnt", "--network", "none", "-v",
        f"{tmp_path}:/data:ro", "busybox", "sleep", "30", check=True)
    try:
        described = json.loads(iso("inspect", "isoinspect-mnt", check=True).stdout)[0]
    finally:
        iso("rm", "-f", "isoinspect-mnt")
    assert described["Mounts"] == [{"Type": "bind", "Source": str(tmp_path),
                                    "Destination": "/data", "Mode": "", "RW": False,
                                    "Propagation": "rprivate"}]
    assert (described["Config"]["Tty"], described["Config"]["OpenStdin"]) == (False, False)


def test_mount_readonly_and_propagation(iso, tmp_path):
    """A shared host mount bound rslave: the container's copy is its slave (master:N)."""
    host = tmp_path / "isoinspect-m"
    host.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "isoinspect-test", str(host)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(host)], check=True)
        result = iso("run", "--rm", "--network", "none", "--mount",
                     f"type=bind,source={host},target=/m,readonly,bind-propagation=rslave",
                     "busybox", "sh", "-c", "touch /m/x; grep ' /m ' /proc/self/mountinfo")
    finally:
        subprocess.run(["umount", "-l", str(host)], check=True)
    assert result.returncode == 0, result.stderr
    assert "Read-only file system" in result.stderr
    fields = result.stdout.split()
    assert fields[5].startswith("ro"), result.stdout
    assert "master:" in result.stdout  # a slave mount


def test_missing_source_made_by_v_refused_by_mount(iso, tmp_path):
    missing = tmp_path / "isoinspect-made" / "sub"
    result = iso("run", "--rm", "--network", "none", "-v", f"{missing}:/d", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert missing.is_dir()
    gone = tmp_path / "isoinspect-absent"
    result = iso("run", "--rm", "--mount", f"type=bind,src={gone},dst=/d", "busybox", "true")
    assert result.returncode == 125
    assert "bind source path does not exist" in result.stderr
    assert iso("ps", "-aq").stdout == ""


@pytest.mark.parametrize("target", ["/proc", "/proc/sys", "/sys", "/sys/kernel", "/"])
def test_dangerous_targets_are_refused(iso, tmp_path, target):
    result = iso("run", "--rm", "-v", f"{tmp_path}:{target}", "busybox", "true")
    assert result.returncode == 125
    assert "isoinspect:" in result.stderr and "Traceback" not in result.stderr


def test_a_container_symlink_does_not_redirect_the_mount_to_the_host(iso, tmp_path):
    """An image whose /link -> <a host dir>: the bind lands inside the container's root."""
    host = tmp_path / "isoinspect-src"
    host.mkdir()
    (host / "marker").write_text("m")
    victim = tmp_path / "isoinspect-victim"
    victim.mkdir()
    build = tmp_path / "isoinspect-ctx"
    build.mkdir()
    (build / "Dockerfile").write_text(
        f"FROM busybox\nRUN ln -s {victim} /link && ln -s /proc /p\n")
    built = iso("build", "-t", "isoinspect-linky", str(build), timeout=120)
    if built.returncode != 0:
        built = iso("image", "build", "-t", "isoinspect-linky", str(build), timeout=120)
    assert built.returncode == 0, built.stderr
    result = iso("run", "--rm", "--network", "none", "-v", f"{host}:/link/inner",
                 "isoinspect-linky", "sh", "-c", f"cat {victim}/inner/marker")
    assert (result.returncode, result.stdout) == (0, "m"), result.stderr
    assert os.listdir(victim) == []  # nothing made, nothing mounted on the host
    result = iso("run", "--rm", "--network", "none", "-v", f"{host}:/p/sys",
                 "isoinspect-linky", "true")
    assert result.returncode == 125
    assert "inside /proc" in result.stderr


def test_env_file(iso, tmp_path):
    env_file = tmp_path / "isoinspect.env"
    env_file.write_text("# a comment\n\n  A=1\nB=\"quoted\" kept \nFROM_CALLER\nUNSET_ONE\n"
                        "C=x=y\n")
    iso.env["FROM_CALLER"] = "caller value"
    iso.env.pop("UNSET_ONE", None)
    result = iso("run", "--rm", "--network", "none", "--env-file", str(env_file), "-e", "A=2",
                 "busybox", "sh", "-c",
                 'echo "$A|$B|$FROM_CALLER|${UNSET_ONE-unset}|$C"')
    assert (result.returncode, result.stdout) == (0, '2|"quoted" kept |caller value|unset|x=y\n'), \
        result.stderr
    bad = tmp_path / "isoinspect-bad.env"
    bad.write_text("MY VAR=1\n")
    result = iso("run", "--rm", "--env-file", str(bad), "busybox", "true")
    assert result.returncode == 125
    assert "contains whitespaces" in result.stderr


def test_volume_in_a_user_namespace(userns_iso):
    """-v with --userns remap: the missing source is made by the parent (the remapped child
    could not), the read-only remount keeps the flags the kernel locked."""
    # under the fixture's world-searchable directory: the remapped root must reach the source
    source = pathlib.Path(os.path.dirname(userns_iso.root)) / "isoinspect-u" / "new"
    result = userns_iso("run", "--rm", "--userns", "remap", "--network", "none", "-v",
                 f"{source}:/d:ro", "busybox", "sh", "-c", "test -d /d && touch /d/x")
    assert result.returncode == 1, result.stderr
    assert "Read-only file system" in result.stderr
    assert source.is_dir() and not (source / "x").exists()


def test_a_single_file_is_bound(iso, tmp_path):
    host = tmp_path / "isoinspect-file.conf"
    host.write_text("setting=1\n")
    result = iso("run", "--rm", "--network", "none", "-v", f"{host}:/etc/app/app.conf:ro",
                 "busybox", "sh", "-c", "cat /etc/app/app.conf; echo x >> /etc/app/app.conf")
    assert (result.returncode, result.stdout) == (1, "setting=1\n")
    assert host.read_text() == "setting=1\n"
