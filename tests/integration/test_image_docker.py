"""Images exchanged with the real dockerd both ways (docker save format), and the OCI layout."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def docker(*args, check=True, timeout=120, env=None):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def dockerd():
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    subprocess.run(["bash", os.path.join(REPO, "scripts", "start-dockerd.sh")], check=True,
                   capture_output=True, timeout=120)
    return True


@pytest.fixture
def names(dockerd):
    made = []

    def new(prefix="isoinspect-test"):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}:v1"
        made.append(name)
        return name
    yield new
    if made:
        docker("rmi", "-f", *made, check=False)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_isoinspect_image_runs_under_docker(iso, tmp_path, names):
    ctx = str(tmp_path / "ctx")
    write(f"{ctx}/Dockerfile", "FROM busybox\nCOPY msg /msg\n"
          "RUN rm /etc/group && mkdir /d && touch /d/old\n"
          "RUN rm -rf /d && mkdir /d && touch /d/new\nCMD [\"cat\", \"/msg\"]\n")
    write(f"{ctx}/msg", "built by isoinspect\n")
    name = names()
    iso("build", "-t", name, ctx, timeout=120, check=True)
    archive = str(tmp_path / "img.tar")
    iso("save", "-o", archive, name, check=True)
    assert "Loaded image: " + name in docker("load", "-i", archive).stdout
    ours = iso("image", "inspect", name, check=True).stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()[7:] in ours
    assert docker("run", "--rm", "--network", "none", name).stdout == "built by isoinspect\n"
    out = docker("run", "--rm", "--network", "none", name, "sh", "-c",
                 "ls /d; test -e /etc/group || echo group-gone").stdout.split()
    assert out == ["new", "group-gone"]


def test_docker_image_runs_under_isoinspect(iso, tmp_path, names):
    base = names("isoinspect-base")
    archive = str(tmp_path / "base.tar")
    iso("tag", "busybox", base, check=True)
    iso("save", "-o", archive, base, check=True)
    docker("load", "-i", archive)
    ctx = str(tmp_path / "dctx")
    write(f"{ctx}/Dockerfile", f"FROM {base}\nRUN rm /etc/passwd && mkdir -p /x && "
          "echo from-docker > /x/f\nRUN rm -rf /x && mkdir /x && echo again > /x/g\n"
          "ENV WHO=docker\nCMD [\"sh\", \"-c\", \"cat /x/g; echo $WHO\"]\n")
    built = names("isoinspect-dk")
    docker("build", "--network", "none", "-q", "-t", built, ctx,
           env=dict(os.environ, DOCKER_BUILDKIT="0"))
    saved = str(tmp_path / "docker.tar")
    docker("save", "-o", saved, built)
    # load it plain and gzip-compressed (as people ship `docker save | gzip`)
    result = iso("load", "-i", saved, check=True)
    assert f"Loaded image: {built}" in result.stdout
    assert iso("run", "--rm", built).stdout == "again\ndocker\n"
    out = iso("run", "--rm", built, "sh", "-c",
              "ls /x; test -e /etc/passwd || echo passwd-gone").stdout.split()
    assert out == ["g", "passwd-gone"]
    docker_id = docker("image", "inspect", "-f", "{{.Id}}", built).stdout.strip()
    assert iso("images", "-q").stdout.count(docker_id[7:19]) == 1
    with open(saved, "rb") as src, gzip.open(str(tmp_path / "docker.tar.gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    other = tmp_path / "other-root"
    env = dict(iso.env, ISOINSPECT_ROOT=str(other))
    subprocess.run([_cli(), "load", "-i",
                    str(tmp_path / "docker.tar.gz")], env=env, check=True, capture_output=True)
    from isoinspect.runtime.images import ImageStore
    from isoinspect.runtime.roots import Roots
    assert ImageStore(Roots(str(other))).resolve(built) == docker_id[7:]


def _cli():
    import sys
    return os.path.join(os.path.dirname(sys.executable), "isoinspect")


def test_oci_layout_round_trip_through_the_cli(iso, tmp_path, dockerd):
    archive = str(tmp_path / "oci.tar")
    iso("save", "--format", "oci", "-o", archive, "busybox", check=True)
    other = str(tmp_path / "other")
    env = dict(iso.env, ISOINSPECT_ROOT=other)
    result = subprocess.run([_cli(), "load", "-i", archive], env=env, capture_output=True,
                            text=True)
    assert result.stdout.strip() == "Loaded image: busybox:latest", result.stderr
    bad = str(tmp_path / "junk.tar")
    with open(bad, "wb") as handle:
        handle.write(b"not a tar")
    result = iso("load", "-i", bad)
    assert result.returncode != 0 and "cannot read image archive" in result.stderr
