"""Load a bundle's config.json and validate it with a list of small named checks (runc's
validator style) before anything on the host is touched.

Each check takes the parsed config (and the bundle directory) and raises ``ConfigError`` with a
one-line message; ``validate`` runs them all in order.
"""

from __future__ import annotations

import os

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.json_lite import loads
from isoinspect.runtime.linux import namespaces

JOINABLE_NAMESPACES = ("pid", "network", "ipc", "uts", "cgroup", "mount", "user")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
ID_EXTRA_CHARACTERS = "_+-."  # besides letters and digits (runc's ^[\w+-.]+$)


INT64_MAX, UINT64_MAX, UINT32_MAX = (1 << 63) - 1, (1 << 64) - 1, (1 << 32) - 1


class ConfigError(IsoinspectError):
    """A bundle or config.json the runtime refuses (nothing has been touched yet)."""


def check_number(value: object, where: str, low: int, high: int) -> None:
    """An integer within the range of its type in the spec (JSON numbers are unbounded)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where} must be an integer in {low}..{high}, got {value!r}")


def check_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or \
            not all(ch.isalnum() or ch in ID_EXTRA_CHARACTERS for ch in container_id):
        raise ConfigError(f"invalid container id {container_id!r}: use letters, digits, "
                          "'_', '+', '-' and '.'")


def load_config(bundle: str) -> dict:
    """The parsed config.json of ``bundle``; ConfigError when missing or not JSON."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as handle:
            config = loads(handle.read())
    except FileNotFoundError:
        raise ConfigError(f"bundle {bundle}: config.json not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"bundle {bundle}: cannot read config.json: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"bundle {bundle}: config.json is not a JSON object")
    return config


# ---- checks -------------------------------------------------------------------------------------

def check_version(config: dict, bundle: str) -> None:
    version = config.get("ociVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise ConfigError(f"unsupported ociVersion {version!r} (want 1.x)")


def check_root(config: dict, bundle: str) -> None:
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise ConfigError("root.path is required")
    path = root_path(config, bundle)
    if not os.path.isdir(path):
        raise ConfigError(f"root.path {path}: no such directory")


def check_process(config: dict, bundle: str) -> None:
    process = config.get("process")
    if not isinstance(process, dict):
        raise ConfigError("process is required")
    check_process_section(process)


def check_process_section(process: dict) -> None:
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("process.args must be a non-empty list of strings")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"process.cwd must be an absolute path, got {cwd!r}")
    env = process.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise ConfigError("process.env must be a list of strings")
    user = process.get("user", {})
    if not isinstance(user, dict):
        raise ConfigError("process.user needs integer uid and gid")
    for key in ("uid", "gid"):  # uint32, and (uid_t)-1 means "no change" to the kernel
        check_number(user.get(key, 0), f"process.user.{key}", 0, UINT32_MAX - 1)
    if user.get("umask") is not None:
        check_number(user["umask"], "process.user.umask", 0, UINT32_MAX)
    gids = user.get("additionalGids") or []
    if not isinstance(gids, list):
        raise ConfigError("process.user.additionalGids must be a list of integers")
    for gid in gids:
        check_number(gid, "process.user.additionalGids[]", 0, UINT32_MAX - 1)
    caps = process.get("capabilities") or {}
    if not isinstance(caps, dict):
        raise ConfigError("process.capabilities must be an object")
    for kind, names in caps.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"process.capabilities.{kind} must be a list of names")
    # An unknown name is not an error: the spec asks for a warning, runc 1.1 logs one and
    # leaves it out (translate.unknown_capabilities, capabilities.CapSets.from_oci).
    from isoinspect.runtime.linux.rlimits import RLIMIT_NUMBERS
    for limit in process.get("rlimits") or ():
        if not isinstance(limit, dict):
            raise ConfigError("process.rlimits: each entry must be an object")
        name = str(limit.get("type", "")).lower().removeprefix("rlimit_")
        if name not in RLIMIT_NUMBERS:
            raise ConfigError(f"process.rlimits: unknown type {limit.get('type')!r}")
        for key in ("soft", "hard"):
            check_number(limit.get(key, 0), f"process.rlimits {name}.{key}", 0, UINT64_MAX)


def check_namespaces(config: dict, bundle: str) -> None:
    """A kind left out of linux.namespaces is the runtime's own (the spec); what runc refuses
    without a namespace of its own (new or joined) is refused too."""
    seen = set()
    for entry in linux(config).get("namespaces") or ():
        kind = entry.get("type")
        if kind not in namespaces.OCI_NAMES:
            raise ConfigError(f"unknown namespace type {kind!r}")
        if kind in seen:
            raise ConfigError(f"namespace {kind!r} listed twice")
        seen.add(kind)
        if kind == "time":
            raise ConfigError("time namespaces are not supported by isoinspect yet")
        path = entry.get("path")
        if path:
            if kind not in JOINABLE_NAMESPACES:
                raise ConfigError(f"joining an existing {kind} namespace is not supported")
            if not os.path.exists(path):
                raise ConfigError(f"namespace {kind} path {path}: no such file")
    own = _own_namespaces(config)
    if "mount" in seen and "mount" not in own:  # runc would pivot_root the host's tree
        raise ConfigError("linux.namespaces: the mount namespace given is the runtime's own; "
                          "leave mount out of linux.namespaces to share it")
    if config.get("hostname") and "uts" in seen and "uts" not in own:
        raise ConfigError("hostname: the uts namespace given is the runtime's own "
                          "(it would rename the host)")
    section = linux(config)
    if "mount" not in seen and (section.get("maskedPaths") or section.get("readonlyPaths")):
        raise ConfigError("unable to restrict sys entries without a private MNT namespace "
                          "(maskedPaths/readonlyPaths need a mount namespace)")
    if config.get("hostname") and "uts" not in seen:
        raise ConfigError("unable to set hostname without a private UTS namespace")
    mappings = section.get("uidMappings") or section.get("gidMappings")
    if mappings and "user" not in seen:
        raise ConfigError("user namespace mappings specified, but linux.namespaces has no user")
    if "user" in seen:
        check_id_mappings(section)


def check_id_mappings(section: dict) -> None:
    """A user namespace needs uid and gid maps that map the container's root: a new one gets
    them written; a joined one has its own, and runc 1.1.5 still wants them (its HostRootUID
    owns the device nodes), so they are required for both."""
    for key in ("uidMappings", "gidMappings"):
        entries = section.get(key)
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"linux.{key} is required with a user namespace")
        for entry in entries:
            if not isinstance(entry, dict):
                raise ConfigError(f"linux.{key}: each entry must be an object")
            for field in ("containerID", "hostID", "size"):
                check_number(entry.get(field), f"linux.{key}[].{field}", 0, UINT32_MAX)
        if not any(e["containerID"] == 0 and e["size"] > 0 for e in entries):
            raise ConfigError(f"linux.{key}: no mapping for the container's root (0)")


def check_mounts(config: dict, bundle: str) -> None:
    for mount in config.get("mounts") or ():
        dest = mount.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise ConfigError(f"mount destination must be absolute, got {dest!r}")
        if ".." in dest.split("/"):
            raise ConfigError(f"mount destination {dest!r} must not contain '..'")
        options = mount.get("options") or []
        if not isinstance(options, list):
            raise ConfigError(f"mount {dest}: options must be a list")


def check_hooks(config: dict, bundle: str) -> None:
    hooks = config.get("hooks") or {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise ConfigError(f"unknown hook kind {kind!r}")
        for hook in entries or ():
            path = hook.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"hooks.{kind}: path must be absolute, got {path!r}")


IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def check_sysctl(config: dict, bundle: str) -> None:
    """Only sysctls of a namespace the container does not share with the runtime (runc's
    rule): with a kind left out of linux.namespaces, or joined at the runtime's own, the
    write would change the host's value."""
    own = _own_namespaces(config)
    for key in linux(config).get("sysctl") or {}:
        if "/" in key or ".." in key.split("."):
            raise ConfigError(f"sysctl {key!r}: bad name")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            kind = "ipc"
        elif key.startswith("net."):
            kind = "network"
        elif key == "kernel.domainname":
            kind = "uts"
        elif key == "kernel.hostname":
            raise ConfigError(f"sysctl {key!r} is not allowed: it conflicts with 'hostname'")
        else:
            raise ConfigError(f"sysctl {key!r} is not in a separate kernel namespace")
        if kind not in own:
            raise ConfigError(f"sysctl {key!r} is not allowed in the runtime's (host's) "
                              f"{kind} namespace")


def _own_namespaces(config: dict) -> set[str]:
    """Kinds the container does not share with the runtime: new ones, and joined ones that
    are not the runtime's own (same device and inode as /proc/self/ns/<kind>)."""
    own = set()
    for entry in linux(config).get("namespaces") or ():
        kind, path = entry.get("type"), entry.get("path")
        if not path:
            own.add(kind)
            continue
        try:
            joined, mine = os.stat(path), os.stat(f"/proc/self/ns/{namespaces.PROC_BY_OCI[kind]}")
        except (OSError, KeyError):
            continue
        if (joined.st_dev, joined.st_ino) != (mine.st_dev, mine.st_ino):
            own.add(kind)
    return own


def check_paths(config: dict, bundle: str) -> None:
    for kind in ("maskedPaths", "readonlyPaths"):
        for path in linux(config).get(kind) or ():
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"linux.{kind}: path must be absolute, got {path!r}")


def check_propagation(config: dict, bundle: str) -> None:
    value = linux(config).get("rootfsPropagation", "")
    if value and value not in PROPAGATION:
        raise ConfigError(f"linux.rootfsPropagation: unknown value {value!r}")


def check_seccomp(config: dict, bundle: str) -> None:
    seccomp = linux(config).get("seccomp")
    if seccomp is None:
        return
    from isoinspect.runtime.linux import seccomp_profile
    try:
        seccomp_profile.check(seccomp)
    except seccomp_profile.SeccompError as exc:
        raise ConfigError(f"linux.seccomp: {exc}") from None


# linux.resources numbers and the ranges of their Go types in the runtime spec.
RESOURCE_NUMBERS = (("memory", "limit", -1, INT64_MAX), ("memory", "reservation", -1, INT64_MAX),
                    ("memory", "swap", -1, INT64_MAX), ("cpu", "shares", 0, UINT64_MAX),
                    ("cpu", "quota", -1, INT64_MAX), ("cpu", "period", 0, UINT64_MAX),
                    ("pids", "limit", -1, INT64_MAX))


def check_resources(config: dict, bundle: str) -> None:
    from isoinspect.runtime.oci import translate
    resources = linux(config).get("resources") or {}
    if not isinstance(resources, dict):
        raise ConfigError("linux.resources must be an object")
    for section, key, low, high in RESOURCE_NUMBERS:
        part = resources.get(section) or {}
        if not isinstance(part, dict):
            raise ConfigError(f"linux.resources.{section} must be an object")
        if part.get(key) is not None:
            check_number(part[key], f"linux.resources.{section}.{key}", low, high)
    for rule in resources.get("devices") or ():
        if not isinstance(rule, dict):
            raise ConfigError("linux.resources.devices: each rule must be an object")
        if rule.get("type") not in (None, "a", "b", "c"):  # the spec's (and runc's) types
            raise ConfigError(f"linux.resources.devices: invalid cgroup device type "
                              f"{rule.get('type')!r} (a, b or c; a FIFO node goes in "
                              "linux.devices)")
    try:
        translate.resources(config)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"linux.resources: {exc}") from None


def check_root_reachable_in_user_namespace(config: dict, bundle: str) -> None:
    """A new user namespace's root is an ordinary host uid: it must be able to search its way
    to root.path (the check of `run --userns remap`), or the set-up fails with a bare EACCES."""
    if not any(e.get("type") == "user" and not e.get("path")
               for e in linux(config).get("namespaces") or ()):
        return
    from isoinspect.runtime.userns import blocking_directory
    uid, gid = (next(e["hostID"] for e in linux(config)[key] if e["containerID"] == 0)
                for key in ("uidMappings", "gidMappings"))
    path = root_path(config, bundle)
    blocked = blocking_directory(path, uid, gid)
    if blocked:
        raise ConfigError(f"root.path {path}: {blocked} is not searchable by the container's "
                          f"root (host uid {uid}, from linux.uidMappings); make it "
                          "world-searchable (chmod o+x) or move the bundle")


CHECKS = (check_version, check_root, check_process, check_namespaces, check_mounts,
          check_hooks, check_sysctl, check_paths, check_propagation, check_seccomp,
          check_resources, check_root_reachable_in_user_namespace)

PROPAGATION = {"private": 1 << 18, "rprivate": (1 << 18) | 16384, "slave": 1 << 19,
               "rslave": (1 << 19) | 16384, "shared": 1 << 20, "rshared": (1 << 20) | 16384,
               "unbindable": 1 << 17, "runbindable": (1 << 17) | 16384}


def validate(config: dict, bundle: str) -> None:
    for check in CHECKS:
        check(config, bundle)


# ---- helpers ------------------------------------------------------------------------------------

def linux(config: dict) -> dict:
    return config.get("linux") or {}


def root_path(config: dict, bundle: str) -> str:
    path = config["root"]["path"]
    return os.path.normpath(path if path.startswith("/") else os.path.join(bundle, path))
