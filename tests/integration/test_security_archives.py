"""Hostile image archives (issue 13, items 1, 2, 10 and 11): load, build ADD and pull.

Every archive here is built for real with tarfile and fed to the real CLI as root. The "host"
is a tmp directory outside the store holding sentinel files; an attack succeeds when it creates
or changes a file there, or makes an image whose root is there. A refusal must be one line on
stderr, a non-zero exit, the host untouched and nothing left in the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time

from test_image_registry import PASSWORD, USER, registry  # noqa: F401 (fixture)

PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"


# -- archive builders ------------------------------------------------------------------------

def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "",
          mode: int = 0o644, dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_700_000_000
    info.devmajor, info.devminor = dev
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def config_json(diff_ids: list[str]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def docker_archive(path, layers: list[bytes], tags=("isoinspect-evil:1",),
                   diff_ids: list[str] | None = None, config: bytes | None = None,
                   outer: list[tuple[tarfile.TarInfo, bytes]] = ()) -> str:
    """A docker-save archive; ``outer`` entries come first (hostile members of the archive)."""
    raw = config if config is not None else \
        config_json(diff_ids if diff_ids is not None else [sha(layer) for layer in layers])
    entries = list(outer)
    entries.append(entry(f"{hashlib.sha256(raw).hexdigest()}.json", data=raw))
    names = []
    for index, layer in enumerate(layers):
        entries.append(entry(f"l{index}", tarfile.DIRTYPE))
        entries.append(entry(f"l{index}/layer.tar", data=layer))
        names.append(f"l{index}/layer.tar")
    manifest = [{"Config": f"{hashlib.sha256(raw).hexdigest()}.json",
                 "RepoTags": list(tags), "Layers": names}]
    entries.append(entry("manifest.json", data=json.dumps(manifest).encode()))
    with open(path, "wb") as handle:
        handle.write(tar_bytes(entries))
    return str(path)


def oci_archive(path, layers: list[bytes], diff_ids: list[str], tag: str = "evil:1") -> str:
    raw = config_json(diff_ids)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(raw), "size": len(raw)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": sha(layer), "size": len(layer)}
                                      for layer in layers]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
         "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}).encode()
    entries = [entry("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}')]
    for blob in [raw, manifest, *layers]:
        entries.append(entry(f"blobs/sha256/{sha(blob)[7:]}", data=blob))
    entries.append(entry("index.json", data=index))
    with open(path, "wb") as handle:
        handle.write(tar_bytes(entries))
    return str(path)


# -- checks ----------------------------------------------------------------------------------

def make_host(tmp_path):
    """A stand-in for host files: a directory outside the store with a passwd-like file."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "passwd").write_bytes(PASSWD)
    return host


def host_state(host) -> dict:
    state = {}
    for dirpath, dirnames, filenames in os.walk(host):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) else b""
            state[os.path.relpath(path, host)] = (st.st_mode, st.st_nlink, data)
    return state


def store_state(iso) -> dict:
    state = {}
    for sub in ("layers", "images", "tags", "tmp", "blobs", "cache"):
        path = iso.roots.data(sub)
        state[sub] = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return state


def assert_refused(result, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, f"accepted: {result.stdout} {result.stderr}"
    assert len(lines) == 1, f"not one line: {result.stderr}"
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr, lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def load_refused(iso, tmp_path, host, archive: str, *words: str) -> str:
    before_host, before_store = host_state(host), store_state(iso)
    result = iso("load", "-i", archive)
    assert_refused(result, *words)
    assert host_state(host) == before_host, "the archive changed the host"
    assert store_state(iso) == before_store, "the refused archive left something in the store"
    return result.stderr


# -- item 1: layer and outer archive members that reach the host ------------------------------

def test_layer_symlink_then_file_through_it_is_refused(iso, tmp_path):
    """A layer holds ``escape -> <host>/etc`` then ``escape/cron.d``: before the fix tarfile
    followed the symlink and wrote the file into the host directory.
    Docker: the layer is unpacked chrooted into the layer dir, so the write stays inside it
    (absolute links) or is refused as a breakout ("invalid symlink"); nothing reaches the host.
    """
    host = make_host(tmp_path)
    layer = tar_bytes([entry("escape", tarfile.SYMTYPE, link=str(host / "etc")),
                       entry("escape/cron.d", data=b"* * * * * root sh /tmp/x\n")])
    err = load_refused(iso, tmp_path, host, docker_archive(tmp_path / "a.tar", [layer]),
                       "escape/cron.d")
    assert "symlink" in err
    assert not (host / "etc" / "cron.d").exists()


def test_layer_hardlink_to_host_file_then_write_through_it_is_refused(iso, tmp_path):
    """``h -> <host>/etc`` (symlink), ``passwd`` hardlinked to ``h/passwd``, then a file
    ``passwd``: before the fix the link reached the host file and the file member was written
    through it (the host passwd overwritten). Docker: hardlink targets are resolved inside the
    layer root ("invalid hardlink" when they leave it); the host file is never linked."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("h", tarfile.SYMTYPE, link=str(host / "etc")),
                       entry("passwd", tarfile.LNKTYPE, link="h/passwd"),
                       entry("passwd", data=b"root::0:0::/root:/bin/sh\n")])
    load_refused(iso, tmp_path, host, docker_archive(tmp_path / "a.tar", [layer]), "passwd")
    assert (host / "etc" / "passwd").read_bytes() == PASSWD


def test_layer_hardlink_to_absolute_host_path_is_refused(iso, tmp_path):
    """A hardlink whose target is the absolute path of a host file (``/…/host/etc/passwd``),
    then a file written over it. Docker takes the link target inside the layer root; it does
    not exist there, so the link fails: the host file is never linked. We refuse the archive."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("passwd", tarfile.LNKTYPE, link=str(host / "etc" / "passwd")),
                       entry("passwd", data=b"pwned\n")])
    load_refused(iso, tmp_path, host, docker_archive(tmp_path / "a.tar", [layer]),
                 "hardlink", "not in the archive")
    assert (host / "etc" / "passwd").read_bytes() == PASSWD


def test_layer_dotdot_names_are_refused(iso, tmp_path):
    """``../../…/host/x`` in a layer. Docker: "is outside of" (breakout), nothing written."""
    host = make_host(tmp_path)
    depth = "../" * 30
    layer = tar_bytes([entry(f"{depth}{str(host).lstrip('/')}/dotdot", data=b"x")])
    load_refused(iso, tmp_path, host, docker_archive(tmp_path / "a.tar", [layer]),
                 "escapes")
    assert not (host / "dotdot").exists()


def test_outer_archive_symlink_then_file_is_refused(iso, tmp_path):
    """The archive itself (not a layer) holds ``out -> <host>`` then ``out/planted``: before
    the fix ``load`` unpacked it with tarfile and wrote through the symlink onto the host.
    Docker unpacks a load archive chrooted into a temp dir: the write cannot reach the host."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("ok", data=b"ok")])
    outer = [entry("out", tarfile.SYMTYPE, link=str(host)),
             entry("out/planted", data=b"planted")]
    load_refused(iso, tmp_path, host,
                 docker_archive(tmp_path / "a.tar", [layer], outer=outer), "out/planted")
    assert not (host / "planted").exists()


def test_absolute_names_stay_inside(iso, tmp_path):
    """Absolute member names (``/…/host/abs``) in the archive and in a layer. Before the fix
    the archive's were written at that absolute host path. Docker (and GNU tar) take them
    relative to the target: the load works and the host is untouched."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry(str(host / "in-layer"), data=b"inside")])
    outer = [entry(str(host / "outer"), data=b"outer")]
    before = host_state(host)
    result = iso("load", "-i", docker_archive(tmp_path / "a.tar", [layer], outer=outer))
    assert result.returncode == 0, result.stderr
    assert host_state(host) == before
    diff = iso.roots.data("layers", sha(layer)[7:], "diff")
    with open(os.path.join(diff, str(host).lstrip("/"), "in-layer")) as handle:
        assert handle.read() == "inside"


def test_device_nodes_in_the_outer_archive_are_refused(iso, tmp_path):
    """A block device node (8:0, the first disk) in the archive itself: it has no business in
    a docker-save or OCI archive (before the fix it was skipped without a word). Docker
    creates nodes when it unpacks as root; we refuse the archive."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("ok", data=b"ok")])
    outer = [entry("disk", tarfile.BLKTYPE, dev=(8, 0), mode=0o666)]
    load_refused(iso, tmp_path, host,
                 docker_archive(tmp_path / "a.tar", [layer], outer=outer), "disk", "device")


def test_build_add_of_a_hostile_tar_is_refused(iso, tmp_path):
    """``ADD evil.tar /`` where evil.tar has ``escape -> <host>/etc`` then
    ``escape/planted``: before the fix the build wrote into the host directory. Docker's ADD
    unpacks into the container's root, chrooted: the file lands inside the image."""
    host = make_host(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "evil.tar").write_bytes(tar_bytes([
        entry("escape", tarfile.SYMTYPE, link=str(host / "etc")),
        entry("escape/planted", data=b"planted\n")]))
    (ctx / "Dockerfile").write_text("FROM busybox\nADD evil.tar /\n")
    before_host, before_store = host_state(host), store_state(iso)
    result = iso("build", "-t", "isoinspect-evil:add", str(ctx), timeout=120)
    assert result.returncode != 0, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("isoinspect:")]
    assert len(errors) == 1 and "escape/planted" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert host_state(host) == before_host
    assert store_state(iso) == before_store


def test_legitimate_layer_features_still_work(iso, tmp_path):
    """What real layers use keeps working: links inside the layer, a symlink replaced by a
    directory (its files land in the directory, never through the old link: before the fix
    they were written into the link's target), whiteouts, setuid modes."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("d", tarfile.DIRTYPE), entry("d/file", data=b"data", mode=0o4755),
                       entry("d/hard", tarfile.LNKTYPE, link="d/file"),
                       entry("abs", tarfile.SYMTYPE, link="/d/file"),
                       entry("x", tarfile.SYMTYPE, link=str(host / "etc")),
                       entry("x", tarfile.DIRTYPE), entry("x/y", data=b"y"),
                       entry("bin/.wh.ls")])
    before = host_state(host)
    result = iso("load", "-i", docker_archive(tmp_path / "a.tar", [layer]))
    assert result.returncode == 0, result.stderr
    assert host_state(host) == before
    diff = iso.roots.data("layers", sha(layer)[7:], "diff")
    assert os.stat(f"{diff}/d/file").st_ino == os.stat(f"{diff}/d/hard").st_ino
    assert os.stat(f"{diff}/d/file").st_mode & 0o7777 == 0o4755
    assert os.readlink(f"{diff}/abs") == "/d/file"
    assert os.path.isdir(f"{diff}/x") and not os.path.islink(f"{diff}/x")
    with open(f"{diff}/x/y") as handle:
        assert handle.read() == "y"
    whiteout = os.lstat(f"{diff}/bin/ls")
    assert whiteout.st_rdev == 0 and (whiteout.st_mode & 0o170000) == 0o020000


# -- item 2: content addresses used as paths ---------------------------------------------------

def test_forged_diff_id_path_traversal_is_refused(iso, tmp_path):
    """A config whose diff_id is ``sha256:../../…/host`` with ``host/diff`` present: before the
    fix the store took the host directory as the layer (it "existed", so no digest check) and
    a container of the image ran with the host directory as its root.
    Docker: "invalid diffID" (the config is refused before any layer path is built)."""
    host = make_host(tmp_path)
    (host / "diff").mkdir()
    (host / "diff" / "host-secret").write_text("secret")
    forged = "sha256:" + "../" * 30 + str(host).lstrip("/")
    layer = tar_bytes([entry("ok", data=b"ok")])
    load_refused(iso, tmp_path, host,
                 docker_archive(tmp_path / "a.tar", [layer], diff_ids=[forged]),
                 "invalid diffID")


def test_forged_diff_id_in_an_oci_layout_is_refused(iso, tmp_path):
    """The same forged diff_id in an OCI image layout. Docker: "invalid diffID"."""
    host = make_host(tmp_path)
    (host / "diff").mkdir()
    forged = "sha256:" + "../" * 30 + str(host).lstrip("/")
    layer = tar_bytes([entry("ok", data=b"ok")])
    load_refused(iso, tmp_path, host, oci_archive(tmp_path / "a.tar", [layer], [forged]),
                 "invalid diffID")


def test_diff_id_of_another_stored_layer_is_verified(iso, tmp_path):
    """The config names busybox's layer (already stored) but the archive's layer is different:
    before the fix the check was skipped because that layer existed, and the image was made
    of a layer the archive did not contain. Docker verifies every layer ("layer digest
    mismatch" / "invalid diffID") and loads nothing."""
    host = make_host(tmp_path)
    busybox = json.loads(iso("image", "inspect", "busybox", check=True).stdout)[0]
    stored = busybox["RootFS"]["Layers"][0]
    layer = tar_bytes([entry("evil", data=b"evil")])
    load_refused(iso, tmp_path, host,
                 docker_archive(tmp_path / "a.tar", [layer], diff_ids=[stored]),
                 "digest mismatch")


def test_bad_digests_in_an_oci_layout_are_refused(iso, tmp_path):
    """Descriptors whose digest is not ``sha256:<64 lowercase hex>`` (upper case, a path).
    Docker: "invalid checksum digest format"."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("ok", data=b"ok")])
    path = oci_archive(tmp_path / "a.tar", [layer], [sha(layer)])
    with tarfile.open(path) as archive:
        entries = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    for bad in (sha(layer).upper().replace("SHA256", "sha256"),
                "sha256:" + ("../" * 22)[:64]):
        rewritten = []
        for info, data in entries:
            if info.name == "index.json":
                index = json.loads(data)
                index["manifests"][0]["digest"] = bad
                data = json.dumps(index).encode()
                info.size = len(data)
            rewritten.append((info, data))
        evil = tmp_path / "bad.tar"
        evil.write_bytes(tar_bytes(rewritten))
        load_refused(iso, tmp_path, host, str(evil), "invalid digest")


# -- item 11: tags and malformed JSON in an archive ---------------------------------------------

def test_invalid_tag_in_an_archive_refuses_it(iso, tmp_path):
    """RepoTags ``../../evil:1``: before the fix it was dropped without a word and the image
    loaded untagged. Docker: "invalid reference format"."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("ok", data=b"ok")])
    load_refused(iso, tmp_path, host,
                 docker_archive(tmp_path / "a.tar", [layer], tags=["../../evil:1"]),
                 "invalid reference format", "../../evil:1")


def test_malformed_and_non_utf8_configs_are_one_line_errors(iso, tmp_path):
    """A config that is not JSON, one that is not UTF-8, and a diff_ids that is no list:
    before the fix "internal error". Docker: "invalid character … looking for beginning of
    value" (one line)."""
    host = make_host(tmp_path)
    layer = tar_bytes([entry("ok", data=b"ok")])
    for raw, words in ((b"{not json", "not valid JSON"),
                       (b'{"rootfs": {"diff_ids": ["\xff\xfe"]}}', "not valid JSON"),
                       (b'{"rootfs": {"diff_ids": "x"}}', "diff_ids"),
                       (b"[1, 2]", "diff_ids")):
        load_refused(iso, tmp_path, host,
                     docker_archive(tmp_path / "a.tar", [layer], config=raw), words)
    manifest_broken = tmp_path / "m.tar"
    manifest_broken.write_bytes(tar_bytes([entry("manifest.json", data=b"\xff{[")]))
    load_refused(iso, tmp_path, host, str(manifest_broken), "manifest.json")


# -- pull ----------------------------------------------------------------------------------------

def _push_raw(registry, repo: str, tag: str, layers: list[bytes], diff_ids: list[str]) -> None:
    """Put blobs and a manifest straight into the registry, as a hostile publisher could."""
    from isoinspect.runtime.image_registry import Client

    client = Client(registry["host"], (USER, PASSWORD))
    try:
        raw = config_json(diff_ids)
        for blob in [raw, *layers]:
            client.upload(repo, sha(blob), data=blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(raw), "size": len(raw)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(layer), "size": len(layer)} for layer in layers]})
        client.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest.encode(),
                       headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                       ok=(201,))
    finally:
        client.close()


def test_pull_of_hostile_images_is_refused(iso, registry, tmp_path):  # noqa: F811
    """A registry serves (1) a good layer and one with ``escape -> <host>/etc`` then
    ``escape/planted`` and (2) a config with a forged diff_id. Before the fix the first wrote into the host directory
    and the second made the host directory the image's root. Docker: the layer stays inside
    its root; "invalid diffID"."""
    host = make_host(tmp_path)
    hostile = tar_bytes([entry("escape", tarfile.SYMTYPE, link=str(host / "etc")),
                         entry("escape/planted", data=b"planted\n")])
    fresh = tar_bytes([entry("fresh", data=os.urandom(16))])  # stored, then taken back
    _push_raw(registry, "evil/layer", "1", [fresh, hostile], [sha(fresh), sha(hostile)])
    (host / "diff").mkdir()
    forged = "sha256:" + "../" * 30 + str(host).lstrip("/")
    plain = tar_bytes([entry("ok", data=b"ok")])
    _push_raw(registry, "evil/diffid", "1", [plain], [forged])
    env = dict(iso.env, ISOINSPECT_REGISTRY_USER=USER, ISOINSPECT_REGISTRY_PASSWORD=PASSWORD)
    for ref, words in ((f"{registry['host']}/evil/layer:1", "escape/planted"),
                       (f"{registry['host']}/evil/diffid:1", "invalid diffID")):
        before_host, before_store = host_state(host), store_state(iso)
        result = subprocess.run([iso.cli, "pull", ref], env=env, capture_output=True,
                                text=True, timeout=120)
        assert_refused(result, words)
        assert host_state(host) == before_host
        after = store_state(iso)
        assert after["layers"] == before_store["layers"] and after["tmp"] == []
        assert after["images"] == before_store["images"]


# -- item 10: what killed loads and pulls leave -------------------------------------------------

def test_gc_removes_what_killed_loads_left_and_keeps_live_ones(iso, tmp_path):
    """A load killed with SIGKILL leaves its scratch dir (tmp/load-<pid>-…) and a killed pull
    its staging layer dirs (made here with a dead pid); before the fix ``gc`` removed neither the scratch dir nor a staging dir younger than
    a minute. Entries of a live process are kept. Docker cleans its tmp dirs at daemon start."""
    fifo = tmp_path / "archive.fifo"
    os.mkfifo(fifo)  # the load blocks reading it: killed while its scratch dir exists
    proc = iso.popen("load", "-i", str(fifo))
    tmp = iso.roots.data("tmp")
    while proc.poll() is None and not (os.path.isdir(tmp) and os.listdir(tmp)):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = os.listdir(tmp)
    assert any(e.startswith(f"load-{proc.pid}-") for e in left), left
    layers = iso.roots.data("layers")
    dead_staging = os.path.join(layers, f".staging-{proc.pid}-deadbeef")
    os.makedirs(os.path.join(dead_staging, "diff"))
    live = subprocess.Popen(["sleep", "60"])
    try:
        live_staging = os.path.join(layers, f".staging-{live.pid}-0000aaaa")
        os.makedirs(live_staging)
        live_tmp = os.path.join(tmp, f"pull-{live.pid}-0000bbbb")
        os.makedirs(live_tmp)
        result = iso("gc", check=True)
        assert f"load-{proc.pid}-" in result.stdout + result.stderr
        assert not [e for e in os.listdir(tmp) if str(proc.pid) in e]
        assert not os.path.exists(dead_staging)
        assert os.path.isdir(live_staging) and os.path.isdir(live_tmp)
    finally:
        live.kill()
        live.wait()
    iso("gc", check=True)
    assert not os.path.exists(live_staging) and not os.path.exists(live_tmp)
