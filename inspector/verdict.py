"""The isolation verdict of one unit: what its workload can reach, named against Docker's
default container (the reference every peer is configured like), not a count.

Docker's default: own ipc, mnt, net, pid and uts namespaces (cgroup too on a pure cgroup v2
host; user and time shared is its normal behaviour), the 14 default capabilities, its seccomp
filter, no no_new_privs, the masked and read-only /proc and /sys paths. A unit is judged by
what its workload reaches: a container's processes reach the host kernel; a gVisor workload
reaches the Sentry (gVisor's kernel), which alone reaches the host; a VM's reaches the guest's
kernel. The host-side privileges of the Sentry or QEMU are named apart (``sandbox_privileges``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from isoinspect.runtime.linux.capabilities import DEFAULT_CAPABILITIES

#: capabilities that reach past the container (the scorecard lists them as dangerous)
DANGEROUS = ("SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "NET_ADMIN", "BPF",
             "PERFMON", "SYS_BOOT", "MAC_ADMIN", "DAC_READ_SEARCH")
#: more capabilities beyond the default than this are counted, the dangerous ones named
LISTED_AT_MOST = 6
#: namespaces Docker's default container always has of its own
REFERENCE_NAMESPACES = ("ipc", "mnt", "net", "pid", "uts")
#: how the workload reaches the host kernel: directly, through gVisor's Sentry, not at all
KERNEL_SHARED = {"host": "yes", "sentry": "via the Sentry", "guest": "no"}


@dataclass
class Facts:
    """What the workload can reach, as the verdict needs it."""

    namespaces: dict[str, str]             # name -> own | shared
    capabilities: list[str]                # effective, no CAP_ prefix
    seccomp: str                           # filter | strict | disabled
    no_new_privs: bool
    visible_masked: list[str]              # Docker-masked paths the workload can open
    writable_readonly: list[str]           # Docker read-only paths it can write
    runs_as_root: bool
    user_namespace: bool
    kernel: str = "host"                   # host | sentry | guest
    cgroup_v2_only: bool = False           # Docker would give it a cgroup namespace


@dataclass
class Verdict:
    level: str                             # separate kernel | sandboxed | confined |
    #                                        weaker than Docker's default | not confined
    text: str
    missing: list[str] = field(default_factory=list)   # vs Docker's default
    extra: list[str] = field(default_factory=list)     # beyond Docker's default
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _compare(facts: Facts) -> tuple[list[str], list[str]]:
    """What the unit lacks and adds relative to Docker's default."""
    reference = set(REFERENCE_NAMESPACES) | ({"cgroup"} if facts.cgroup_v2_only else set())
    shared = sorted(n for n in reference if facts.namespaces.get(n) != "own")
    missing, extra = [], []
    if shared:
        missing.append(f"shares the host's {', '.join(shared)} namespace"
                       + ("s" if len(shared) > 1 else ""))
    beyond = [c for c in facts.capabilities if c not in DEFAULT_CAPABILITIES]
    if len(beyond) > LISTED_AT_MOST:
        named = [c for c in beyond if c in DANGEROUS]
        missing.append(f"{len(beyond)} capabilities beyond Docker's default (among them "
                       f"{', '.join(named)})" if named else
                       f"{len(beyond)} capabilities beyond Docker's default")
    elif beyond:
        missing.append(f"capabilities beyond Docker's default: {', '.join(beyond)}")
    if facts.seccomp != "filter" and facts.seccomp != "strict":
        missing.append("no seccomp filter")
    if facts.kernel == "host":           # /proc and /sys of a guest kernel are not the host's
        if facts.visible_masked:
            missing.append(f"unmasked: {', '.join(facts.visible_masked)}")
        if facts.writable_readonly:
            missing.append(f"writable: {', '.join(facts.writable_readonly)}")
    if facts.no_new_privs:
        extra.append("no_new_privs")
    if facts.kernel == "host":     # a separate kernel's namespaces are all its own anyway
        if facts.user_namespace:
            extra.append("a user namespace")
        if "cgroup" not in reference and facts.namespaces.get("cgroup") == "own":
            extra.append("a cgroup namespace")
        if facts.namespaces.get("time") == "own":
            extra.append("a time namespace")
    dropped = [c for c in DEFAULT_CAPABILITIES if c not in facts.capabilities]
    if dropped and len(dropped) < len(DEFAULT_CAPABILITIES):
        extra.append(f"fewer capabilities (no {', '.join(dropped)})")
    elif dropped:
        extra.append("no capabilities")
    return missing, extra


def _root_note(facts: Facts) -> str:
    if not facts.runs_as_root:
        return ""
    if facts.kernel == "guest":
        return "runs as root in the guest"
    if facts.kernel == "sentry":
        return "runs as root in the sandbox (root of the Sentry's kernel, not the host's)"
    if facts.user_namespace:
        return "runs as root inside its user namespace (not root on the host)"
    return "runs as root without a user namespace (uid 0 is the host's root)"


def judge(facts: Facts) -> Verdict:
    """The verdict: what is missing (or added) relative to Docker's default, in words."""
    missing, extra = _compare(facts)
    notes = [n for n in (_root_note(facts),) if n]
    against = ("confined like Docker's default" if not missing
               else f"weaker than Docker's default: {'; '.join(missing)}")
    if extra:
        against += f"{'; plus ' if missing else ', plus '}{', '.join(extra)}"
    if facts.kernel == "guest":
        level = "separate kernel"
        text = ("separate kernel: the workload reaches only the guest's kernel, the host "
                "kernel only through QEMU")
    elif facts.kernel == "sentry":
        level = "sandboxed"
        text = ("sandboxed: the workload's system calls go to the Sentry (gVisor's kernel), "
                f"which alone reaches the host; inside the sandbox, {against}")
    else:
        reference = set(REFERENCE_NAMESPACES)
        own = [n for n in reference if facts.namespaces.get(n) == "own"]
        if not own and (facts.seccomp == "disabled"
                        or any(c not in DEFAULT_CAPABILITIES for c in facts.capabilities)):
            level = "not confined"
            text = "not confined: " + "; ".join(missing)
        else:
            level = "confined" if not missing else "weaker than Docker's default"
            text = against
    if notes:
        text += f"; {'; '.join(notes)}"
    return Verdict(level, text, missing, extra, notes)


def shares_host_kernel(kernel: str) -> str:
    return KERNEL_SHARED[kernel]
