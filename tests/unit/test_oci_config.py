"""OCI config checks, spec -> plan translation, mount options, seccomp compilation, CLI bits."""

from __future__ import annotations

import json
import os

import pytest

from isoinspect.cli import oci_main
from isoinspect.runtime.cgroups.resources import DEFAULT_DEVICE_RULES
from isoinspect.runtime.linux import capabilities, seccomp_profile
from isoinspect.runtime.linux import syscalls as sc
from isoinspect.runtime.oci import config as cfg
from isoinspect.runtime.oci import setup, translate


def base_config(root: str = "rootfs") -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"],
                    "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"],
                                     "permitted": ["CAP_CHOWN", "CAP_KILL"]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]},
        "root": {"path": root, "readonly": True},
        "hostname": "box",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"},
                                 {"type": "uts"}, {"type": "ipc"}]},
    }


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def test_valid_config_passes(bundle):
    cfg.validate(base_config(), bundle)


def test_namespaces_left_out_are_the_runtimes_own(bundle):
    """The spec: a kind not listed is shared with the runtime; even none at all is valid."""
    config = base_config()
    config.pop("hostname")
    config["linux"]["namespaces"] = []
    cfg.validate(config, bundle)
    assert translate.namespaces(config) == (0, [], set())


def test_a_mount_namespace_path_is_left_to_the_init(bundle):
    config = base_config()
    config["linux"]["namespaces"][1] = {"type": "mount", "path": "/proc/self/ns/mnt"}
    flags, joins, new = translate.namespaces(config)
    assert joins == [] and "mount" not in new and not flags & sc.CLONE_NEWNS
    assert translate.mount_namespace_path(config) == "/proc/self/ns/mnt"
    assert "mount" in translate.namespace_kinds(config)


def test_five_capability_sets_and_additional_gids():
    process = {"capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"],
                                "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_KILL"]},
               "user": {"uid": 1, "gid": 2, "additionalGids": [7, 3]}}
    sets = translate.capability_sets(process)
    kill, chown = 1 << 5, 1 << 0
    assert (sets.bounding, sets.effective, sets.permitted, sets.inheritable, sets.ambient) == \
        (kill | chown, kill, kill, chown, kill)
    assert sets.for_user(1) is sets  # a bundle's sets hold for any user
    assert translate.additional_gids(process) == [7, 3]
    docker = capabilities.CapSets.docker(kill)
    assert docker.for_user(0) is docker and docker.for_user(1).effective == 0


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(ociVersion="2.0"), "ociVersion"),
    (lambda c: c["root"].update(path="nope"), "no such directory"),
    (lambda c: c.pop("process"), "process is required"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "listed twice"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time"}), "not supported"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "uidMappings is required"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "user"}),
                c["linux"].update(uidMappings=[{"containerID": 1, "hostID": 5, "size": 1}],
                                  gidMappings=[{"containerID": 0, "hostID": 5, "size": 1}])),
     "no mapping for the container's root"),
    (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 5, "size": 1}]),
     "no user"),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "uts"}],
                                 maskedPaths=["/proc/kcore"]), "private MNT namespace"),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "mount"}]),
     "private UTS namespace"),
    (lambda c: c["process"]["user"].update(additionalGids=[1, -2]), "additionalGids"),
    (lambda c: c["linux"]["namespaces"].__setitem__(
        1, {"type": "mount", "path": "/proc/self/ns/mnt"}), "mount namespace given is the run"),
    (lambda c: c["linux"]["namespaces"].__setitem__(
        3, {"type": "uts", "path": "/proc/self/ns/uts"}), "it would rename the host"),
    (lambda c: c["linux"]["namespaces"].__setitem__(
        0, {"type": "pid", "path": "/nonexistent/ns"}), "no such file"),
    (lambda c: c["mounts"].append({"destination": "rel"}), "absolute"),
    (lambda c: c["mounts"].append({"destination": "/a/../b"}), ".."),
    (lambda c: c.update(hooks={"prestartt": []}), "unknown hook kind"),
    (lambda c: c.update(hooks={"prestart": [{"path": "rel"}]}), "must be absolute"),
    (lambda c: c["process"]["capabilities"].update(bounding="CAP_KILL"), "list of names"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS"}]), "unknown type"),
    (lambda c: c["linux"].update(rootfsPropagation="weird"), "rootfsPropagation"),
    (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOPE"}), "seccomp"),
    (lambda c: c["linux"].update(resources={"cpu": {"cpus": "x-y"}}), "resources"),
    # numbers beyond their Go types (JSON has no bound), or of the wrong type
    (lambda c: c["linux"].update(resources={"memory": {"limit": 10 ** 30}}), "memory.limit"),
    (lambda c: c["linux"].update(resources={"memory": {"limit": "64m"}}), "memory.limit"),
    (lambda c: c["linux"].update(resources={"memory": 5}), "must be an object"),
    (lambda c: c["linux"].update(resources={"pids": {"limit": 10 ** 20}}), "pids.limit"),
    (lambda c: c["linux"].update(resources={"pids": {"limit": 5000000}}), "pids_limit"),
    (lambda c: c["linux"].update(resources={"cpu": {"quota": 10 ** 20}}), "cpu.quota"),
    (lambda c: c["linux"].update(resources={"cpu": {"shares": 10 ** 30}}), "cpu.shares"),
    (lambda c: c["linux"].update(resources={"devices": [5]}), "devices"),
    (lambda c: c["linux"].update(resources={"devices": [
        {"allow": True, "type": "c", "major": 10 ** 30, "minor": 1, "access": "rwm"}]}),
     "major/minor"),
    (lambda c: c["linux"].update(resources={"cpu": {"cpus": "0-99999999999"}}), "beyond"),
    (lambda c: c["process"]["user"].update(uid=1 << 40), "process.user.uid"),
    (lambda c: c["process"]["user"].update(gid=-1), "process.user.gid"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10 ** 30,
                                             "hard": 10}]), "nofile.soft"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1,
                                             "hard": "x"}]), "nofile.hard"),
])
def test_named_checks_refuse(bundle, mutate, message):
    config = base_config()
    mutate(config)
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.validate(config, bundle)


def test_load_config_errors(tmp_path):
    with pytest.raises(cfg.ConfigError, match="config.json not found"):
        cfg.load_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(cfg.ConfigError, match="cannot read"):
        cfg.load_config(str(tmp_path))


@pytest.mark.parametrize("cid", ["", "a/b", "..", "x y"])
def test_bad_ids(cid):
    with pytest.raises(cfg.ConfigError):
        cfg.check_id(cid)


def test_namespaces_translation():
    config = base_config()
    config["linux"]["namespaces"] += [{"type": "cgroup"}]
    config["linux"]["namespaces"][2] = {"type": "network", "path": "/proc/1/ns/net"}
    flags, joins, new = translate.namespaces(config)
    assert flags == sc.CLONE_NEWPID | sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
    assert joins == [("network", "/proc/1/ns/net")]
    assert new == {"pid", "mount", "uts", "ipc", "cgroup"}


def test_process_translation():
    process = base_config()["process"]
    assert translate.capability_sets(process).bounding == capabilities.mask_of(["CHOWN", "KILL"])
    assert translate.rlimits(process) == [("nofile", 1024, 2048)]
    assert translate.user_spec({"user": {"uid": 5, "gid": 7}}) == "5:7"


@pytest.mark.parametrize("path, expected", [
    ("/docker/abc", "docker/abc"), ("", "isoinspect-oci/c1"), ("/", "isoinspect-oci/c1"),
    ("system.slice:docker:abc", "system.slice/docker-abc.scope"),
    ("/a/../b", "isoinspect-oci/c1"),
])
def test_cgroup_path(path, expected):
    config = {"linux": {"cgroupsPath": path}}
    assert translate.cgroup_path(config, "c1") == expected


def test_resources_translation():
    config = {"linux": {"resources": {
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 50},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}}}
    res = translate.resources(config)
    assert res.memory == 64 << 20 and res.memory_swap == 128 << 20
    assert res.cpu_shares == 512 and res.cpu_quota_us == 50000 and res.cpuset_cpus == "0"
    assert res.pids_limit == 50
    assert res.device_rules[:2] == [("a", None, None, "rwm", False), ("c", 1, 3, "rwm", True)]
    assert res.device_rules[2:] == list(DEFAULT_DEVICE_RULES[1:])
    assert translate.resources({}).memory is None


def test_parse_options():
    flags, prop, data = setup.parse_options(["nosuid", "noexec", "rbind", "ro", "rprivate",
                                             "mode=755", "size=1k", "tmpcopyup"])
    assert flags == sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY
    assert prop == sc.MS_PRIVATE | sc.MS_REC
    assert data == "mode=755,size=1k"
    assert setup.parse_options(["ro", "rw"])[0] == 0


def test_secure_join_keeps_symlinks_inside(tmp_path):
    root = str(tmp_path)
    os.makedirs(f"{root}/real/dir")
    os.symlink("/real", f"{root}/abs")
    os.symlink("../../..", f"{root}/real/up")
    assert setup.secure_join(root, "/abs/dir") == f"{root}/real/dir"
    assert setup.secure_join(root, "/real/up/etc") == f"{root}/etc"
    assert setup.secure_join(root, "/") == root


def test_find_executable(tmp_path):
    (tmp_path / "tool").write_text("")
    assert setup.find_executable("tool", [f"PATH=/nope:{tmp_path}"]) == f"{tmp_path}/tool"
    assert setup.find_executable("missing", [f"PATH={tmp_path}"]) is None


DOCKERISH_SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "no_such_syscall_x"],
         "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
    ],
}


def _have_libseccomp() -> bool:
    try:
        seccomp_profile._import_seccomp()
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not _have_libseccomp(), reason="libseccomp bindings missing")
def test_seccomp_compiles_and_caches(tmp_path):
    program = seccomp_profile.compile_profile(DOCKERISH_SECCOMP)
    assert program and len(program) % 8 == 0
    cached = seccomp_profile.load_filter_bytes(DOCKERISH_SECCOMP, str(tmp_path))
    assert cached == program
    path = seccomp_profile.profile_cache_path(DOCKERISH_SECCOMP, str(tmp_path))
    assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_seccomp_shape_checks():
    def check(section):
        cfg.check_seccomp({"linux": {"seccomp": section}}, "bundle")

    with pytest.raises(cfg.ConfigError, match="operator"):
        check({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "op": "SCMP_CMP_BOGUS"}]}]})
    with pytest.raises(cfg.ConfigError, match="architecture"):
        check({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["VAX"]})


def test_cli_version_and_features(capsys):
    assert oci_main.main(["--version"]) == 0
    assert "isoinspect-runc version" in capsys.readouterr().out
    assert oci_main.main(["features"]) == 0
    features = json.loads(capsys.readouterr().out)
    assert "createRuntime" in features["hooks"]
    assert "network" in features["linux"]["namespaces"]


def test_cli_errors_as_json_lines(tmp_path, capsys):
    log = tmp_path / "log.json"
    code = oci_main.main(["--root", str(tmp_path / "state"), "--log", str(log),
                          "--log-format", "json", "--systemd-cgroup", "state", "nope"])
    assert code == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]
    assert "does not exist" in capsys.readouterr().err


def test_parse_signal():
    from isoinspect.runtime.linux.signals import parse_signal
    assert parse_signal("KILL") == 9 and parse_signal("SIGTERM") == 15
    assert parse_signal("9") == 9
    assert parse_signal("SIGBOGUS") is None


def test_rlimits_from_2_to_the_63_up_are_unlimited():
    """uint64 in the spec; Python passes rlim_t signed, so those values mean unlimited."""
    import resource
    section = {"rlimits": [{"type": "RLIMIT_MEMLOCK", "soft": 1 << 63, "hard": (1 << 64) - 1}]}
    assert translate.rlimits(section) == [("memlock", resource.RLIM_INFINITY,
                                           resource.RLIM_INFINITY)]


def test_unknown_capabilities_are_left_out_with_a_warning(bundle):
    config = base_config()
    config["process"]["capabilities"]["bounding"] += ["CAP_BOGUS", "CAP_FROM_A_NEWER_KERNEL"]
    cfg.validate(config, bundle)  # the spec: warn, do not fail
    process = config["process"]
    assert translate.unknown_capabilities(process) == ["CAP_BOGUS", "CAP_FROM_A_NEWER_KERNEL"]
    assert translate.capability_sets(process).bounding == capabilities.mask_of(["CHOWN", "KILL"])


def test_lsm_labels_are_named_as_ignored():
    assert translate.ignored_labels({}) == []
    warnings = translate.ignored_labels({"apparmorProfile": "p", "selinuxLabel": "l"})
    assert [w.split()[0] for w in warnings] == ["process.apparmorProfile", "process.selinuxLabel"]


@pytest.mark.parametrize("key, namespaces, message", [
    ("net.ipv4.ip_forward", ["mount", "network"], None),
    ("net.ipv4.ip_forward", ["mount"], "host's\\) network namespace"),
    ("net.ipv4.ip_forward", [("network", "/proc/self/ns/net")], "host's\\) network"),
    ("kernel.shmmax", ["ipc"], None),
    ("fs.mqueue.msg_max", ["mount"], "ipc namespace"),
    ("kernel.domainname", ["uts"], None),
    ("kernel.hostname", ["uts"], "conflicts with 'hostname'"),
    ("vm.swappiness", ["mount", "network", "ipc", "uts"], "not in a separate kernel namespace"),
])
def test_sysctls_only_of_namespaces_not_shared_with_the_runtime(bundle, key, namespaces, message):
    """runc's rule: writing a sysctl of a namespace shared with the runtime changes the host."""
    config = base_config()
    config.pop("hostname")
    config["linux"].update(sysctl={key: "1"}, namespaces=[
        {"type": ns} if isinstance(ns, str) else {"type": ns[0], "path": ns[1]}
        for ns in namespaces])
    if message is None:
        cfg.validate(config, bundle)
    else:
        with pytest.raises(cfg.ConfigError, match=message):
            cfg.validate(config, bundle)


def test_umask():
    assert translate.umask({}) == 0o022
    assert translate.umask({"user": {"umask": 0o077}}) == 0o077
    assert translate.umask({"user": {"umask": 0o10077}}) == 0o077


def test_a_fifo_node_adds_no_device_rule_for_either_cgroup_driver():
    """linux.devices type p is a FIFO: no devices-cgroup rule (v1 file or v2 eBPF filter)."""
    from isoinspect.runtime.cgroups.resources import format_device_rule
    from isoinspect.runtime.cgroups.v2 import devices as v2_devices
    config = base_config()
    config["linux"]["devices"] = [{"path": "/dev/f", "type": "p"},
                                  {"path": "/dev/u", "type": "u", "major": 7, "minor": 9}]
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    rules = translate.resources(config).device_rules
    assert [r[0] for r in rules if r[0] not in "abc"] == []
    assert ("c", 7, 9, "rwm", True) in rules  # "u" (unbuffered char) is a char device
    assert [format_device_rule(r) for r in rules][0] == "a *:* rwm"
    assert v2_devices.program(v2_devices.emulate(rules))  # the v2 filter builds from them
