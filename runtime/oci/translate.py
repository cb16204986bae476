"""OCI config -> the pieces of the child's ``plan`` and the cgroup ``Resources``.

Pure functions of the config (no host access), so they are unit-tested without root.
"""

from __future__ import annotations

from isoinspect.runtime.cgroups.resources import DEFAULT_DEVICE_RULES, Resources
from isoinspect.runtime.linux import capabilities
from isoinspect.runtime.linux.namespaces import FLAG_BY_OCI
from isoinspect.runtime.linux.rlimits import RLIMIT_NUMBERS

DEFAULT_CGROUP_PARENT = "isoinspect-oci"


def linux(config: dict) -> dict:
    return config.get("linux") or {}


def namespaces(config: dict) -> tuple[int, list[tuple[str, str]], set[str]]:
    """(clone flags for new namespaces except cgroup, [(kind, path) the runtime joins before
    the clone], new kinds). A mount namespace given by path is joined by the init itself
    (``mount_namespace_path``): the runtime must keep its own file system view; a user
    namespace by a helper that clones the init (``user_namespace_path``): joining one cannot
    be undone."""
    flags, joins, new = 0, [], set()
    for entry in linux(config).get("namespaces") or ():
        kind, path = entry["type"], entry.get("path")
        if path:
            if kind not in ("mount", "user"):
                joins.append((kind, path))
        else:
            new.add(kind)
            if kind != "cgroup":  # the child unshares it after joining its cgroup
                flags |= FLAG_BY_OCI[kind]
    return flags, joins, new


def joined_path(config: dict, kind: str) -> str | None:
    """The path of the ``kind`` namespace the bundle joins, or None (new or the runtime's)."""
    for entry in linux(config).get("namespaces") or ():
        if entry["type"] == kind and entry.get("path"):
            return entry["path"]
    return None


def mount_namespace_path(config: dict) -> str | None:
    return joined_path(config, "mount")


def user_namespace_path(config: dict) -> str | None:
    return joined_path(config, "user")


def namespace_kinds(config: dict) -> set[str]:
    """Every kind listed, new or joined: what runc's ``Namespaces.Contains`` answers."""
    return {entry["type"] for entry in linux(config).get("namespaces") or ()}


def id_mappings(config: dict) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """linux.uidMappings/gidMappings as (container id, host id, size) lines."""
    def lines(key: str) -> list[tuple[int, int, int]]:
        return [(int(m["containerID"]), int(m["hostID"]), int(m["size"]))
                for m in linux(config).get(key) or ()]
    return lines("uidMappings"), lines("gidMappings")


def capability_sets(process: dict) -> capabilities.CapSets:
    """process.capabilities -> the five sets, each as given (a set left out is empty)."""
    return capabilities.CapSets.from_oci(process.get("capabilities"))


def umask(process: dict) -> int:
    """process.user.umask (uint32; the kernel keeps its low 9 bits), runc's 022 if absent."""
    value = (process.get("user") or {}).get("umask")
    return 0o022 if value is None else int(value) & 0o777


def unknown_capabilities(process: dict) -> list[str]:
    """Names in process.capabilities this runtime cannot grant (warned about, left out)."""
    names = {name for names in (process.get("capabilities") or {}).values()
             for name in names or ()}
    return sorted(names - set(capabilities.known_names(names)))


def ignored_labels(process: dict) -> list[str]:
    """process.apparmorProfile/selinuxLabel: isoinspect applies neither (its `features` says
    so), so each given is a warning. runc refuses them where the host lacks the LSM."""
    return [f"process.{key} {process[key]!r} is ignored: isoinspect-runc applies no "
            f"{lsm} labels" for key, lsm in (("apparmorProfile", "AppArmor"),
                                                ("selinuxLabel", "SELinux"))
            if process.get(key)]


def additional_gids(process: dict) -> list[int]:
    return [int(gid) for gid in (process.get("user") or {}).get("additionalGids") or ()]


def rlimits(process: dict) -> list[tuple[str, int, int]]:
    out = []
    for limit in process.get("rlimits") or ():
        name = str(limit["type"]).lower().removeprefix("rlimit_")
        if name in RLIMIT_NUMBERS:
            out.append((name, _rlim(limit.get("soft", 0)), _rlim(limit.get("hard", 0))))
    return out


def _rlim(value: int) -> int:
    import resource
    # rlim_t is unsigned, Python passes it as a signed 64-bit number: from 2**63 up it is
    # as good as unlimited (and cannot be passed otherwise)
    return resource.RLIM_INFINITY if value < 0 or value >= (1 << 63) else value


def process_plan(process: dict, seccomp: bytes | None, container_nnp: bool = False):
    """An OCI ``process`` section -> the ProcessPlan the init or an exec'd process follows
    (one builder for both, as in runc). ``container_nnp``: an exec'd process without its own
    noNewPrivileges gets the container's (runc does the same)."""
    from isoinspect.runtime.init_plan import ProcessPlan
    return ProcessPlan(argv=list(process["args"]), env=environment(process),
                       workdir=process.get("cwd") or "/", user=user_spec(process),
                       additional_gids=additional_gids(process),
                       caps=capability_sets(process), rlimits=rlimits(process),
                       seccomp=seccomp,
                       no_new_privileges=bool(process.get("noNewPrivileges", container_nnp)))


def user_spec(process: dict) -> str:
    user = process.get("user") or {}
    return f"{int(user.get('uid', 0))}:{int(user.get('gid', 0))}"


def environment(process: dict) -> list[str]:
    return list(process.get("env") or [])


def cgroup_path(config: dict, container_id: str) -> str:
    """cgroupsPath -> a path relative to each hierarchy root ("/docker/x" -> "docker/x";
    systemd's "slice:prefix:name" -> "slice/prefix-name"); default isoinspect-oci/<id>."""
    path = linux(config).get("cgroupsPath") or ""
    if ":" in path and not path.startswith("/"):
        parts = path.split(":")
        if len(parts) == 3:
            slice_, prefix, name = parts
            path = f"{slice_ or 'system.slice'}/{prefix}-{name}.scope" if prefix else \
                f"{slice_ or 'system.slice'}/{name}"
    path = path.strip("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return f"{DEFAULT_CGROUP_PARENT}/{container_id}"
    return "/".join(parts)


def _device_rule(rule: dict) -> tuple:
    kind = rule.get("type") or "a"
    major, minor = rule.get("major"), rule.get("minor")
    if major is not None and major < 0:
        major = None
    if minor is not None and minor < 0:
        minor = None
    return (kind, major, minor, rule.get("access") or "rwm", bool(rule.get("allow")))


def resources(config: dict) -> Resources:
    """linux.resources -> Resources (raises ValueError on bad values)."""
    res = linux(config).get("resources") or {}
    memory = res.get("memory") or {}
    cpu = res.get("cpu") or {}
    pids = res.get("pids") or {}
    limit = memory.get("limit")
    swap = memory.get("swap") if limit is not None else None
    if limit is not None and limit <= 0:
        limit, swap = (-1 if limit == -1 else None), None
    if swap is not None and swap == 0:
        swap = None
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota is not None and quota <= 0:
        quota = -1 if quota == -1 else None
    shares = cpu.get("shares") or None
    if shares is not None:
        shares = max(2, min(262144, shares))
    device_rules = None
    if res.get("devices") is not None or linux(config).get("devices") is not None:
        device_rules = [_device_rule(rule) for rule in res.get("devices") or ()]
        if not device_rules:
            device_rules = [DEFAULT_DEVICE_RULES[0]]
        # runc always allows its default devices (and the spec's device nodes) after the list.
        device_rules += list(DEFAULT_DEVICE_RULES[1:])
        for dev in linux(config).get("devices") or ():
            kind = {"u": "c"}.get(dev.get("type", "c"), dev.get("type", "c"))
            if kind == "p":  # a FIFO node: no device, nothing for the devices cgroup to allow
                continue
            device_rules.append((kind, dev.get("major"), dev.get("minor"), "rwm", True))
    kwargs = {"memory": limit, "memory_swap": swap,
              "memory_reservation": memory.get("reservation") or None,
              "cpu_quota_us": quota, "cpu_shares": shares,
              "cpuset_cpus": cpu.get("cpus") or None, "cpuset_mems": cpu.get("mems") or None,
              "pids_limit": pids.get("limit") or None, "device_rules": device_rules}
    if period:
        kwargs["cpu_period_us"] = period
    return Resources(**kwargs)


def hooks(config: dict, kind: str) -> list[dict]:
    return list((config.get("hooks") or {}).get(kind) or ())
