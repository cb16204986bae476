"""``isoinspect events`` against real containers: the lifecycle of a run in order with its exit
code, filters, Docker's JSON shape, and a follower that is interrupted cleanly.

Docker: ``docker events --since T --until now`` lists create, (attach, network connect,)
start, die (exitCode), destroy for ``docker run --rm``; ``stop`` adds kill (signal=15), die,
stop; Ctrl-C ends a follower with no message, killed by SIGINT (a shell sees 130; docker 28's
CLI exits 130). Ours has no attach/network events.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time

from conftest import wait_for


def _actions(lines: list[str], cid: str) -> list[str]:
    return [line.split()[2] for line in lines if cid in line]


def test_events_of_a_run_in_order_with_exit_code(iso):
    since = str(time.time() - 1)
    iso("run", "--name", "isotest-ev", "--network", "none", "busybox", "sh", "-c", "exit 3")
    cid = json.loads(iso("inspect", "isotest-ev", check=True).stdout)[0]["Id"]
    iso("rm", "isotest-ev", check=True)
    listed = iso("events", "--since", since, "--until", str(time.time()), check=True)
    lines = listed.stdout.splitlines()
    assert _actions(lines, cid) == ["create", "start", "die", "destroy"]
    die = next(line for line in lines if " die " in line and cid in line)
    assert "exitCode=3" in die and "name=isotest-ev" in die and die.split()[1] == "container"
    only_die = iso("events", "--since", since, "--until", "0s", "--filter", "event=die",
                   "--filter", "container=isotest-ev", "--json", check=True)
    shaped = [json.loads(line) for line in only_die.stdout.splitlines()]
    assert len(shaped) == 1
    assert shaped[0]["Action"] == "die" and shaped[0]["Actor"]["ID"] == cid
    assert shaped[0]["Actor"]["Attributes"]["exitCode"] == "3"
    assert shaped[0]["Type"] == "container" and shaped[0]["from"] == "busybox"
    formatted = iso("events", "--since", "10m", "--until", "0s", "--filter",
                    f"container={cid[:12]}", "--format",
                    "{{.Action}}:{{.Actor.Attributes.exitCode}}", check=True)
    assert formatted.stdout.splitlines() == ["create:<no value>", "start:<no value>", "die:3",
                                             "destroy:<no value>"]
    # A window before the run has none of its events.
    assert cid not in iso("events", "--since", "1h", "--until", str(float(since) - 60),
                          check=True).stdout


def test_events_of_stop_and_kill(iso):
    since = str(time.time() - 1)
    iso("run", "-d", "--name", "isotest-evs", "--network", "none", "busybox", "sleep", "300",
        check=True)
    iso("stop", "-t", "1", "isotest-evs", check=True)  # PID 1 ignores SIGTERM: SIGKILL
    iso("run", "-d", "--name", "isotest-evk", "--network", "none", "busybox", "sh", "-c",
        "trap 'exit 10' USR1; while :; do sleep 1; done", check=True)
    iso("kill", "-s", "USR1", "isotest-evk", check=True)
    iso("wait", "isotest-evk", check=True)
    lines = iso("events", "--since", since, "--until", "0s", "--filter", "type=container",
                check=True).stdout.splitlines()
    stopped = [line for line in lines if "name=isotest-evs" in line]
    assert [line.split()[2] for line in stopped] == ["create", "start", "kill", "die", "stop"]
    assert "signal=15" in stopped[2] and "exitCode=137" in stopped[3]
    killed = [line for line in lines if "name=isotest-evk" in line]
    assert [line.split()[2] for line in killed] == ["create", "start", "kill", "die"]
    assert "signal=10" in killed[2] and "exitCode=10" in killed[3]


def test_follower_sees_a_run_and_ends_quietly_on_ctrl_c(iso):
    """Started before the run; --since covers a follower slow to start on a busy host."""
    since = str(time.time() - 1)
    follower = iso.popen("events", "--since", since, "--filter", "container=isotest-evf")
    try:
        iso("run", "--rm", "--name", "isotest-evf", "--network", "none", "busybox", "true",
            check=True)
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in follower.stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        while not any(" destroy " in line for line in seen):
            try:
                seen.append(lines.get(timeout=30))
            except queue.Empty:
                raise AssertionError(f"the follower saw only {seen}") from None
        assert [line.split()[2] for line in seen] == ["create", "start", "die", "destroy"]
        assert follower.poll() is None  # still following
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
        err = follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == -signal.SIGINT and err == ""  # docker 20.10's way out
    assert lines.empty()


def test_events_refuses_bad_arguments(iso):
    for args in (["--since", "yesterday"], ["--filter", "colour=red"],
                 ["--format", "x", "--json"]):
        result = iso("events", "--until", "0s", *args)
        assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr


def test_image_events_of_tag_and_rmi(iso):
    """Docker: `docker tag` gives an image "tag" event, `docker rmi` of a tag "untag", and
    "delete" once the image itself goes."""
    since = str(time.time() - 1)
    iso("tag", "busybox", "isotest/ev:1", check=True)
    iso("rmi", "isotest/ev:1", check=True)
    shaped = [json.loads(line) for line in iso(
        "events", "--since", since, "--until", "0s", "--filter", "type=image",
        "--filter", "image=isotest/ev:1", "--json",
        check=True).stdout.splitlines()]
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in shaped] == [
        ("tag", "isotest/ev:1"), ("untag", "isotest/ev:1")]
    assert shaped[0]["Actor"]["ID"].startswith("sha256:")


def _container_events(iso, since: str, name: str, *filters: str) -> list[dict]:
    listed = iso("events", "--since", since, "--until", "0s", "--filter", f"container={name}",
                 *filters, "--json", check=True)
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_exec_events_as_dockerd_names_them(iso):
    """Docker 20.10: `docker exec c sh -c 'exit 3'` gives exec_create and exec_start (the
    action carries the command: "exec_start: sh -c exit 3", "exec_start: true " for one
    word), then exec_die with exitCode, all with one execID; a command that cannot start gets
    no exec_die; `exec -d` gets its exec_die when the command ends; `--filter
    event=exec_start` matches by prefix."""
    since = str(time.time() - 1)
    iso("run", "-d", "--name", "isotest-exe", "--network", "none", "busybox", "sleep", "300",
        check=True)
    assert iso("exec", "isotest-exe", "sh", "-c", "exit 3").returncode == 3
    assert iso("exec", "isotest-exe", "true").returncode == 0
    assert iso("exec", "isotest-exe", "isotest-nosuchcmd").returncode == 126
    assert iso("exec", "-d", "isotest-exe", "sh", "-c", "sleep 0.2; exit 5").returncode == 0
    wait_for(lambda: any(e["Action"] == "exec_die" and
                         e["Actor"]["Attributes"]["exitCode"] == "5"
                         for e in _container_events(iso, since, "isotest-exe")),
             "the detached exec's exec_die", timeout=30)
    events = [e for e in _container_events(iso, since, "isotest-exe")
              if e["Action"].startswith("exec_")]
    assert [e["Action"] for e in events] == [
        "exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die",
        "exec_create: true ", "exec_start: true ", "exec_die",
        "exec_create: isotest-nosuchcmd ", "exec_start: isotest-nosuchcmd ",
        "exec_create: sh -c sleep 0.2; exit 5", "exec_start: sh -c sleep 0.2; exit 5",
        "exec_die"]
    ids = [e["Actor"]["Attributes"]["execID"] for e in events]
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids[0:3])) == len(set(ids[3:6])) == len(set(ids[8:11])) == 1
    assert len(set(ids)) == 4  # one per exec
    assert [e["Actor"]["Attributes"].get("exitCode") for e in events if
            e["Action"] == "exec_die"] == ["3", "0", "5"]
    assert all(e["Actor"]["Attributes"]["name"] == "isotest-exe" for e in events)
    assert list(events[2]["Actor"]["Attributes"]) == ["execID", "exitCode", "image", "name"]
    starts = _container_events(iso, since, "isotest-exe", "--filter", "event=exec_start")
    assert [e["Action"] for e in starts] == [e["Action"] for e in events
                                             if e["Action"].startswith("exec_start")]
    assert _container_events(iso, since, "isotest-exe", "--filter",
                             "event=exec_start: true") == []  # dockerd: exact, and it ends " "
    iso("rm", "-f", "isotest-exe", check=True)


def test_rm_force_of_a_running_container_kills_dies_then_destroys(iso):
    """Docker: `docker rm -f` of a running container: kill (signal=9), die (exitCode=137),
    destroy; the same when its --rm monitor races to remove it too (one destroy)."""
    since = str(time.time() - 1)
    for name, extra in (("isotest-evrm", ()), ("isotest-evrmrm", ("--rm",))):
        iso("run", "-d", *extra, "--name", name, "--network", "none", "busybox", "sleep", "300",
            check=True)
        assert iso("rm", "-f", name, check=True).stdout == f"{name}\n"
        events = _container_events(iso, since, name)
        assert [(e["Action"], e["Actor"]["Attributes"].get("signal"),
                 e["Actor"]["Attributes"].get("exitCode")) for e in events] == [
            ("create", None, None), ("start", None, None), ("kill", "9", None),
            ("die", None, "137"), ("destroy", None, None)], name
    assert iso("ps", "-aq").stdout == ""
