"""The container state model: a closed set of statuses, immutable records, schema versions."""

from __future__ import annotations

import json
import marshal
import os

import pytest
from click.testing import CliRunner

from isoinspect.cli.main import cli
from isoinspect.runtime import rewritable
from isoinspect.runtime.container_state import (SCHEMA, ContainerState, Status, decode,
                                                encode)
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.records import ContainerStore
from isoinspect.runtime.roots import Roots


def created(cid: str = "c" * 64, **changes) -> ContainerState:
    return ContainerState(id=cid, name="web", image="busybox", image_id="sha256:ab",
                          created=1.0, status=Status.CREATED, argv=["true"],
                          spec={"network": "none"}, cgroup=f"isoinspect/{cid}",
                          lower=["/l"], workdir="/", user="", hostname=cid[:12],
                          env=["PATH=/bin"]).replace(**changes)


def test_status_is_a_closed_set_of_oci_values():
    assert [Status(v) for v in Status.VALUES] == [Status.CREATING, Status.CREATED,
                                                  Status.RUNNING, Status.PAUSED, Status.STOPPED]
    assert Status.RUNNING == "running" and isinstance(Status.RUNNING, str)
    assert Status("stopped") is not None and Status(Status.STOPPED) is Status.STOPPED
    for bad in ("exited", "Running", "", None):
        with pytest.raises(ValueError):
            Status(bad)


def test_docker_words_differ_only_for_stopped():
    assert Status.STOPPED.docker == "exited"
    assert [Status(v).docker for v in Status.VALUES[:4]] == list(Status.VALUES[:4])


def test_state_is_immutable_and_replace_makes_a_copy():
    state = created()
    with pytest.raises(AttributeError):
        state.status = Status.RUNNING
    running = state.replace(status=Status.RUNNING, pid=42)
    assert (state.status, state.pid) == (Status.CREATED, 0)
    assert (running.status, running.pid) == (Status.RUNNING, 42)
    with pytest.raises(TypeError):
        state.replace(stauts=Status.RUNNING)  # a typo is an error, not a new key


def test_encode_is_plain_values_with_the_schema_and_decodes_back():
    state = created(status=Status.STOPPED, exit_code=3, network={"ip": "10.0.0.2"})
    values = encode(state)
    assert values["schema"] == SCHEMA and type(values["status"]) is str
    assert decode(ContainerState, marshal.loads(marshal.dumps(values)), "c") == state


def test_a_newer_schema_is_refused_with_one_clear_line():
    values = encode(created())
    values["schema"] = SCHEMA + 1
    with pytest.raises(IsoinspectError) as info:
        decode(ContainerState, values, "container cccccccccccc")
    message = str(info.value)
    assert "\n" not in message and f"schema {SCHEMA + 1}" in message and "upgrade" in message


def test_a_current_record_with_a_bad_status_or_field_is_corrupt():
    for change in ({"status": "exited"}, {"colour": "blue"}):
        values = {**encode(created()), **change}
        with pytest.raises(IsoinspectError, match="corrupt"):
            decode(ContainerState, values, "container c")


def _legacy_record(cid: str) -> dict:
    """A record as isoinspect wrote it before schema 1: a plain dict, Docker's "exited"."""
    return {"id": cid, "name": "old", "image": "busybox", "image_id": "sha256:ab",
            "created": 1.0, "status": "exited", "pid": 7, "pid_ticks": 9,
            "started_at": 2.0, "finished_at": 3.0, "exit_code": 0, "error": "",
            "argv": ["true"], "spec": {"network": "none"}, "cgroup": f"isoinspect/{cid}",
            "lower": ["/l"], "workdir": "/", "user": "", "hostname": cid[:12], "log": "",
            "env": ["PATH=/bin"]}


def test_a_record_written_before_schema_1_is_converted(tmp_path):
    store = ContainerStore(Roots(str(tmp_path)))
    cid, _ = store.allocate("old")
    os.makedirs(store.dir(cid))
    rewritable.write(store.dir(cid), "state.bin", marshal.dumps(_legacy_record(cid)))
    state = store.load(cid)
    assert state.status is Status.STOPPED and state.status.docker == "exited"
    assert (state.exit_code, state.userns, state.network) == (0, None, None)
    store.save(state)  # rewritten with the schema version
    raw = marshal.loads(rewritable.read(store.dir(cid), "state.bin"))
    assert raw["schema"] == SCHEMA and raw["status"] == "stopped"


def test_the_cli_shows_an_old_record_with_dockers_words(tmp_path):
    store = ContainerStore(Roots(str(tmp_path)))
    cid, _ = store.allocate("old")
    os.makedirs(store.dir(cid))
    rewritable.write(store.dir(cid), "state.bin", marshal.dumps(_legacy_record(cid)))
    ps = CliRunner().invoke(cli, ["--root", str(tmp_path), "ps", "-a"])
    assert ps.exit_code == 0, ps.output
    assert "Exited (0)" in ps.output and "old" in ps.output


def _oci_store(tmp_path):
    from isoinspect.runtime.oci.container import Store

    store = Store(str(tmp_path / "oci"))
    os.makedirs(os.path.join(store.root, "box"))
    return store


def test_oci_state_json_carries_the_schema_and_round_trips(tmp_path):
    from isoinspect.runtime.container_state import OciState

    store = _oci_store(tmp_path)
    state = OciState(id="box", bundle="/b", rootfs="/b/rootfs", created="2026-01-01T00:00:00Z",
                     cgroup="isoinspect-oci/box", poststop_hooks=[{"path": "/bin/true"}])
    store.save(state)
    with open(os.path.join(store.dir("box"), "state.json")) as handle:
        raw = json.load(handle)
    assert raw["schema"] == SCHEMA and "status" not in raw  # derived, never stored
    assert store.load("box") == state
    with pytest.raises(AttributeError):
        state.paused = True


def test_oci_state_json_of_an_older_runtime_is_converted(tmp_path):
    store = _oci_store(tmp_path)
    old = {"id": "box", "bundle": "/b", "rootfs": "/b/rootfs", "created": "x", "pid": 0,
           "pid_ticks": None, "annotations": {}, "cgroup": "c", "cgroup_created": True,
           "hooks": {"poststart": [{"path": "/p"}], "poststop": []},
           "exec": {"no_new_privileges": True, "seccomp": "/s.bpf"}, "paused": False}
    with open(os.path.join(store.dir("box"), "state.json"), "w") as handle:
        json.dump(old, handle)
    state = store.load("box")
    assert (state.poststart_hooks, state.seccomp_path, state.no_new_privileges,
            state.cgroup_created) == ([{"path": "/p"}], "/s.bpf", True, True)


def test_oci_state_json_of_a_newer_schema_is_one_clear_error(tmp_path):
    from isoinspect.runtime.oci.container import OciError

    store = _oci_store(tmp_path)
    with open(os.path.join(store.dir("box"), "state.json"), "w") as handle:
        json.dump({"schema": SCHEMA + 1, "id": "box"}, handle)
    with pytest.raises(OciError, match="newer") as info:
        store.load("box")
    assert "\n" not in str(info.value)


def test_oci_status_is_a_status_value(tmp_path):
    from isoinspect.runtime.container_state import OciState
    from isoinspect.runtime.oci.container import public_state, status_of

    store = _oci_store(tmp_path)
    state = OciState(id="box", bundle="/b", rootfs="/r", created="t", cgroup="c")
    assert status_of(store, state) is Status.STOPPED  # no init: stopped
    assert public_state(store, state)["status"] == "stopped"
    assert type(public_state(store, state)["status"]) is str
