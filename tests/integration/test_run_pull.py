"""`run` pulls an image it does not have, as Docker does (--pull missing|always|never), from a
real registry (Debian's docker-registry) on 127.0.0.1 with basic auth and `login`'s
credentials; and a run of an image it has loads no registry code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import Iso
import test_image_registry



USER, PASSWORD = test_image_registry.USER, test_image_registry.PASSWORD
registry = test_image_registry.registry  # its docker-registry fixture (basic auth), shared


@pytest.fixture(scope="module")
def host(registry) -> str:
    return registry["host"]


@pytest.fixture
def pusher(tmp_path, base_root, host):
    """A second store (another machine, as far as the registry knows) that builds and pushes."""
    root = str(tmp_path / "pusher")
    subprocess.run(["cp", "-a", base_root, root], check=True)
    helper = Iso(root)
    _login(helper, host)
    yield helper
    helper.remove_parents()


def _login(iso, host: str) -> None:
    iso("login", "-u", USER, "--password-stdin", host, input=PASSWORD + "\n", check=True)


def _push(pusher, tmp_path, ref: str, word: str) -> str:
    """Build an image whose command prints ``word`` (from a layer of its own) as ``ref``; push;
    return the manifest digest the registry gave."""
    ctx = tmp_path / f"ctx-{word}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f'FROM busybox\nRUN echo {word} > /which\n'
                                    'CMD ["cat", "/which"]\n')
    pusher("build", "-t", ref, str(ctx), timeout=120, check=True)
    pushed = pusher("push", ref, check=True, timeout=120).stdout.splitlines()[-1]
    return pushed.split("digest: ")[1].split()[0]  # "TAG: digest: sha256:... size: N"


def _image_id(iso, ref: str) -> str:
    return json.loads(iso("image", "inspect", ref, check=True).stdout)[0]["Id"]


def test_run_pulls_a_missing_image_then_always_and_never(iso, pusher, host, tmp_path):
    ref = f"{host}/isoinspect-pull/app:1"
    _login(iso, host)
    _push(pusher, tmp_path, ref, "one")

    run = iso("run", "--rm", ref, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "one\n"  # the progress is on stderr, the container's output alone here
    err = run.stderr.splitlines()
    assert err[0] == f"Unable to find image '{ref}' locally"
    assert err[1] == "1: Pulling from isoinspect-pull/app"
    assert err[2:4] == [f"{err[2][:12]}: Already exists", f"{err[3][:12]}: Pull complete"]
    assert err[4].startswith("Digest: sha256:") and len(err) == 6
    assert err[5].startswith(f"Status: Downloaded image for {ref} (")
    one = _image_id(iso, ref)

    echo = iso("run", "--rm", "--network", "none", ref, "echo", "hi")
    assert (echo.returncode, echo.stdout, echo.stderr) == (0, "hi\n", "")  # present: no pull

    # a second version behind the same tag: run keeps the local one, --pull always fetches it
    _push(pusher, tmp_path, ref, "two")
    local = iso("run", "--rm", ref)
    assert (local.returncode, local.stdout, local.stderr) == (0, "one\n", "")
    always = iso("run", "--rm", "--pull", "always", ref, timeout=120)
    assert always.returncode == 0 and always.stdout == "two\n", always.stderr
    assert always.stderr.startswith("1: Pulling from isoinspect-pull/app\n")
    assert "Pull complete" in always.stderr and _image_id(iso, ref) != one
    again = iso("run", "--rm", "--pull=always", ref, timeout=120)
    assert again.stdout == "two\n" and again.stderr.splitlines()[-1] == \
        f"Status: Image is up to date for {ref}", again.stderr

    never = iso("run", "--pull", "never", f"{host}/isoinspect-pull/none", "true")
    assert never.returncode == 125
    assert never.stderr == f"isoinspect: No such image: {host}/isoinspect-pull/none:latest\n"
    assert iso("ps", "-aq").stdout == ""


def test_run_by_digest_pulls_once_and_lists_no_tag(iso, pusher, host, tmp_path):
    digest = _push(pusher, tmp_path, f"{host}/isoinspect-pull/dig:1", "pinned")
    ref = f"{host}/isoinspect-pull/dig@{digest}"
    _login(iso, host)
    first = iso("run", "--rm", ref, timeout=120)
    assert first.returncode == 0 and first.stdout == "pinned\n", first.stderr
    assert first.stderr.splitlines()[:2] == [f"Unable to find image '{ref}' locally",
                                             f"{digest}: Pulling from isoinspect-pull/dig"]
    again = iso("run", "--rm", ref)
    assert (again.returncode, again.stdout, again.stderr) == (0, "pinned\n", "")
    assert "@" not in iso("images", check=True).stdout  # a digest is no tag


def test_missing_image_the_registry_lacks_is_docker_shaped(iso, host):
    _login(iso, host)
    ref = f"{host}/isoinspect-pull/absent:3"
    run = iso("run", "--rm", ref, "true", timeout=120)
    assert run.returncode == 125
    first, second = run.stderr.splitlines()  # Docker's two lines, no traceback
    assert first == f"Unable to find image '{ref}' locally"
    assert second.startswith("isoinspect: ") and "not found" in second
    detached = iso("run", "-d", "--pull", "bogus", "busybox", "true")
    assert detached.returncode == 125 and detached.stderr == (
        "isoinspect: invalid pull option: 'bogus': must be one of \"always\", \"missing\" or "
        "\"never\"\n")
    assert iso("ps", "-aq").stdout == ""


def test_run_of_a_present_image_loads_no_registry_code(iso):
    """The start path stays as it was: the lookup that finds the image is the only one made,
    and neither the registry client nor the pull module is imported."""
    source = os.path.join(os.path.dirname(sys.executable), "..", "isoinspect-src")
    probe = (f"import sys\nsys.path[:0] = [{os.path.realpath(source)!r}]\n"
             "from isoinspect.cli.entry import main\n"
             "code = main(['run', '--rm', '--network', 'none', 'busybox', 'true'])\n"
             "loaded = sorted(m for m in sys.modules if 'registry' in m or 'pull' in m\n"
             "                or m.startswith(('click', 'ssl', 'http')))\n"
             "print(code, loaded)\n")
    python = os.path.join(os.path.dirname(sys.executable), "python3")
    out = subprocess.run([python, "-I", "-S", "-c", probe], capture_output=True, text=True,
                         env=iso.env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "0 []\n", out.stdout
