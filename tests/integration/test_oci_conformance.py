"""Bundle semantics against runc 1.1.5, for real (root): the same bundle runs under
isoinspect-runc and under runc, a busybox process reads back what it got (/proc/self/status
Cap*/Groups, /proc/self/ns/*, mountinfo) and each result is checked against the bundle.

runc runs every bundle here inside `unshare --mount --propagation private`: without a mount
namespace of its own it makes the runtime's "/" rslave and the rootfs' parent mount private
(runc's prepareRoot), which on the host's namespace would change the host's mount tree.
isoinspect-runc is wrapped the same way, so both report against the same "runtime namespace";
one test runs isoinspect-runc in the real host namespace and checks it leaves nothing there.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest

from test_oci_cli import BUSYBOX, runc_like_config

ISO = os.path.join(os.path.dirname(sys.executable), "isoinspect-runc")
RUNC = shutil.which("runc") or "/usr/bin/runc"
NS = ("mnt", "pid", "net", "ipc", "uts", "cgroup", "user")
OCI_KIND = {"mnt": "mount", "pid": "pid", "net": "network", "ipc": "ipc", "uts": "uts",
            "cgroup": "cgroup"}
READBACK = ("grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+):' /proc/self/status; "
            "for n in " + " ".join(NS) + "; do echo ns.$n: $(readlink /proc/self/ns/$n); done; "
            "echo hostname: $(hostname)")
# Printed by the shell that execs the runtime: the runtime's own namespaces.
RUNTIME_NS = ("for n in " + " ".join(NS) + "; do echo runtime.ns.$n: "
              "$(readlink /proc/self/ns/$n); done; exec \"$@\"")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BUSYBOX),
                                reason="needs root and busybox-static")


def cap_mask(*names: str) -> int:
    from isoinspect.runtime.linux.capabilities import mask_of
    return mask_of(list(names))


@pytest.fixture(scope="session")
def rootfs():
    """A busybox root in a world-searchable directory (a remapped root must reach it), real
    (runc refuses a root.path through a symlink)."""
    top = tempfile.mkdtemp(prefix="isoinspect-conformance-")
    os.chmod(top, 0o755)
    root = os.path.join(top, "rootfs")
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(root, sub))
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\nu1000:x:1000:1000::/:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as handle:
        handle.write("root:x:0:\ng1000:x:1000:\nextra:x:4242:u1000\n")
    yield root
    shutil.rmtree(top)


@dataclass
class Outcome:
    """One runtime's run of a bundle: exit code, what the container printed, parsed."""

    code: int
    out: str
    err: str
    fields: dict

    def ns_same_as_runtime(self, name: str) -> bool:
        return self.fields[f"ns.{name}"] == self.fields[f"runtime.ns.{name}"]


def parse(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


class Peers:
    """Runs one bundle under isoinspect-runc and runc (each its own state root)."""

    def __init__(self, tmp_path, rootfs: str, name: str) -> None:
        self.tmp, self.rootfs, self.name = tmp_path, rootfs, name
        self.made: list[tuple[str, str]] = []

    def bundle(self, mutate=None, args: list[str] | None = None, tag: str = "b") -> str:
        path = self.tmp / f"bundle-{tag}"
        path.mkdir(exist_ok=True)
        config = runc_like_config(args or ["sh", "-c", READBACK])
        config["root"]["path"] = self.rootfs
        if mutate:
            mutate(config)
        (path / "config.json").write_text(json.dumps(config))
        return str(path)

    def exe(self, runtime: str) -> list[str]:
        program = ISO if runtime == "iso" else RUNC
        return [program, "--root", str(self.tmp / f"state-{runtime}")]

    def cid(self, runtime: str, tag: str = "") -> str:
        cid = f"isoinspect-conf-{self.name}{tag}-{runtime}"[:60]
        self.made.append((runtime, cid))
        return cid

    def run(self, runtime: str, bundle: str, tag: str = "", wrap: bool = True) -> Outcome:
        command = [*self.exe(runtime), "run", "--bundle", bundle, self.cid(runtime, tag)]
        if wrap:
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       RUNTIME_NS, "sh", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=90)
        return Outcome(result.returncode, result.stdout, result.stderr, parse(result.stdout))

    def both(self, bundle: str, tag: str = "") -> tuple[Outcome, Outcome]:
        return self.run("iso", bundle, tag), self.run("runc", bundle, tag)

    def cleanup(self) -> None:
        for runtime, cid in self.made:
            subprocess.run([*self.exe(runtime), "delete", "--force", cid],
                           capture_output=True, timeout=60)


def _cgroups_of(cid: str) -> list[str]:
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        for parent in ("isoinspect-oci/", ""):
            path = f"/sys/fs/cgroup/{hierarchy}/{parent}{cid}"
            if os.path.isdir(path):
                found.append(path)
    return found


@pytest.fixture
def peers(request, tmp_path, rootfs):
    name = request.node.name.replace("test_", "")
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:32]
    helper = Peers(tmp_path, rootfs, name)
    yield helper
    helper.cleanup()
    leftovers = [d for _, cid in helper.made for d in _cgroups_of(cid)]
    assert not leftovers, f"cgroups left behind: {leftovers}"
    with open("/proc/self/mountinfo") as handle:
        mounts = [line for line in handle if rootfs in line or str(tmp_path) in line]
    assert not mounts, f"mounts left behind: {mounts}"


def _hex(mask: int) -> str:
    return f"{mask:016x}"


# ---- capabilities and groups ---------------------------------------------------------------

BND = ("CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN", "CAP_SETPCAP")
SETS = {"bounding": list(BND), "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"], "ambient": ["CAP_KILL"]}


@pytest.mark.parametrize("uid", [0, 1000])
def test_five_capability_sets_and_additional_gids(peers, uid):
    """Each set applied as given (then execve's rules, with noNewPrivileges): a non-root user
    keeps its ambient capabilities, which become its permitted and effective sets."""
    def mutate(config):
        config["process"]["capabilities"] = SETS
        config["process"]["user"] = {"uid": uid, "gid": 1000, "additionalGids": [5, 7, 1000]}
    iso, runc = peers.both(peers.bundle(mutate))
    assert iso.code == 0, iso.err
    kill, raw, chown = cap_mask("KILL"), cap_mask("NET_RAW"), cap_mask("CHOWN")
    # root: execve recomputes permitted as (inheritable | bounding), capped by noNewPrivileges
    # to what it had; any other user keeps only the ambient set (inheritable AND permitted)
    permitted = kill | raw | chown if uid == 0 else kill
    expected = {"CapBnd": _hex(cap_mask(*BND)), "CapInh": _hex(kill | raw),
                "CapPrm": _hex(permitted), "CapEff": _hex(permitted), "CapAmb": _hex(kill),
                "Groups": "5 7 1000", "Uid": "\t".join([str(uid)] * 4),
                "Gid": "1000\t1000\t1000\t1000"}
    # u1000 is a member of "extra" (4242) in /etc/group, but a bundle's user is "uid:gid":
    # no memberships from the image, only additionalGids (libcontainer's rule)
    got = {key: iso.fields[key] for key in expected}
    assert got == expected
    assert runc.code == 0, runc.err
    assert {key: runc.fields[key] for key in expected} == expected  # runc 1.1.5 agrees


def test_non_root_user_ends_with_the_sets_it_asks_through_create_and_start(peers):
    """create/start/state/delete: privileges are dropped before `start`, and a non-root user
    ends with effective = permitted = inheritable = ambient = what the bundle asks."""
    wanted = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_DAC_OVERRIDE"]

    def mutate(config):
        config["process"]["capabilities"] = {kind: list(wanted) for kind in
                                             ("effective", "permitted", "inheritable",
                                              "ambient")}
        config["process"]["capabilities"]["bounding"] = wanted + ["CAP_CHOWN"]
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle = peers.bundle(mutate)
    mask = _hex(cap_mask(*wanted))
    for runtime in ("iso", "runc"):
        cid = peers.cid(runtime, "-life")
        out_path = peers.tmp / f"out-{runtime}.txt"
        err_path = peers.tmp / f"err-{runtime}.txt"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            # files, not pipes: the init inherits them and lives on after `create`
            created = subprocess.run([*peers.exe(runtime), "create", "--bundle", bundle, cid],
                                     stdout=out, stderr=err, timeout=60)
        assert created.returncode == 0, (runtime, err_path.read_text())
        state = json.loads(subprocess.run([*peers.exe(runtime), "state", cid],
                                          capture_output=True, text=True).stdout)
        assert state["status"] == "created"
        status = parse(open(f"/proc/{state['pid']}/status").read())
        assert status["CapEff"] == mask  # already dropped while waiting for `start`
        assert subprocess.run([*peers.exe(runtime), "start", cid]).returncode == 0
        deadline = time.monotonic() + 30
        while json.loads(subprocess.run([*peers.exe(runtime), "state", cid], capture_output=True,
                                        text=True).stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, f"{runtime}: still running"
            time.sleep(0.05)
        fields = parse(out_path.read_text())
        for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert fields[key] == mask, (runtime, key, fields)
        assert fields["CapBnd"] == _hex(cap_mask(*wanted, "CAP_CHOWN"))
        assert subprocess.run([*peers.exe(runtime), "delete", cid]).returncode == 0


def test_unknown_capability_is_a_warning_not_a_failure(peers):
    """The spec asks for a warning; runc 1.1.5 logs one and leaves the name out."""
    def mutate(config):
        config["process"]["capabilities"]["bounding"].append("CAP_ISOINSPECT_BOGUS")
    iso, runc = peers.both(peers.bundle(mutate))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert "ignoring unknown or unavailable capabilities" in outcome.err
        assert "CAP_ISOINSPECT_BOGUS" in outcome.err
        assert outcome.fields["CapBnd"] == _hex(cap_mask("AUDIT_WRITE", "KILL",
                                                         "NET_BIND_SERVICE"))


def test_apparmor_profile_on_a_host_without_apparmor(peers):
    """A host reason: this kernel has no AppArmor, so runc 1.1.5 fails writing
    /proc/self/attr/exec; isoinspect-runc applies no LSM label anywhere and says so."""
    assert not os.path.exists("/sys/module/apparmor/parameters/enabled")
    iso, runc = peers.both(peers.bundle(
        lambda config: config["process"].update(apparmorProfile="isoinspect-none")))
    assert iso.code == 0 and "apparmorProfile 'isoinspect-none' is ignored" in iso.err
    assert runc.code == 1 and "unable to apply apparmor profile" in runc.err


def _started(peers, runtime: str, bundle: str, tag: str) -> str:
    """A container of ``bundle`` created and started under ``runtime``: its id."""
    cid = peers.cid(runtime, tag)
    for step in (["create", "--bundle", bundle, cid], ["start", cid]):
        done = subprocess.run([*peers.exe(runtime), *step], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 0, (runtime, step)
    return cid


def _user_1000_with(caps: list[str], **process):
    """A mutation: uid 1000 (gid 1000, additional gid 9) holding ``caps`` in all five sets."""
    def mutate(config):
        config["process"]["capabilities"] = {kind: list(caps) for kind in
                                             ("bounding", "effective", "permitted",
                                              "inheritable", "ambient")}
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [9]}
        config["process"].update(process)
    return mutate


def test_exec_without_a_process_file_gets_the_bundles_process(peers):
    """`exec ID CMD`: the bundle's process section (user, additionalGids, capabilities, env)
    with the command replaced, as runc reads it from the bundle."""
    wanted = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]

    def mutate(config):
        _user_1000_with(wanted)(config)
        config["process"]["env"].append("ISOINSPECT_FROM_BUNDLE=yes")
    bundle = peers.bundle(mutate, args=["sleep", "60"])
    for runtime in ("iso", "runc"):
        cid = _started(peers, runtime, bundle, "-exec")
        done = subprocess.run([*peers.exe(runtime), "exec", "--env", "ISOINSPECT_EXTRA=1", cid,
                               "sh", "-c", READBACK + "; echo env: $ISOINSPECT_FROM_BUNDLE"
                               "$ISOINSPECT_EXTRA"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (runtime, done.stderr)
        fields = parse(done.stdout)
        assert fields["CapEff"] == fields["CapAmb"] == _hex(cap_mask(*wanted)), runtime
        assert (fields["Uid"].split()[0], fields["Groups"], fields["env"]) == \
            ("1000", "9", "yes1"), runtime
        subprocess.run([*peers.exe(runtime), "delete", "--force", cid], capture_output=True,
                       timeout=60)


EXEC_READBACK = READBACK + "; grep NoNewPrivs /proc/self/status; echo cwd: $(pwd); echo env: $A"
EXEC_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
               "NoNewPrivs", "cwd", "env")


def test_exec_flags_read_back_against_runc(peers):
    """exec --user/--additional-gids/--cap/--no-new-privs/--cwd/--env change the bundle's
    process as runc's do (--cap: every set but inheritable, so a non-root user cannot raise
    it as ambient); a paused container refuses exec unless --ignore-paused, whose process
    waits frozen until `resume`."""
    wanted = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle = peers.bundle(_user_1000_with(wanted, noNewPrivileges=False), args=["sleep", "120"])
    runs = {
        "root": ["--user", "0:0", "--cap", "CAP_CHOWN", "-g", "4242", "-g", "5", "--cwd", "/tmp", "--env", "A=1", "--no-new-privs"],
        "user": ["--cap", "CAP_CHOWN", "--cap", "CAP_SYS_TIME", "--user", "1000"],
        "plain": [],
    }
    seen: dict[str, dict] = {}
    for runtime in ("iso", "runc"):
        cid = _started(peers, runtime, bundle, "-x")
        for name, flags in runs.items():
            done = subprocess.run([*peers.exe(runtime), "exec", *flags, cid, "sh", "-c",
                                   EXEC_READBACK], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (runtime, name, done.stderr)
            fields = parse(done.stdout)
            seen[f"{runtime}.{name}"] = {key: fields.get(key) for key in EXEC_FIELDS}
        bad = subprocess.run([*peers.exe(runtime), "exec", "--user", "nobody", cid, "true"],
                             capture_output=True, text=True, timeout=60)
        seen[f"{runtime}.bad_user"] = {"code": bad.returncode,
                                       "says": "as int for uid failed" in bad.stderr}
        assert subprocess.run([*peers.exe(runtime), "pause", cid]).returncode == 0
        refused = subprocess.run([*peers.exe(runtime), "exec", cid, "true"],
                                 capture_output=True, text=True, timeout=60)
        waiting = subprocess.Popen([*peers.exe(runtime), "exec", "--ignore-paused", cid,
                                    "echo", "thawed"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        frozen = waiting.poll() is None
        assert subprocess.run([*peers.exe(runtime), "resume", cid]).returncode == 0
        out, err = waiting.communicate(timeout=60)
        seen[f"{runtime}.paused"] = {
            "refused": (refused.returncode, "use --ignore-paused to override" in refused.stderr),
            "waited_frozen": frozen, "after_resume": (waiting.returncode, out.strip())}
        subprocess.run([*peers.exe(runtime), "delete", "--force", cid], capture_output=True,
                       timeout=60)
    kill, bind, chown, time_ = (cap_mask(n) for n in ("KILL", "NET_BIND_SERVICE", "CHOWN",
                                                       "SYS_TIME"))
    root, user = seen["iso.root"], seen["iso.user"]
    assert (root["Uid"], root["Gid"], root["Groups"]) == ("0\t0\t0\t0", "0\t0\t0\t0",
                                                          "5 9 4242"), root
    assert (root["NoNewPrivs"], root["cwd"], root["env"]) == ("1", "/tmp", "1"), root
    assert int(root["CapEff"], 16) == kill | bind | chown, root
    assert int(user["CapBnd"], 16) == kill | bind | chown | time_, user
    assert int(user["CapEff"], 16) == kill | bind and user["Uid"].startswith("1000"), user
    assert seen["iso.plain"]["NoNewPrivs"] == "0"
    assert seen["iso.bad_user"] == {"code": 255, "says": True}  # runc's code for exec
    assert seen["iso.paused"] == {"refused": (255, True), "waited_frozen": True,
                                  "after_resume": (0, "thawed")}
    for key in ("root", "user", "plain", "bad_user", "paused"):  # runc 1.1.5 agrees
        assert seen[f"runc.{key}"] == seen[f"iso.{key}"], key


# ---- namespaces ----------------------------------------------------------------------------

KINDS = ("mnt", "pid", "net", "ipc", "uts", "cgroup")
COMBINATIONS = [combo for size in range(len(KINDS) + 1)
                for combo in itertools.combinations(KINDS, size)]


def _only(kinds: tuple[str, ...]):
    def mutate(config):
        config["linux"]["namespaces"] = [{"type": OCI_KIND[k]} for k in kinds]
        if "mnt" not in kinds:  # runc (and we) refuse to mask paths in the runtime's tree
            config["linux"].pop("maskedPaths")
            config["linux"].pop("readonlyPaths")
        if "uts" not in kinds:  # ... and to set the runtime's hostname
            config.pop("hostname")
    return mutate


@pytest.mark.parametrize("kinds", COMBINATIONS, ids=lambda k: "+".join(k) or "none")
def test_namespaces_left_out_are_the_runtimes(peers, kinds):
    """Every combination runs; a kind listed is a new namespace, one left out the runtime's."""
    iso, runc = peers.both(peers.bundle(_only(kinds)))
    assert iso.code == 0, iso.err
    for name in KINDS:
        assert iso.ns_same_as_runtime(name) == (name not in kinds), (name, iso.fields)
    assert runc.code == 0, runc.err
    assert [runc.ns_same_as_runtime(n) for n in KINDS] == \
        [iso.ns_same_as_runtime(n) for n in KINDS]  # runc 1.1.5 agrees


def test_no_mount_namespace_in_the_real_host_namespace_leaves_nothing(peers, rootfs):
    """isoinspect-runc only (runc would make the host's / rslave): the container sees the
    host's mount namespace, chrooted into root.path; `delete` detaches the bundle's mounts."""
    def mutate(config):
        _only(("pid", "net", "ipc", "uts"))(config)
        config["linux"]["rootfsPropagation"] = "rshared"  # must not reach the host's mounts
    bundle = peers.bundle(mutate, args=["sh", "-c", READBACK + "; ls /proc/1/status"])
    before = _propagation_of_host_mounts()
    outcome = peers.run("iso", bundle, wrap=False)
    assert outcome.code == 0, outcome.err
    assert outcome.fields["ns.mnt"] == os.readlink("/proc/self/ns/mnt")
    with open("/proc/self/mountinfo") as handle:
        assert not [line for line in handle if rootfs in line]
    after = _propagation_of_host_mounts()  # other tests on this host add and remove mounts
    assert {p: after[p] for p in before if p in after} == \
        {p: before[p] for p in before if p in after} and "/" in after


def _propagation_of_host_mounts() -> dict[str, str]:
    """Mount point -> its optional fields (shared:N, master:N) in /proc/self/mountinfo."""
    points = {}
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            points[fields[4]] = " ".join(fields[6:fields.index("-")])
    return points


def test_joining_a_mount_namespace_by_path(peers):
    """linux.namespaces [{type: mount, path}]: the init joins it and sets the root up there."""
    for runtime in ("iso", "runc"):
        holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                   "sleep", "300"])
        try:
            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            target = os.readlink(f"/proc/{holder.pid}/ns/mnt")

            def mutate(config, pid=holder.pid):
                config["linux"]["namespaces"] = [{"type": k} for k in
                                                 ("pid", "network", "ipc", "uts")]
                config["linux"]["namespaces"].append({"type": "mount",
                                                      "path": f"/proc/{pid}/ns/mnt"})
            outcome = peers.run(runtime, peers.bundle(mutate, tag=runtime), wrap=False)
            assert outcome.code == 0, (runtime, outcome.err)
            assert outcome.fields["ns.mnt"] == target, runtime
        finally:
            holder.kill()
            holder.wait()
    # The runtime's own mount namespace by path: runc would pivot_root the host's tree there (not
    # run here for that reason); isoinspect-runc refuses it before touching anything.
    def own(config):
        config["linux"]["namespaces"][-1] = {"type": "mount",
                                             "path": f"/proc/{os.getpid()}/ns/mnt"}
    refused = peers.run("iso", peers.bundle(own, tag="own"), tag="-own", wrap=False)
    assert refused.code == 1 and "is the runtime's own" in refused.err


def test_user_namespace_with_the_bundles_mappings(peers):
    """uidMappings/gidMappings written as given (the code of `run --userns remap`); device
    nodes are bound from the host (no mknod in a user namespace)."""
    def mutate(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
        config["process"]["args"][-1] += ("; echo uidmap: $(cat /proc/self/uid_map); "
                                          "echo gidmap: $(cat /proc/self/gid_map); "
                                          "echo null: $(head -c 3 /dev/zero | wc -c)")
    iso, runc = peers.both(peers.bundle(mutate))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert outcome.fields["uidmap"] == "0 100000 65536"
        assert outcome.fields["gidmap"] == "0 200000 1000"
        assert not outcome.ns_same_as_runtime("user")
        assert outcome.fields["null"] == "3" and outcome.fields["CapEff"] == \
            _hex(cap_mask("AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"))


def _user_namespace_holder() -> subprocess.Popen:
    """A process in a user namespace of its own, mapped by the test (as root): 0 -> 100000."""
    holder = subprocess.Popen(["unshare", "--user", "sleep", "300"])
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{holder.pid}/ns/user") == os.readlink("/proc/self/ns/user"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{holder.pid}/{name}", "w") as handle:
            handle.write("0 100000 65536\n")
    return holder


def test_joining_a_user_namespace_by_path(peers):
    """linux.namespaces [{type: user, path}]: the init runs in that namespace with its maps
    (the bundle's are required by runc 1.1.5 but not written), as its root, and the new
    namespaces belong to it: proc is mounted, the hostname set, devices bound."""
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    for runtime in ("iso", "runc"):
        holder = _user_namespace_holder()
        try:
            def mutate(config, pid=holder.pid, maps=True):
                config["linux"]["namespaces"] = [{"type": "user",
                                                  "path": f"/proc/{pid}/ns/user"}] + \
                    [{"type": t} for t in ("mount", "pid", "ipc", "uts", "network", "cgroup")]
                if maps:
                    config["linux"].update(uidMappings=mapping, gidMappings=mapping)
                config["process"]["args"][-1] += ("; echo uidmap: $(cat /proc/self/uid_map); "
                                                  "echo null: $(head -c 3 /dev/zero | wc -c)")
            outcome = peers.run(runtime, peers.bundle(mutate, tag=runtime), tag="-j")
            assert outcome.code == 0, (runtime, outcome.err)
            fields = outcome.fields
            assert fields["ns.user"] == os.readlink(f"/proc/{holder.pid}/ns/user"), runtime
            assert fields["uidmap"] == "0 100000 65536", runtime
            assert fields["Uid"] == "0\t0\t0\t0" and fields["hostname"] == "runc", runtime
            assert fields["null"] == "3" and fields["CapEff"] == \
                _hex(cap_mask("AUDIT_WRITE", "KILL", "NET_BIND_SERVICE")), runtime
            assert not outcome.ns_same_as_runtime("pid") and \
                fields["ns.pid"] != os.readlink(f"/proc/{holder.pid}/ns/pid"), runtime
            # No mappings at all: runc 1.1.5 wants them even for a joined namespace.
            refused = peers.run(runtime, peers.bundle(
                lambda config, pid=holder.pid: mutate(config, pid, maps=False),
                tag=f"{runtime}-nomap"), tag="-n")
            assert refused.code == 1, (runtime, refused.out)
            assert ("linux.uidMappings is required" if runtime == "iso" else
                    "no uid mappings found") in refused.err, (runtime, refused.err)
        finally:
            holder.kill()
            holder.wait()


def test_user_namespace_root_that_cannot_reach_root_path(peers, tmp_path, rootfs):
    """root.path below a directory the mapped root may not search (pytest's 0700 tmp): both
    fail; isoinspect-runc says which directory before touching anything, runc with EACCES."""
    private = tmp_path / "private-rootfs"
    shutil.copytree(rootfs, private, symlinks=True)
    assert any(not os.stat(parent).st_mode & 0o001 for parent in private.parents)

    def mutate(config):
        config["root"]["path"] = str(private)
        config["linux"]["namespaces"].append({"type": "user"})
        mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"].update(uidMappings=mapping, gidMappings=mapping)
    iso, runc = peers.both(peers.bundle(mutate))
    assert iso.code == 1 and "is not searchable by the container's root (host uid 100000" \
        in iso.err
    assert runc.code == 1 and "permission denied" in runc.err


# ---- devices, hostname, masked and read-only paths -----------------------------------------

def test_fifo_device_node_and_cgroup_rule_types(peers):
    """linux.devices type p makes a FIFO (no devices cgroup rule for it); a cgroup rule of type
    p is refused: the spec allows only a, b and c there, and runc 1.1.5 refuses it too."""
    def fifo(config):
        config["linux"]["devices"] = [{"path": "/dev/isoinspect-fifo", "type": "p",
                                       "fileMode": 0o640}]
        config["process"]["args"] = ["sh", "-c", "ls -l /dev/isoinspect-fifo"]
    iso, runc = peers.both(peers.bundle(fifo, tag="fifo"))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert "\nprw-r-----" in outcome.out, outcome.out

    def rule(config):
        config["linux"]["resources"]["devices"].append({"allow": True, "type": "p",
                                                        "access": "rwm"})
    iso, runc = peers.both(peers.bundle(rule, tag="rule"), tag="-rule")
    assert iso.code == 1 and "invalid cgroup device type 'p'" in iso.err
    assert runc.code == 1 and 'invalid cgroup device type \\"p\\"' in runc.err


def test_sysctl_only_in_a_namespace_of_its_own(peers):
    """A network sysctl is written in the container's network namespace; without one it would
    be the host's: both runtimes refuse (runc's validator rule)."""
    def own(config):
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        config["process"]["args"] = ["sh", "-c", READBACK + "; echo forward: "
                                     "$(cat /proc/sys/net/ipv4/ip_forward)"]
    iso, runc = peers.both(peers.bundle(own, tag="own"))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert outcome.fields["forward"] == "1" and not outcome.ns_same_as_runtime("net")

    def shared(config):
        _only(("mnt", "pid", "ipc", "uts"))(config)
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    iso, runc = peers.both(peers.bundle(shared, tag="shared"), tag="-shared")
    assert iso.code == 1 and "not allowed in the runtime's (host's) network" in iso.err
    assert runc.code == 1 and "not allowed in host network namespace" in runc.err


def test_process_user_umask(peers):
    """process.user.umask (spec 1.1) is the command's umask; absent, 022."""
    def mutate(config):
        config["process"]["user"]["umask"] = 0o077
        config["process"]["args"] = ["sh", "-c", "echo umask: $(umask)"]
    iso, runc = peers.both(peers.bundle(mutate))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert outcome.fields["umask"] == "0077"


def test_empty_hostname_keeps_the_runtimes(peers):
    """hostname "" with a new UTS namespace: nothing is set, the name is the runtime's."""
    iso, runc = peers.both(peers.bundle(lambda config: config.update(hostname="")))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert outcome.fields["hostname"] == socket.gethostname()
        assert not outcome.ns_same_as_runtime("uts")


@pytest.mark.parametrize("uid", [0, 1000])
def test_masked_and_readonly_paths_with_capabilities(peers, uid):
    """Masked paths read empty, read-only paths refuse writes, for root with every capability
    and for a non-root user holding capabilities through the ambient set."""
    probe = ("echo keys: $(wc -c < /proc/keys); echo firmware: $(ls /sys/firmware | wc -l); "
             "echo sysctl: $( (echo x > /proc/sys/kernel/domainname) 2>&1); grep -E ' /proc/(sys|bus) ' /proc/self/mountinfo | "
             "sed 's/^/ro: /' | grep -c ' ro,' ; true")

    def mutate(config):
        caps = ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_KILL"]
        config["process"]["capabilities"] = {kind: caps for kind in
                                             ("bounding", "effective", "permitted",
                                              "inheritable", "ambient")}
        config["process"]["user"] = {"uid": uid, "gid": uid}
        config["process"]["args"] = ["sh", "-c", READBACK + "; " + probe]
    iso, runc = peers.both(peers.bundle(mutate))
    for outcome in (iso, runc):
        assert outcome.code == 0, outcome.err
        assert outcome.fields["CapEff"] == _hex(cap_mask("SYS_ADMIN", "DAC_OVERRIDE", "KILL"))
        assert outcome.fields["keys"] == "0" and outcome.fields["firmware"] == "0"
        assert outcome.fields["sysctl"].endswith("Read-only file system")
        assert outcome.out.rstrip().splitlines()[-1] == "2"  # /proc/sys and /proc/bus: ro
