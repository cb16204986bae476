"""push / pull against a real registry (Debian's docker-registry) on 127.0.0.1, basic auth."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

import pytest
from registry_server import free_port, serve_registry

USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("pull/push tests need root (images are unpacked as root)")
    base = tmp_path_factory.mktemp("registry")
    htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True,
                              text=True, check=True).stdout
    (base / "htpasswd").write_text(htpasswd)
    auth = f"  htpasswd:\n    realm: isoinspect-test\n    path: {base}/htpasswd\n"
    with serve_registry(base, auth) as served:
        yield {"host": served.host, "data": served.data, "log": served.log}


def requests_in_log(registry, method: str) -> int:
    with open(registry["log"]) as handle:
        return sum(1 for line in handle if f"http.request.method={method}" in line
                   and "response completed" in line)


def cli():
    return os.path.join(os.path.dirname(sys.executable), "isoinspect")


def fresh(tmp_path, name):
    root = str(tmp_path / name)
    env = dict(os.environ, ISOINSPECT_ROOT=root, ISOINSPECT_REGISTRY_USER=USER,
               ISOINSPECT_REGISTRY_PASSWORD=PASSWORD)

    def run(*args):
        return subprocess.run([cli(), *args], env=env, capture_output=True, text=True,
                              timeout=120)
    run.root = root
    return run


def test_push_chunked_then_skips_existing_blobs_and_pull_runs(iso, registry, tmp_path):
    ref = f"{registry['host']}/team/app:1"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN head -c 300000 /dev/urandom > /blob\n"
                                    "CMD [\"echo\", \"pulled\"]\n")
    iso("build", "-t", ref, str(ctx), timeout=120, check=True)
    patches = requests_in_log(registry, "PATCH")
    pushed = iso("push", "-u", USER, "-p", PASSWORD, "--chunk-size", "65536", ref, check=True)
    assert pushed.stdout.count(": Pushed") == 2
    assert requests_in_log(registry, "PATCH") - patches >= 300000 // 65536  # chunked
    again = iso("push", "-u", USER, "-p", PASSWORD, ref, check=True)
    assert again.stdout.count("Layer already exists") == 2 and ": Pushed" not in again.stdout
    # a derived image only sends its new layer
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nRUN echo more > /more\n")
    derived = f"{registry['host']}/team/app:2"
    iso("build", "-t", derived, str(ctx), timeout=120, check=True)
    out = iso("push", "-u", USER, "-p", PASSWORD, derived, check=True).stdout
    assert out.count("Layer already exists") == 2 and out.count(": Pushed") == 1

    other = fresh(tmp_path, "puller")
    pulled = other("pull", derived)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.count("Pull complete") == 3
    image_id = iso("images", "-q").stdout  # same image id on both sides
    assert other("images", "-q").stdout.split()[0] in image_id
    run = other("run", "--rm", derived, "sh", "-c", "cat /more; wc -c < /blob")
    assert run.stdout.split() == ["more", "300000"], run.stderr
    start = time.monotonic()
    repeat = other("pull", derived)
    assert repeat.stdout.count("Already exists") == 3 and time.monotonic() - start < 5


def test_auth_is_required_and_checked(iso, registry):
    ref = f"{registry['host']}/team/auth:1"
    iso("tag", "busybox", ref, check=True)
    env_less = iso("push", ref)
    assert env_less.returncode != 0 and "authentication required" in env_less.stderr
    wrong = iso("push", "-u", USER, "-p", "wrong", ref)
    assert wrong.returncode != 0 and "authentication" in wrong.stderr


def test_corrupt_blob_is_rejected_and_nothing_is_kept(iso, registry, tmp_path):
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo precious > /precious\n")
    ref = f"{registry['host']}/team/corrupt:1"
    iso("build", "-t", ref, str(ctx), timeout=120, check=True)
    iso("push", "-u", USER, "-p", PASSWORD, ref, check=True)
    import json
    config = json.loads(iso("image", "inspect", ref, check=True).stdout)[0]
    top = config["RootFS"]["Layers"][-1][7:]
    data = glob.glob(f"{registry['data']}/docker/registry/v2/blobs/sha256/{top[:2]}/{top}/data")
    assert data, "pushed layer not found in the registry's storage"
    blob = open(data[0], "rb").read()
    with open(data[0], "wb") as handle:
        handle.write(blob.replace(b"precious", b"tampered"))
    other = fresh(tmp_path, "victim")
    result = other("pull", ref)
    assert result.returncode != 0 and "corrupt" in result.stderr
    assert other("images", "-q").stdout == ""
    layers = os.path.join(other.root, "lib", "layers")
    kept = [e for e in os.listdir(layers)] if os.path.isdir(layers) else []
    assert f"{top}" not in kept and not [e for e in kept if e.startswith(".staging")]
    assert not os.listdir(os.path.join(other.root, "lib", "tmp"))
    with open(data[0], "wb") as handle:  # repaired: the same pull now works
        handle.write(blob)
    assert other("pull", ref).returncode == 0


def test_unreachable_registry_and_bad_refs(iso):
    port = free_port()
    result = iso("pull", f"127.0.0.1:{port}/x/y:1")
    assert result.returncode != 0 and "unreachable" in result.stderr
    # a name without a host is Docker Hub's; the mirror setting keeps this test off the internet
    mirror = dict(iso.env, ISOINSPECT_REGISTRY_MIRROR=f"127.0.0.1:{port}")
    result = subprocess.run([iso.cli, "pull", "team/app"], env=mirror, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and f"127.0.0.1:{port} is unreachable" in result.stderr
    result = iso("pull", "127.0.0.1:5000/UPPER:1")
    assert result.returncode != 0 and "invalid reference" in result.stderr


def test_docker_pulls_what_we_push_and_we_pull_what_docker_pushes(iso, registry, tmp_path):
    subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                         "start-dockerd.sh")], check=True, capture_output=True)

    def docker(*args, check=True, input=None):
        result = subprocess.run(["docker", *args], capture_output=True, text=True, input=input,
                                timeout=120)
        assert not check or result.returncode == 0, result.stderr
        return result

    host = registry["host"]
    ours = f"{host}/interop/ours:1"
    theirs = f"{host}/interop/theirs:1"
    docker("login", "-u", USER, "--password-stdin", host, input=PASSWORD)
    try:
        iso("tag", "busybox", ours, check=True)
        iso("push", "-u", USER, "-p", PASSWORD, ours, check=True)
        docker("pull", ours)
        assert docker("run", "--rm", "--network", "none", ours, "echo", "hi").stdout == "hi\n"
        # Docker pushes gzip layers and a Docker schema 2 manifest
        ctx = tmp_path / "d"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {ours}\nRUN echo docker-layer > /dl\n")
        subprocess.run(["docker", "build", "--network", "none", "-q", "-t", theirs, str(ctx)],
                       check=True, capture_output=True, env=dict(os.environ, DOCKER_BUILDKIT="0"))
        docker("push", theirs)
        other = fresh(tmp_path, "from-docker")
        pulled = other("pull", theirs)
        assert pulled.returncode == 0, pulled.stderr
        assert "Already exists" not in pulled.stdout and pulled.stdout.count("Pull complete") == 2
        assert other("run", "--rm", theirs, "cat", "/dl").stdout == "docker-layer\n"
        docker_id = docker("image", "inspect", "-f", "{{.Id}}", theirs).stdout.strip()
        assert other("images", "-q").stdout.strip() == docker_id[7:19]
    finally:
        docker("rmi", "-f", ours, theirs, check=False)
        docker("logout", host, check=False)
