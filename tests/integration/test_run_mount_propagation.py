"""Issue 18: bind-mount propagation for `-v SRC:DST:OPT` and `--mount ...,bind-propagation=`,
side by side with the shared dockerd (containers named isoinspect-prop-<pid>-*).

The test makes its own shared mount point (a private bind of a temp dir, then made shared:
its own peer group, so nothing it mounts there reaches the host's other mounts) and a tmpfs
under it after the containers started. Docker 20.10, measured here: rslave sees the host's
new mount, rprivate (the default) does not; shared/rshared on a source whose mount is not
shared, and slave/rslave on one that is neither shared nor slave, are refused at the start:
"path SRC is mounted on MOUNT but it is not a shared mount" / "... a shared or slave mount",
exit 125.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from isoinspect.benches.peers import DOCKER_IMAGE
from isoinspect.benches.targets.docker import REPO, docker_binary

DOCKER = docker_binary()
PREFIX = f"isoinspect-prop-{os.getpid()}"


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _host_mounts(under: str) -> list[str]:
    """The host's mount points under ``under`` (the test's tmp dir holds the source and the
    container's state root: other jobs on this host mount and unmount elsewhere)."""
    with open("/proc/self/mountinfo") as handle:
        points = (line.split()[4] for line in handle)
        return sorted(p for p in points if p == under or p.startswith(under + "/"))


@pytest.fixture
def source(tmp_path):
    """A directory that is a mount point of its own with the given propagation."""
    made = []

    def make(propagation: str) -> str:
        path = str(tmp_path / f"src-{propagation}")
        os.mkdir(path)
        _sh("mount", "--bind", path, path)
        made.append(path)
        _sh("mount", "--make-private", path)
        if propagation != "private":
            _sh("mount", f"--make-{propagation}", path)
        return path

    yield make
    for path in reversed(made):
        subprocess.run(["umount", "-R", "-l", path], capture_output=True)


@pytest.fixture(scope="module")
def docker_image():
    subprocess.run(["bash", os.path.join(REPO, "scripts", "docker-busybox.sh"), DOCKER_IMAGE],
                   check=True, capture_output=True)
    yield DOCKER_IMAGE
    names = subprocess.run([DOCKER, "ps", "-aq", "--filter", f"name={PREFIX}"],
                           capture_output=True, text=True).stdout.split()
    if names:
        subprocess.run([DOCKER, "rm", "-f", *names], capture_output=True)


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flag,expect_seen", [
    ("-v {src}:/data:rslave", True),
    ("--mount type=bind,source={src},target=/data,bind-propagation=rslave", True),
    ("-v {src}:/data", False),                         # Docker's default: rprivate
    ("-v {src}:/data:rprivate", False),
    ("--mount type=bind,source={src},target=/data,bind-propagation=rprivate", False),
])
def test_host_mount_after_start_reaches_only_slaves(iso, source, docker_image, flag,
                                                    expect_seen):
    src = source("shared")
    args = flag.format(src=src).split()
    name = f"{PREFIX}-{abs(hash(flag)) % 10**6}"
    iso("run", "-d", "--name", "isoinspect-prop", "--network", "none", *args, "busybox",
        "sleep", "120", check=True)
    started = _docker("run", "-d", "--name", name, "--network", "none", *args, docker_image,
                      "sleep", "120")
    assert started.returncode == 0, started.stderr
    try:
        os.mkdir(os.path.join(src, "sub"))
        _sh("mount", "-t", "tmpfs", "isoinspect-prop", os.path.join(src, "sub"))
        with open(os.path.join(src, "sub", "file"), "w") as handle:
            handle.write("from-the-host\n")
        ours = iso("exec", "isoinspect-prop", "cat", "/data/sub/file")
        theirs = _docker("exec", name, "cat", "/data/sub/file")
    finally:
        _docker("rm", "-f", name)
    assert (ours.stdout == "from-the-host\n") is expect_seen, ours
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


def test_rshared_mount_in_the_container_reaches_the_host(iso, source, tmp_path):
    src = source("shared")
    assert iso.root.startswith(str(tmp_path))
    mounts = lambda: _host_mounts(str(tmp_path))  # noqa: E731
    before = mounts()
    iso("run", "-d", "--name", "isoinspect-prop", "--network", "none", "--cap-add",
        "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "-v", f"{src}:/data:rshared",
        "busybox", "sleep", "120", check=True)
    assert mounts() == before  # the container's own root, /proc, /dev... stay inside
    done = iso("exec", "isoinspect-prop", "sh", "-c",
               "mkdir /data/in && mount -t tmpfs isoinspect-prop /data/in && "
               "echo from-the-container > /data/in/file")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(src, "in", "file")) as handle:
        assert handle.read() == "from-the-container\n"
    assert mounts() == sorted(before + [os.path.join(src, "in")])
    iso("rm", "-f", "isoinspect-prop", check=True)
    assert mounts() == sorted(before + [os.path.join(src, "in")])  # nothing else gone


@pytest.mark.parametrize("propagation,source_kind,words", [
    ("rshared", "private", "a shared mount"), ("shared", "slave", "a shared mount"),
    ("rslave", "private", "a shared or slave mount"),
    ("slave", "private", "a shared or slave mount"),
])
def test_propagation_needs_a_propagating_source(iso, source, docker_image, tmp_path,
                                                propagation, source_kind, words):
    if source_kind == "slave":  # a slave of our own shared mount
        master = source("shared")
        src = str(tmp_path / "src-slave")
        os.mkdir(src)
        _sh("mount", "--bind", master, src)
        _sh("mount", "--make-slave", src)
        try:
            return _refused(iso, docker_image, src, propagation, words)
        finally:
            subprocess.run(["umount", "-l", src], capture_output=True)
    _refused(iso, docker_image, source(source_kind), propagation, words)


def _refused(iso, image: str, src: str, propagation: str, words: str) -> None:
    message = f"path {src} is mounted on {src} but it is not {words}"
    ours = iso("run", "--rm", "--network", "none", "-v", f"{src}:/data:{propagation}",
               "busybox", "true")
    theirs = _docker("run", "--rm", "--network", "none", "-v", f"{src}:/data:{propagation}",
                     image, "true")
    assert ours.returncode == theirs.returncode == 125, (ours.stderr, theirs.stderr)
    assert ours.stderr == f"isoinspect: {message}\n"
    assert message in theirs.stderr
    assert iso("ps", "-aq").stdout == ""
