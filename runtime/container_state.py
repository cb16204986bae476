"""A container's state: its status (a closed set of values) and its typed, immutable record.

One model for every container, whichever command made it: ``isoinspect run`` keeps a
``ContainerState`` in containers/<id>/state.bin and ``isoinspect-runc`` keeps an ``OciState``
in its state.json; both use ``Status``, the OCI runtime-spec's container statuses. Records on
disk carry a schema version, so an isoinspect that meets a record of a newer schema says so
instead of misreading it, and records written before the version existed are converted.

On the start path: no ``enum`` (~3 ms to import), so ``Status`` is a ``str`` that refuses
values outside the set; records are ``Frozen`` (no ``dataclasses``).
"""

from __future__ import annotations

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.frozen import Frozen

SCHEMA = 1  # the version written into every record; bump it when a field changes meaning


class Status(str):
    """An OCI container status: creating, created, running, paused or stopped.

    A ``str`` (compares equal to its value, marshals and serialises as one once converted
    with ``str()``), but constructing one from any other value is a ValueError.
    """

    __slots__ = ()
    VALUES = ("creating", "created", "running", "paused", "stopped")
    CREATING: "Status"
    CREATED: "Status"
    RUNNING: "Status"
    PAUSED: "Status"
    STOPPED: "Status"

    def __new__(cls, value: str) -> "Status":
        if type(value) is cls:
            return value
        if value not in cls.VALUES:
            raise ValueError(f"unknown container status {value!r}: one of "
                             f"{', '.join(cls.VALUES)}")
        return str.__new__(cls, value)

    @property
    def docker(self) -> str:
        """Docker's word for it (``docker ps``/``inspect`` say "exited", OCI "stopped")."""
        return "exited" if self == "stopped" else str(self)

    def __repr__(self) -> str:
        return f"Status.{str.upper(self)}"


for _value in Status.VALUES:
    setattr(Status, _value.upper(), str.__new__(Status, _value))
del _value


class ContainerState(Frozen):
    """A container of ``isoinspect run``/``create``: what it is, and where it is in its life.

    Immutable: an update is ``state = state.replace(status=Status.STOPPED, ...)`` followed by
    ``ContainerStore.save(state)``.
    """

    id: str
    name: str
    image: str  # the reference the user gave
    image_id: str
    created: float  # time.time() of the create
    status: Status
    argv: list  # the command: entrypoint + cmd
    spec: dict  # ContainerSpec.to_dict(): the flags it was created with
    cgroup: str  # its cgroup, relative to the cgroup root
    lower: list  # image layer directories, top first
    workdir: str
    user: str
    hostname: str
    env: list  # "KEY=value" strings, image env then -e
    pid: int = 0  # host pid of its PID 1 once started
    pid_ticks: object = None  # that process's start time (clock ticks): tells pid reuse apart
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: object = None  # int once stopped
    error: str = ""  # why the start failed, or why the exit code is unknown
    log: str = ""  # output file of a detached container ("" in the foreground)
    userns: object = None  # {"uid": [...], "gid": [...]} with --userns remap
    network: object = None  # what its network hook attached (address, ports, netns)
    # Its monitor released the cgroup and undid the network after the exit: `rm` then skips
    # both (the cgroup manager alone costs ~3 ms to build); a monitor that died leaves False.
    released: bool = False


class OciState(Frozen):
    """A container of ``isoinspect-runc`` (state.json): what its later commands need.

    Its status is not stored: `state` derives it from the init process and the exec FIFO
    (``oci.container.status_of``), as runc does, a pause from the freezer; ``paused`` records
    only what the last pause/resume did.
    """

    id: str
    bundle: str
    rootfs: str
    created: str  # RFC 3339, as `state` prints it
    cgroup: str  # cgroup path, relative to the cgroup root
    annotations: dict = {}
    pid: int = 0  # host pid of init, once cloned
    pid_ticks: object = None
    cgroup_created: bool = False  # this container made its cgroup (so delete removes it)
    paused: bool = False
    freezer_file: str = ""  # what `state` reads for "paused" (CgroupManager.freezer_file)
    poststart_hooks: list = []  # config.json's hooks that run after `create` has returned
    poststop_hooks: list = []
    seccomp_path: str = ""  # the compiled filter, for `exec` ("" without seccomp)
    no_new_privileges: bool = False  # process.noNewPrivileges, the default for `exec`
    host_mounts: list = []  # no mount namespace: mount points made in the runtime's own


def encode(state: Frozen) -> dict:
    """The record as plain values with its schema version (for marshal or JSON)."""
    values = state.to_dict()
    if "status" in values:
        values["status"] = str(values["status"])
    values["schema"] = SCHEMA
    return values


def decode(cls: type, values: dict, what: str, upgrade=None) -> Frozen:
    """A record of type ``cls`` from ``encode``'s output.

    A record without a schema version predates it: ``upgrade(values)`` converts it, and keys
    ``cls`` does not know are dropped. A newer schema, or a record that does not fit ``cls``,
    is an IsoinspectError.
    """
    values = dict(values)
    schema = values.pop("schema", 0)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise IsoinspectError(f"{what} has a record of schema {schema!r}, newer than this "
                              f"isoinspect reads (schema {SCHEMA}): upgrade isoinspect")
    try:
        if schema == 0:
            if upgrade is not None:
                values = upgrade(values)
            values = {k: v for k, v in values.items() if k in cls._fields}
        if "status" in cls._fields:
            values["status"] = Status(values.get("status"))
        return cls(**values)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise IsoinspectError(f"{what} has a corrupt record ({exc})") from None


def upgrade_container(values: dict) -> dict:
    """A ContainerState written before schema 1: "exited" (Docker's word) is now "stopped"."""
    if values.get("status") == "exited":
        values["status"] = Status.STOPPED
    return values


def upgrade_oci(values: dict) -> dict:
    """An OciState written before schema 1: its hooks and exec settings were nested dicts."""
    hooks = values.pop("hooks", None) or {}
    settings = values.pop("exec", None) or {}
    values["poststart_hooks"] = list(hooks.get("poststart") or [])
    values["poststop_hooks"] = list(hooks.get("poststop") or [])
    values["seccomp_path"] = settings.get("seccomp") or ""
    values["no_new_privileges"] = bool(settings.get("no_new_privileges"))
    return values
