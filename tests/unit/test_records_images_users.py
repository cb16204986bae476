"""State on disk: names taken once, lookups, atomic records, image tags, user resolution."""

from __future__ import annotations

import os

import pytest

from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.errors import Conflict, IsoinspectError, NotFound
from isoinspect.runtime.images import ImageStore, normalize_ref
from isoinspect.runtime.records import ContainerStore
from isoinspect.runtime.roots import Roots
from isoinspect.runtime.users import resolve_user


@pytest.fixture
def store(tmp_path):
    return ContainerStore(Roots(str(tmp_path)))


def state(cid: str, name: str, **changes) -> ContainerState:
    """A created container's record, with ``changes``."""
    return ContainerState(id=cid, name=name, image="busybox", image_id="sha256:ab",
                          created=1.0, status=Status.CREATED, argv=["true"], spec={},
                          cgroup=f"isoinspect/{cid}", lower=[], workdir="/", user="",
                          hostname=cid[:12], env=[]).replace(**changes)


def test_names_are_reserved_once(store):
    cid, name = store.allocate("web")
    with pytest.raises(Conflict) as info:
        store.allocate("web")
    assert cid[:12] in str(info.value)
    store.release_name("web", "0" * 64)  # someone else's release does nothing
    with pytest.raises(Conflict):
        store.allocate("web")
    store.release_name("web", cid)
    assert store.allocate("web")[1] == "web"


def test_generated_names_are_unique(store):
    names = {store.allocate(None)[1] for _ in range(60)}
    assert len(names) == 60


@pytest.mark.parametrize("bad", ["-x", "a", "a b", "a/b", "", "a" * 256])
def test_invalid_names(store, bad):
    with pytest.raises(IsoinspectError):
        store.allocate(bad)


def test_save_load_lookup_delete(store):
    cid, name = store.allocate("db")
    os.makedirs(store.dir(cid))
    store.save(state(cid, name))
    assert store.load(cid).status == Status.CREATED
    assert store.lookup("db") == cid == store.lookup(cid[:6]) == store.lookup(cid)
    with pytest.raises(NotFound):
        store.lookup("nope")
    store.delete(store.load(cid))
    with pytest.raises(NotFound):
        store.lookup("db")


def test_record_updates_swap_a_preallocated_spare_in_place(store):
    """Once a record exists, updating it makes no new file and needs no new blocks: the spare
    (as big as the record file, zero-padded) is filled and swapped in by RENAME_EXCHANGE."""
    cid, name = store.allocate("rec")
    os.makedirs(store.dir(cid))
    store.save(state(cid, name))
    record_path, spare_path = store.dir(cid, "state.bin"), store.dir(cid, "state.bin.spare")
    first, spare = os.stat(record_path), os.stat(spare_path)
    assert first.st_size == spare.st_size >= 8192 and first.st_blocks * 512 >= first.st_size
    store.save(state(cid, name, status=Status.STOPPED, exit_code=0))
    assert os.stat(record_path).st_ino == spare.st_ino  # swapped, not rewritten
    assert os.stat(spare_path).st_ino == first.st_ino
    assert sorted(os.listdir(store.dir(cid))) == ["state.bin", "state.bin.spare"]
    assert store.load(cid) == state(cid, name, status=Status.STOPPED, exit_code=0)
    big = state(cid, name, status=Status.STOPPED, error="x" * 20000)
    store.save(big)  # outgrows the pair: a fresh, bigger pair
    assert store.load(cid) == big
    assert os.stat(spare_path).st_size == os.stat(record_path).st_size > 20000
    assert sorted(os.listdir(store.dir(cid))) == ["state.bin", "state.bin.spare"]


def test_a_name_file_is_not_left_empty_when_its_write_fails(store, monkeypatch):
    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        store.allocate("full")
    monkeypatch.undo()
    assert store.allocate("full")[1] == "full"


def test_roots_give_test_roots_their_own_cgroup_parent(tmp_path, monkeypatch):
    monkeypatch.delenv("ISOINSPECT_ROOT", raising=False)
    monkeypatch.delenv("ISOINSPECT_CGROUP_PARENT", raising=False)
    assert Roots().cgroup_parent == "isoinspect"
    custom = Roots(str(tmp_path)).cgroup_parent
    assert custom.startswith("isoinspect-") and custom != Roots(str(tmp_path / "x")).cgroup_parent


@pytest.mark.parametrize("ref, expected", [("busybox", "busybox:latest"),
                                           ("reg:5000/a/b", "reg:5000/a/b:latest"),
                                           ("a:1.0", "a:1.0")])
def test_normalize_ref(ref, expected):
    assert normalize_ref(ref) == expected


@pytest.mark.parametrize("ref", ["Busybox", "a b", ""])
def test_normalize_ref_rejects(ref):
    with pytest.raises(IsoinspectError):
        normalize_ref(ref)


def test_missing_image_is_not_found(tmp_path):
    with pytest.raises(NotFound) as info:
        ImageStore(Roots(str(tmp_path))).resolve("busybox")
    assert "unable to find image 'busybox'" in str(info.value)


def test_resolve_user(tmp_path):
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "app:x:1000:1001:app:/home/app:/bin/sh\n")
    (tmp_path / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n")
    etc = str(tmp_path)
    assert resolve_user("", etc) == (0, 0, [], "/root")
    assert resolve_user("app", etc) == (1000, 1001, [2000], "/home/app")
    # a named group: no memberships from /etc/group (libcontainer's rule, Docker's and runc's)
    assert resolve_user("1000:extra", etc) == (1000, 2000, [], "/home/app")
    assert resolve_user("4242", etc) == (4242, 0, [], "/")
    with pytest.raises(IsoinspectError):
        resolve_user("ghost", etc)
    with pytest.raises(IsoinspectError):
        resolve_user("app:ghosts", etc)
