"""The image store without containers: layers, whiteouts, tags, rmi/prune, parsing, archives."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from isoinspect.runtime import layers
from isoinspect.runtime.errors import IsoinspectError, NotFound
from isoinspect.runtime.image_build import Ignore, expand, parse_dockerfile
from isoinspect.runtime.images import ImageStore, validate_ref
from isoinspect.runtime.roots import Roots

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need mknod (root)")


def make_tar(path, files: dict) -> str:
    """files: name -> bytes (regular file) or None (directory)."""
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return str(path)


def add_image(store, tmp_path, files_per_layer, tags=(), parent=""):
    diff_ids = []
    for index, files in enumerate(files_per_layer):
        diff_ids.append(store.add_layer_from_tar(make_tar(tmp_path / f"l{index}.tar", files)))
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))]}
    return store.add_image(config, list(tags), parent=parent), diff_ids


@pytest.fixture
def store(tmp_path):
    return ImageStore(Roots(str(tmp_path / "root")))


@needs_root
def test_layers_are_content_addressed_and_shared(store, tmp_path):
    base = {"bin/": None, "bin/a": b"A", "etc/": None, "etc/x": b"X"}
    id1, d1 = add_image(store, tmp_path, [base], ["one:1"])
    id2, d2 = add_image(store, tmp_path, [base, {"etc/": None, "etc/y": b"Y"}], ["two:1"])
    assert d1[0] == d2[0]
    assert len([e for e in os.listdir(store.roots.data("layers")) if len(e) == 64]) == 2
    info = store.start_info(store.resolve("two:1"))
    assert info["layers"] == [store.layer_dir(d2[1]), store.layer_dir(d2[0])]  # top first
    assert open(os.path.join(info["layers"][1], "bin/a")).read() == "A"
    assert id1 != id2


@needs_root
def test_oci_whiteouts_become_overlay_whiteouts_and_back(store, tmp_path):
    diff = store.add_layer_from_tar(make_tar(tmp_path / "w.tar", {
        "etc/": None, "etc/.wh.passwd": b"", "d/": None, "d/.wh..wh..opq": b"", "d/new": b"n"}))
    diff_dir = store.layer_dir(diff)
    st = os.lstat(os.path.join(diff_dir, "etc/passwd"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(diff_dir, "d"), "trusted.overlay.opaque") == b"y"
    assert not os.path.exists(os.path.join(diff_dir, "etc/.wh.passwd"))
    out = str(tmp_path / "again.tar")
    layers.tar_from_dir(diff_dir, out)
    names = tarfile.open(out).getnames()
    assert "etc/.wh.passwd" in names and "d/.wh..wh..opq" in names and "d/new" in names
    assert "etc/passwd" not in names


def test_layer_escaping_its_dir_is_refused_and_nothing_kept(store, tmp_path):
    with pytest.raises(IsoinspectError, match="escapes"):
        store.add_layer_from_tar(make_tar(tmp_path / "bad.tar", {"../evil": b"x"}))
    assert [e for e in os.listdir(store.roots.data("layers"))] == []


def test_layer_digest_mismatch_stores_nothing(store, tmp_path):
    path = make_tar(tmp_path / "l.tar", {"a": b"a"})
    with pytest.raises(IsoinspectError, match="digest mismatch"):
        store.add_layer_from_tar(path, expect="sha256:" + "0" * 64)
    assert os.listdir(store.roots.data("layers")) == []


@needs_root
def test_rmi_keeps_shared_layers_and_prune_removes_dangling(store, tmp_path):
    base = {"a": b"A"}
    id1, d1 = add_image(store, tmp_path, [base], ["one:1"])
    id2, d2 = add_image(store, tmp_path, [base, {"b": b"B"}], ["two:1"], parent=id1)
    store.tag(id2, "two:alias")
    assert store.remove("two:alias") == ["Untagged: two:alias"]  # still tagged two:1
    lines = store.remove("two:1")
    assert f"Deleted: sha256:{id2}" in lines
    assert store.has_layer(d1[0]) and not store.has_layer(d2[1])
    with pytest.raises(NotFound):
        store.resolve("two:1")
    dangling, _ = add_image(store, tmp_path, [{"c": b"C"}])
    assert f"Deleted: sha256:{dangling}" in store.prune()
    assert store.resolve("one:1") == id1
    child, _ = add_image(store, tmp_path, [{"a": b"A"}, {"c": b"C"}], ["child:1"], parent=id1)
    store.untag("one:1")
    assert store.prune() == []  # one:1's image is the base of child:1: kept as its cache
    assert store.has_image(id1)
    removed = store.prune(all_images=True)  # no container uses either
    assert f"Deleted: sha256:{child}" in removed and f"Deleted: sha256:{id1}" in removed
    assert store.image_ids() == [] and store.tags() == {}
    assert [e for e in os.listdir(store.roots.data("layers")) if len(e) == 64] == []


def test_ref_validation():
    assert validate_ref("Busybox".lower()) == "busybox:latest"
    assert validate_ref("127.0.0.1:5000/a/b:v1.0") == "127.0.0.1:5000/a/b:v1.0"
    for bad in ("UPPER:1", "a::b", "-a", "a/:b", "a b", "a:b:c", ""):
        with pytest.raises(IsoinspectError, match="invalid reference"):
            validate_ref(bad)


def test_dockerfile_parsing_and_errors():
    text = "# c\nFROM busybox\nRUN echo a \\\n  # inner comment\n  && echo b\nENV A=1 B=\"x y\"\n"
    ins = parse_dockerfile(text, "Dockerfile")
    assert [(i.keyword, i.line) for i in ins] == [("FROM", 2), ("RUN", 3), ("ENV", 6)]
    assert ins[1].args == "echo a && echo b"
    with pytest.raises(IsoinspectError, match=r"Dockerfile:3: unknown instruction: RUNN"):
        parse_dockerfile("FROM busybox\n\nRUNN x\n")
    with pytest.raises(IsoinspectError, match=r"Dockerfile:1: .*must be FROM"):
        parse_dockerfile("RUN x\n")
    with pytest.raises(IsoinspectError, match=r"Dockerfile:2: COPY requires"):
        parse_dockerfile("FROM a\nCOPY\n")


def test_variable_expansion():
    env = {"A": "1", "E": ""}
    assert expand("$A-${A}-${B:-d}-${A:+set}-${E:-empty}-\\$A", env, "x") == "1-1-d-set-empty-$A"


def test_dockerignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("*.log\nsecret/\n!keep.log\n# c\n")
    ignore = Ignore(str(tmp_path))
    assert ignore("a.log") and not ignore("keep.log")
    assert ignore("secret") and ignore("secret/x") and not ignore("src/x")


@needs_root
def test_oci_save_load_roundtrip_and_corruption(store, tmp_path):
    from isoinspect.runtime.image_archive import load, save

    image_id, _ = add_image(store, tmp_path, [{"a": b"A"}, {"b": b"B"}], ["rt:1"])
    out = str(tmp_path / "oci.tar")
    save(store, ["rt:1"], out, "oci")
    names = tarfile.open(out).getnames()
    assert "oci-layout" in names and "index.json" in names
    other = ImageStore(Roots(str(tmp_path / "other")))
    assert load(other, out) == ["Loaded image: rt:1"]
    assert other.resolve("rt:1") == image_id
    # a corrupted layer blob is refused and nothing is stored
    work = tmp_path / "x"
    work.mkdir()
    tarfile.open(out).extractall(work)
    index = json.loads((work / "index.json").read_text())
    manifest = json.loads((work / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                          .read_text())
    layer = work / "blobs/sha256" / manifest["layers"][1]["digest"][7:]
    layer.write_bytes(layer.read_bytes().replace(b"B", b"C"))
    bad = str(tmp_path / "bad.tar")
    with tarfile.open(bad, "w") as archive:
        for name in sorted(os.listdir(work)):
            archive.add(work / name, arcname=name)
    third = ImageStore(Roots(str(tmp_path / "third")))
    with pytest.raises(IsoinspectError, match="corrupt"):
        load(third, bad)
    assert third.tags() == {} and third.image_ids() == []


def test_start_path_imports_stay_light():
    code = ("import sys; before = set(sys.modules); import isoinspect.runtime.images as m; "
            "print(sorted(n for n in ('json','hashlib','tarfile','re','click') "
            "if n in sys.modules and n not in before))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_apt_mirror_is_read_from_the_sources(tmp_path):
    from isoinspect.runtime.image_debian import apt_mirror

    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\n# comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror(str(tmp_path)) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert apt_mirror(str(tmp_path)) == "http://old.example/debian"
    (tmp_path / "sources.list").write_text("")
    with pytest.raises(IsoinspectError, match="no Debian bookworm mirror"):
        apt_mirror(str(tmp_path))
