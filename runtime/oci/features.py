"""`isoinspect-runc features` (runtime-spec features.md): what this runtime really supports, each
list taken from the table or the validator the code itself uses, so it cannot promise more than
`create` accepts. Namespace types and seccomp actions are probed through the config validators
(a type or action they refuse is not listed); capabilities stop at the running kernel's last one;
seccomp architectures are the ones the installed libseccomp knows.
"""

from __future__ import annotations

from isoinspect.runtime.linux import capabilities, namespaces, seccomp_profile
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci.setup import FLAG_OPTIONS, PROPAGATION_OPTIONS

OCI_VERSION_MIN = "1.0.0"
# A user namespace probe carries mappings, in case the validator requires them.
_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def supported_namespaces() -> list[str]:
    """The namespace types a bundle may ask to create (check_namespaces accepts them)."""
    found = []
    for kind in sorted(namespaces.OCI_NAMES):
        entries = [{"type": kind}] + ([{"type": "mount"}] if kind != "mount" else [])
        linux = {"namespaces": entries}
        if kind == "user":
            linux.update(uidMappings=_MAPPING, gidMappings=_MAPPING)
        try:
            cfg.check_namespaces({"linux": linux}, "/")
        except cfg.ConfigError:
            continue
        found.append(kind)
    return found


def supported_capabilities() -> list[str]:
    last = capabilities.last_cap()
    return ["CAP_" + name for name in capabilities.CAPABILITY_NAMES
            if capabilities.cap_number(name) <= last]


def seccomp_features() -> dict:
    actions = []
    for action in seccomp_profile.ACTIONS:
        try:
            seccomp_profile.check({"defaultAction": action,
                                   "syscalls": [{"names": ["getpid"], "action": action}]})
        except seccomp_profile.SeccompError:
            continue
        actions.append(action)
    try:
        arch = seccomp_profile._import_seccomp().Arch
    except ImportError:
        return {"enabled": False}
    return {"enabled": True, "actions": sorted(actions),
            "operators": sorted(seccomp_profile.OPERATORS),
            "archs": sorted(name for name, attr in seccomp_profile.ARCHES.items()
                            if hasattr(arch, attr))}


def features(oci_version_max: str, version: str) -> dict:
    return {
        "ociVersionMin": OCI_VERSION_MIN, "ociVersionMax": oci_version_max,
        "hooks": list(cfg.HOOK_KINDS),
        "mountOptions": sorted(set(FLAG_OPTIONS) | set(PROPAGATION_OPTIONS)),
        "linux": {
            "namespaces": supported_namespaces(),
            "capabilities": supported_capabilities(),
            # Both drivers (cgroups/v1, cgroups/v2); systemd cgroup paths are only translated.
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.isoinspect.runtime.version": version},
    }
