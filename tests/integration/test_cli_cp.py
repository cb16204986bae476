"""``isoinspect cp`` for real: both directions, directories, tar streams, stopped containers,
and a hostile container (symlinks to host paths, ``../``, hostile tar input, a symlink swapped
while we copy). Docker's behaviour is noted next to ours in each test.

The host paths a hostile container aims at are a temp directory of the test with a marker
file: if any copy ever read or wrote there, the test fails.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time

import pytest

from test_runtime_real import userns_iso  # noqa: F401 (fixture)
from test_security_archives import entry, tar_bytes


def _run(iso, name: str, script: str, *flags: str) -> None:
    iso("run", "-d", "--name", name, "--network", "none", *flags, "busybox", "sh", "-c",
        script + "\ntouch /ready; sleep 300", check=True)
    deadline = time.monotonic() + 30
    while iso("exec", name, "test", "-e", "/ready").returncode != 0:
        assert time.monotonic() < deadline, "the container's set-up did not finish"
        time.sleep(0.1)


def _raw(iso, *args: str, data: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([iso.cli, *args], env=iso.env, input=data, capture_output=True,
                          timeout=60)


@pytest.fixture
def host_dir(tmp_path):
    """A host directory a hostile container aims at, with a marker file in it."""
    path = tmp_path / "isoinspect-host-secret"
    path.mkdir()
    (path / "marker").write_text("HOST SECRET\n")
    return path


def _host_untouched(host_dir) -> None:
    assert sorted(os.listdir(host_dir)) == ["marker"]
    assert (host_dir / "marker").read_text() == "HOST SECRET\n"


def test_cp_files_both_directions(iso, tmp_path):
    """Docker: a file to an existing directory lands in it, to a new name is saved as it."""
    _run(iso, "isotest-cp", "echo inside > /tmp/in.txt")
    source = tmp_path / "host.txt"
    source.write_text("from the host\n")
    iso("cp", str(source), "isotest-cp:/tmp/", check=True)
    iso("cp", str(source), "isotest-cp:/tmp/renamed.txt", check=True)
    assert iso("exec", "isotest-cp", "cat", "/tmp/host.txt", "/tmp/renamed.txt",
               check=True).stdout == "from the host\n" * 2
    iso("cp", "isotest-cp:/tmp/in.txt", str(tmp_path / "out.txt"), check=True)
    assert (tmp_path / "out.txt").read_text() == "inside\n"
    iso("cp", "isotest-cp:/tmp/in.txt", str(tmp_path), check=True)
    assert (tmp_path / "in.txt").read_text() == "inside\n"
    # Docker: "Could not find the file /nope in container NAME", exit 1.
    missing = iso("cp", "isotest-cp:/nope", str(tmp_path))
    assert missing.returncode == 1 and "Could not find the file /nope" in missing.stderr
    assert iso("cp", str(source), "isotest-nosuch:/tmp").returncode == 1
    assert iso("cp", str(source), str(tmp_path / "x")).returncode == 125  # no container side
    # Docker: a DEST ending in / must exist.
    assert iso("cp", str(source), "isotest-cp:/nodir/").returncode == 1


def test_cp_directories_and_archive_mode(iso, tmp_path):
    """Docker: DIR to a missing DEST creates it; to an existing directory, DEST/DIR; DIR/. its
    contents; -a keeps uid/gid, without it the copy belongs to the caller (root here)."""
    _run(iso, "isotest-cpd", "mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b "
         "&& chown -R 1234:4321 /data && ln -s sub/b /data/link")
    iso("cp", "isotest-cpd:/data", str(tmp_path / "new"), check=True)
    assert (tmp_path / "new" / "sub" / "b").read_text() == "b\n"
    assert os.readlink(tmp_path / "new" / "link") == "sub/b"
    assert os.stat(tmp_path / "new" / "a").st_uid == 0
    (tmp_path / "existing").mkdir()
    iso("cp", "-a", "isotest-cpd:/data", str(tmp_path / "existing"), check=True)
    kept = os.stat(tmp_path / "existing" / "data" / "sub" / "b")
    assert (kept.st_uid, kept.st_gid) == (1234, 4321)
    (tmp_path / "contents").mkdir()
    iso("cp", "isotest-cpd:/data/.", str(tmp_path / "contents"), check=True)
    assert sorted(os.listdir(tmp_path / "contents")) == ["a", "link", "sub"]
    # A host directory into the container, then into an existing directory there.
    tree = tmp_path / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "deep" / "f").write_text("deep\n")
    iso("cp", str(tree), "isotest-cpd:/copied", check=True)
    iso("cp", str(tree), "isotest-cpd:/data", check=True)
    assert iso("exec", "isotest-cpd", "cat", "/copied/deep/f", "/data/tree/deep/f",
               check=True).stdout == "deep\n" * 2
    # Docker: "cannot copy a directory to a file".
    assert iso("cp", str(tree), "isotest-cpd:/data/a").returncode == 1


def test_cp_tar_streams_both_ways(iso):
    """Docker: `cp C:SRC -` writes a tar of SRC named by its last component; `cp - C:DIR`
    unpacks a tar into the existing directory DIR."""
    _run(iso, "isotest-cps", "mkdir -p /srv/web && echo page > /srv/web/index.html")
    out = _raw(iso, "cp", "isotest-cps:/srv/web", "-")
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        assert sorted(tar.getnames()) == ["web", "web/index.html"]
        assert tar.extractfile("web/index.html").read() == b"page\n"
    data = tar_bytes([entry("up", tarfile.DIRTYPE), entry("up/loaded.txt", data=b"loaded\n")])
    result = _raw(iso, "cp", "-", "isotest-cps:/srv", data=data)
    assert result.returncode == 0, result.stderr
    assert iso("exec", "isotest-cps", "cat", "/srv/up/loaded.txt", check=True).stdout == \
        "loaded\n"
    # Docker: the destination of a stream must be a directory.
    assert _raw(iso, "cp", "-", "isotest-cps:/srv/web/index.html", data=data).returncode == 1
    assert _raw(iso, "cp", "-", "isotest-cps:/srv", data=b"not a tar" * 100).returncode == 1


def test_cp_stopped_containers(iso, tmp_path):
    """Docker copies from and into stopped containers (their rootfs stays until rm): we mount
    it again in a private mount namespace that disappears with the cp process."""
    iso("run", "--name", "isotest-cpx", "--network", "none", "busybox", "sh", "-c",
        "echo kept > /kept", check=True)
    iso("cp", "isotest-cpx:/kept", str(tmp_path / "kept"), check=True)
    assert (tmp_path / "kept").read_text() == "kept\n"
    (tmp_path / "in").write_text("added\n")
    iso("cp", str(tmp_path / "in"), "isotest-cpx:/added", check=True)
    iso("cp", "isotest-cpx:/added", str(tmp_path / "back"), check=True)
    assert (tmp_path / "back").read_text() == "added\n"
    with open("/proc/self/mountinfo") as handle:
        assert iso.root not in handle.read()


def test_cp_reads_container_symlinks_inside_the_container(iso, tmp_path, host_dir):
    """A container's symlink to a host path (absolute, or ../ out of its root) means that path
    in the container. Docker: the same (FollowSymlinkInScope); without -L the symlink itself
    is copied, as Docker does."""
    marker = str(host_dir / "marker")
    _run(iso, "isotest-cpr", f"ln -s {marker} /leak; ln -s {host_dir} /leakdir; "
         "ln -s ../../../../../../../.. /up")
    # -L: the link's target, in the container, does not exist: an error, never the host file.
    result = iso("cp", "-L", "isotest-cpr:/leak", str(tmp_path / "got"))
    assert result.returncode == 1 and not (tmp_path / "got").exists()
    # Through a symlinked directory: the same.
    result = iso("cp", "isotest-cpr:/leakdir/marker", str(tmp_path / "got"))
    assert result.returncode == 1 and not (tmp_path / "got").exists()
    # Without -L the symlink is copied as a symlink (its target text, not the file).
    iso("cp", "isotest-cpr:/leak", str(tmp_path / "link"), check=True)
    assert os.path.islink(tmp_path / "link") and os.readlink(tmp_path / "link") == marker
    # ../ in the path and in a symlink stop at the container's root: its /etc/hostname.
    hostname = iso("exec", "isotest-cpr", "hostname", check=True).stdout
    for path in ("../../../../../etc/hostname", "/up/etc/hostname", "/up/../etc/hostname"):
        target = tmp_path / "hostname"
        iso("cp", f"isotest-cpr:{path}", str(target), check=True)
        assert target.read_text() == hostname
        target.unlink()
    # Once the container has a file where the link points, -L gives the container's file.
    iso("exec", "isotest-cpr", "sh", "-c", f"mkdir -p {host_dir} && echo mine > {marker}",
        check=True)
    iso("cp", "-L", "isotest-cpr:/leak", str(tmp_path / "got"), check=True)
    assert (tmp_path / "got").read_text() == "mine\n"
    _host_untouched(host_dir)


def test_cp_writes_through_container_symlinks_stay_inside(iso, tmp_path, host_dir):
    """Writes through a symlinked directory land inside the container's root. Docker: the same
    since CVE-2018-15664 (it resolves DEST in scope, then writes in a chroot)."""
    _run(iso, "isotest-cpw", f"ln -s {host_dir} /wdir; ln -s ../../../../../.. /up; "
         f"ln -s {host_dir}/marker /wfile")
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    # The link's target does not exist in the container: an error (so does Docker's).
    assert iso("cp", str(payload), "isotest-cpw:/wdir/").returncode == 1
    iso("exec", "isotest-cpw", "mkdir", "-p", str(host_dir), check=True)
    iso("cp", str(payload), "isotest-cpw:/wdir/", check=True)
    iso("cp", str(payload), "isotest-cpw:/up/tmp/", check=True)
    iso("cp", str(payload), "isotest-cpw:../../../../../../root/", check=True)
    # A symlink DEST is replaced by the file (Docker writes to its target, in the container).
    iso("cp", str(payload), "isotest-cpw:/wfile", check=True)
    listing = iso("exec", "isotest-cpw", "sh", "-c",
                  f"cat {host_dir}/payload /tmp/payload /root/payload /wfile", check=True)
    assert listing.stdout == "payload\n" * 4
    # A hostile tar on stdin: a symlink then a file through it, and a ../ name: refused.
    through = tar_bytes([entry("esc", tarfile.SYMTYPE, link=str(host_dir)),
                         entry("esc/payload", data=b"x\n")])
    assert _raw(iso, "cp", "-", "isotest-cpw:/tmp", data=through).returncode != 0
    dotdot = tar_bytes([entry("../../../../../../" + str(host_dir).lstrip("/") + "/payload",
                             data=b"x\n")])
    assert _raw(iso, "cp", "-", "isotest-cpw:/tmp", data=dotdot).returncode != 0
    _host_untouched(host_dir)


def test_cp_symlink_swap_race_never_reaches_the_host(iso, tmp_path, host_dir):
    """CVE-2018-15664: the container swaps a directory and a symlink to the host as fast as it
    can while we copy into and out of it. Every copy may succeed or fail, but none reads the
    host's marker or writes into the host directory (in-kernel RESOLVE_IN_ROOT, then fds).
    Docker was vulnerable before 19.03.1 (it resolved the path, then used it)."""
    from isoinspect.runtime.copy import CopyOptions, Endpoint, copy_from_container, \
        copy_into_container
    from isoinspect.runtime.errors import IsoinspectError
    from isoinspect.runtime.runtime import Runtime

    # /swap is in turn the container's real directory (renamed there) and a symlink to the
    # host directory.
    _run(iso, "isotest-cpx", f"mkdir -p /real && echo container > /real/marker\n"
         f"(while :; do rm -f /swap; mv /real /swap; mv /swap /real; ln -s {host_dir} /swap; "
         "done) >/dev/null 2>&1 &")
    runtime = Runtime(iso.root)
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    outcomes = {"ok": 0, "refused": 0}
    deadline = time.monotonic() + 8
    count = 0
    while time.monotonic() < deadline or count < 50:
        count += 1
        out = tmp_path / f"read-{count}"
        try:
            copy_from_container(runtime, Endpoint("isotest-cpx", "/swap/marker"), str(out),
                                CopyOptions())
            assert out.read_text() == "container\n"
            outcomes["ok"] += 1
        except IsoinspectError:
            outcomes["refused"] += 1
        try:
            copy_into_container(runtime, str(payload), Endpoint("isotest-cpx", "/swap/"),
                                CopyOptions())
        except IsoinspectError:
            pass
        _host_untouched(host_dir)
    assert outcomes["ok"] > 0, outcomes  # the race was really run, not always refused


def test_cp_owners_in_a_remapped_user_namespace(userns_iso, tmp_path):
    """--userns remap: what cp writes belongs to the container's root (or, with -a, to the
    same ids inside the container), and -a out of it gives the container's ids back. Docker:
    the same with userns-remap (it shifts ids through the daemon's mapping)."""
    iso = userns_iso
    _run(iso, "isotest-cpu", "echo x > /mine && chown 5:6 /mine", "--userns", "remap")
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    plain.write_text("p\n")
    kept.write_text("k\n")
    os.chown(kept, 1234, 4321)
    # Into / (its upper dir): this runtime does not shift image layers, so a remapped
    # container cannot itself write under an image directory such as /tmp (EOVERFLOW).
    iso("cp", str(plain), "isotest-cpu:/", check=True)
    iso("cp", "-a", str(kept), "isotest-cpu:/", check=True)
    owners = iso("exec", "isotest-cpu", "stat", "-c", "%u:%g", "/plain", "/kept",
                 check=True).stdout.split()
    assert owners == ["0:0", "1234:4321"]
    iso("cp", "-a", "isotest-cpu:/mine", str(tmp_path / "back"), check=True)
    back = os.stat(tmp_path / "back")
    assert (back.st_uid, back.st_gid) == (5, 6)
    # Stopped, it is mounted from the host's side: the same owners, shifted by us.
    iso("stop", "-t", "0", "isotest-cpu", check=True)
    iso("cp", "-a", str(kept), "isotest-cpu:/kept2", check=True)
    iso("cp", str(plain), "isotest-cpu:/plain2", check=True)
    iso("cp", "-a", "isotest-cpu:/kept2", str(tmp_path / "kept2"), check=True)
    iso("cp", "-a", "isotest-cpu:/plain2", str(tmp_path / "plain2"), check=True)
    assert os.stat(tmp_path / "kept2").st_uid == 1234
    assert os.stat(tmp_path / "plain2").st_uid == 0
