"""Hostile build contexts and Dockerfiles against ``isoinspect build`` (issue 13, items 6, 7, 10).

Every attack runs for real as root: real symlinks pointing at real host files, real RUN
containers, a real kill -9. Each test says what Docker does with the same input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SECRET = "isoinspect-host-secret-7f3a9c\n"


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def refused_in_one_line(result: subprocess.CompletedProcess, words: str) -> None:
    """The build failed with exit 1 and one line naming the problem, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def nothing_left(iso) -> None:
    """No container record, scratch dir or staging layer stays after a build."""
    data = iso.roots.data
    for folder in ("containers", "tmp"):
        assert not os.path.isdir(data(folder)) or os.listdir(data(folder)) == [], folder
    assert not [e for e in os.listdir(data("layers")) if e.startswith(".staging")]


@pytest.fixture
def outside(tmp_path):
    """A host directory next to (not inside) the build context, holding a secret."""
    path = tmp_path / "outside"
    write(str(path / "secret.txt"), SECRET)
    return str(path)


# -- item 6: sources are resolved inside the build context ---------------------------------------

@pytest.mark.parametrize("link_kind", ["absolute", "relative"])
@pytest.mark.parametrize("instruction", ["COPY link/secret.txt /stolen.txt",
                                         "COPY link /stolen/",
                                         "ADD link/secret.txt /stolen.txt"])
def test_copy_through_a_context_symlink_does_not_read_the_host(iso, tmp_path, outside,
                                                               link_kind, instruction):
    """A symlink in the context pointing outside it (``link -> /abs/outside`` or
    ``link -> ../outside``) and ``COPY link/secret.txt``.

    Docker resolves COPY/ADD sources inside the context as if it were the root (the classic
    builder with FollowSymlinkInScope, BuildKit with its scoped copy): the link lands inside the
    context, where there is no such file, and the build fails with "not found". Before the fix
    isoinspect followed the link and put the host's file into the image.
    """
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", f"FROM busybox\n{instruction}\n")
    os.symlink(outside if link_kind == "absolute" else "../outside", f"{ctx}/link")
    result = iso("build", "-t", "evil:1", ctx, timeout=120)
    refused_in_one_line(result, "not found in the build context")
    assert "evil:1" not in iso("images").stdout
    nothing_left(iso)


def test_copied_context_keeps_an_outward_symlink_as_a_link(iso, tmp_path, outside):
    """``COPY . /ctx/`` with ``link -> <host dir>`` inside: the image gets the symlink itself
    (as with Docker, which copies symlinks inside a copied directory as symlinks), and reading
    through it in a container does not find the host's secret."""
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nCOPY . /ctx/\n")
    os.symlink(outside, f"{ctx}/link")
    iso("build", "-t", "links:1", ctx, timeout=120, check=True)
    shown = iso("run", "--rm", "links:1", "sh", "-c",
                "readlink /ctx/link; cat /ctx/link/secret.txt")
    assert shown.stdout.strip() == outside
    assert SECRET.strip() not in shown.stdout + shown.stderr
    nothing_left(iso)


def test_an_ignored_file_is_not_reachable_through_a_symlink(iso, tmp_path):
    """``.dockerignore`` names ``private``; ``alias -> private`` is not ignored.

    Docker never sends ignored files to the builder, so ``COPY alias/token.txt`` finds nothing
    behind the link: "not found". Before the fix isoinspect checked the ignore rules on the
    unresolved path and copied the ignored token.
    """
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nCOPY alias/token.txt /token.txt\n")
    write(f"{ctx}/.dockerignore", "private\n")
    write(f"{ctx}/private/token.txt", SECRET)
    os.symlink("private", f"{ctx}/alias")
    refused_in_one_line(iso("build", "-t", "evil:1", ctx, timeout=120),
                        "not found in the build context")
    nothing_left(iso)


def test_a_symlink_inside_the_context_is_followed_there(iso, tmp_path):
    """The benign case Docker supports (TestBuildFollowSymlinkToFile/ToDir): ``COPY
    file-link /x`` copies the linked file's content, ``COPY dir-link /d/`` the linked
    directory's entries, when the link stays inside the context."""
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nCOPY flink /x\nCOPY dlink /d/\n")
    write(f"{ctx}/real/inner.txt", "inner\n")
    write(f"{ctx}/file.txt", "file\n")
    os.symlink("file.txt", f"{ctx}/flink")
    os.symlink("/real", f"{ctx}/dlink")  # absolute: resolved inside the context
    iso("build", "-t", "ok:1", ctx, timeout=120, check=True)
    shown = iso("run", "--rm", "ok:1", "sh", "-c",
                "cat /x /d/inner.txt; test -L /x || echo regular", check=True)
    assert shown.stdout == "file\ninner\nregular\n"
    nothing_left(iso)


@pytest.mark.parametrize("instruction", ["COPY ../secret.txt /", "ADD ../secret.txt /",
                                         "COPY sub/../../secret.txt /",
                                         "COPY ../outside/* /x/"])
def test_a_parent_path_is_forbidden(iso, tmp_path, instruction):
    """``COPY ../secret.txt``: Docker (classic builder) refuses it with "forbidden path outside
    the build context: ../secret.txt"; isoinspect says the same in one line and builds nothing."""
    write(str(tmp_path / "secret.txt"), SECRET)
    write(str(tmp_path / "outside" / "secret.txt"), SECRET)
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", f"FROM busybox\n{instruction}\n")
    write(f"{ctx}/sub/x", "x\n")
    refused_in_one_line(iso("build", "-t", "evil:1", ctx, timeout=120),
                        "forbidden path outside the build context")
    nothing_left(iso)


# -- item 6: destinations never leave the image root ---------------------------------------------

def test_a_symlink_copied_first_cannot_redirect_later_sources(iso, tmp_path):
    """``COPY a b /dst/``: ``a`` brings ``d -> <host dir>`` and ``f -> <host file>``, then ``b``
    brings ``d/pwned.txt`` and a regular ``f``. Before the fix the second source was written
    through the first one's symlinks: a new file in the host directory and the host file
    overwritten. Docker unpacks each source over the image root and replaces a symlink that is
    in the way (a directory entry replaces a link, a file replaces it too): the image gets
    /dst/d/pwned.txt and a regular /dst/f, and the host is untouched.
    """
    victim = str(tmp_path / "victim")
    write(f"{victim}/host.txt", "original\n")
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nCOPY a b /dst/\n")
    os.makedirs(f"{ctx}/a")
    os.symlink(victim, f"{ctx}/a/d")
    os.symlink(f"{victim}/host.txt", f"{ctx}/a/f")
    write(f"{ctx}/b/d/pwned.txt", "pwned\n")
    write(f"{ctx}/b/f", "overwritten\n")
    iso("build", "-t", "dst:1", ctx, timeout=120, check=True)
    assert sorted(os.listdir(victim)) == ["host.txt"]
    assert read(f"{victim}/host.txt") == "original\n"
    shown = iso("run", "--rm", "dst:1", "sh", "-c",
                "cat /dst/d/pwned.txt /dst/f; test -L /dst/d || test -L /dst/f || echo real",
                check=True)
    assert shown.stdout == "pwned\noverwritten\nreal\n"
    nothing_left(iso)


@pytest.mark.parametrize("link_kind", ["absolute", "relative"])
def test_an_image_symlink_resolves_inside_the_image(iso, tmp_path, link_kind):
    """The base image has ``/escape -> <host dir>`` (absolute, or ``../../..`` climbing out),
    and the host dir holds a directory ``probe``. ``COPY f.txt /escape/probe``.

    Docker resolves the destination inside the image's root: /escape leads to <host dir> *in
    the image*, where there is no ``probe``, so the file is written there as
    <host dir>/probe and /escape stays a symlink. Before the fix isoinspect looked the path up
    through the link on the host (it saw the host's ``probe`` directory and wrote
    /escape/probe/f.txt, turning /escape into a directory).
    """
    victim = str(tmp_path / "victim")
    os.makedirs(f"{victim}/probe")
    link = victim if link_kind == "absolute" else "../../../../../.." + victim
    base_ctx = str(tmp_path / "base")
    write(f"{base_ctx}/Dockerfile", f"FROM busybox\nRUN ln -s {link} /escape\n")
    iso("build", "-t", "linkbase:1", base_ctx, timeout=120, check=True)
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM linkbase:1\nCOPY f.txt /escape/probe\n")
    write(f"{ctx}/f.txt", "in the image\n")
    iso("build", "-t", "dst:2", ctx, timeout=120, check=True)
    assert os.listdir(victim) == ["probe"] and os.listdir(f"{victim}/probe") == []
    shown = iso("run", "--rm", "dst:2", "sh", "-c",
                f"cat {victim}/probe; test -L /escape && echo still-a-link", check=True)
    assert shown.stdout == "in the image\nstill-a-link\n"
    nothing_left(iso)


# -- item 7: no clone while another thread lives --------------------------------------------------

RUN_STEPS = "".join(f"RUN echo step{n}; echo err{n} >&2; echo {n} > /f{n}\n" for n in range(4))


@pytest.mark.parametrize("network", ["host", "bridge"])
def test_run_steps_clone_with_no_other_thread(iso, tmp_path, monkeypatch, network):
    """Every RUN container is cloned while the builder has exactly one thread.

    A raw clone copies only the calling thread; a reader thread that held the interpreter
    lock at that moment left the child waiting for it forever and the parent waiting for the
    child (2 hangs in ~300 builds). The seam wraps the clone call and counts the process's
    threads (/proc/self/task) at each one: deterministic, unlike the race itself. With a bridge
    network the set-up of the previous step (netlink, iptables) must not leave one either.
    Docker's
    builder is Go and starts RUN containers through containerd/runc, which re-execs itself.
    """
    from isoinspect.runtime import image_build
    from isoinspect.runtime.linux import syscalls as sc
    from isoinspect.runtime.runtime import Runtime

    threads_at_clone: list[int] = []

    def counting(real):
        def clone(*args) -> int:  # clone_process(flags), clone_into_cgroup(flags, fd)
            threads_at_clone.append(len(os.listdir("/proc/self/task")))
            return real(*args)
        return clone

    for name in ("clone_process", "clone_into_cgroup"):  # the latter where v2 is mounted
        monkeypatch.setattr(sc, name, counting(getattr(sc, name)))
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\n" + RUN_STEPS)
    output = open(tmp_path / "build.log", "w")
    try:
        image_build.Builder(Runtime(iso.root), out=output, network=network).build(
            ctx, no_cache=True)
    finally:
        output.close()
    assert threads_at_clone == [1, 1, 1, 1]
    log = read(str(tmp_path / "build.log"))
    assert all(f"step{n}\n" in log and f"err{n}\n" in log for n in range(4)), log
    nothing_left(iso)


def test_repeated_builds_of_run_steps_finish(iso, tmp_path):
    """Builds of four RUN steps, again and again with --no-cache: each must finish (a hang
    shows as the CLI's timeout) with every step's output, stdout and stderr, in order."""
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\n" + RUN_STEPS)
    for _ in range(30):  # 120 clones; the race hit about 2 in 1200 before the fix
        result = iso("build", "--no-cache", ctx, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines()
                 if line.startswith(("step", "err"))]
        assert lines == [f"{kind}{n}" for n in range(4) for kind in ("step", "err")]
    nothing_left(iso)


# -- item 10: a killed build leaves nothing that gc does not remove -------------------------------

def test_gc_removes_what_a_killed_build_left(iso, tmp_path):
    """kill -9 of ``isoinspect build`` while ``RUN sleep 30`` runs, then ``isoinspect gc``.

    Docker: the daemon, not the CLI, runs the build; killing the CLI cancels the build and the
    daemon removes the intermediate container (--rm is the default for builds). Here the CLI
    is the builder, so gc must find the RUN container of a dead build (its record names the
    build as creator) and remove it with its cgroup, and remove the build's scratch dirs.
    Before the fix gc marked the container exited and kept it, and left tmp/build-<pid>-*.
    """
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nRUN sleep 30\n")
    build = iso.popen("build", "--no-cache", ctx)
    containers = iso.roots.data("containers")
    deadline = time.monotonic() + 60
    running = []
    while not running and time.monotonic() < deadline and build.poll() is None:
        running = [line for line in iso("ps", "-q").stdout.split() if line]
        time.sleep(0.05)
    assert running, "the RUN container never ran"
    assert [e for e in os.listdir(iso.roots.data("tmp")) if e.startswith("build-")]
    os.kill(build.pid, signal.SIGKILL)
    build.wait(timeout=30)
    build.stdout.close()
    build.stderr.close()
    result = iso("gc", check=True)
    assert "build" in result.stdout, result.stdout
    assert iso("ps", "-aq").stdout.split() == []
    assert not os.path.isdir(containers) or os.listdir(containers) == []
    assert os.listdir(iso.roots.data("tmp")) == []
    assert not [e for e in os.listdir(iso.roots.data("layers")) if e.startswith(".staging")]
    assert iso.cgroup_dirs() == []
    assert iso.host_mounts() == []
