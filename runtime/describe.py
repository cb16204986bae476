"""``inspect`` output: a container's record shaped like ``docker inspect``'s main fields."""

from __future__ import annotations

import time

from isoinspect.runtime import process
from isoinspect.runtime.container_state import ContainerState, Status
from isoinspect.runtime.runtime import Runtime


def _iso(timestamp: float) -> str:
    if not timestamp:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + \
        f".{int(timestamp % 1 * 1e9):09d}Z"


def describe_container(runtime: Runtime, record: ContainerState) -> dict:
    """Id, name, state, config, host config (limits) and where its files and cgroup are."""
    spec = record.spec
    running = record.status == Status.RUNNING and process.is_alive(record.pid,
                                                                   record.pid_ticks)
    manager = runtime.cgroup(record)
    stats = manager.stats().to_dict() if running else {}
    paused = running and manager.frozen()
    return {
        "Id": record.id,
        "Name": "/" + record.name,
        "Created": _iso(record.created),
        "Path": record.argv[0],
        "Args": record.argv[1:],
        "Image": record.image_id,
        "State": {
            "Status": "paused" if paused else record.status.docker, "Running": running,
            "Paused": paused, "Pid": record.pid if running else 0,
            "ExitCode": record.exit_code or 0, "Error": record.error,
            "StartedAt": _iso(record.started_at), "FinishedAt": _iso(record.finished_at),
        },
        "Config": {
            "Hostname": record.hostname, "User": record.user, "Env": record.env,
            "Cmd": spec["command"], "Image": record.image, "WorkingDir": record.workdir,
            "Entrypoint": spec["entrypoint"], "Labels": spec["labels"],
            "Tty": bool(spec.get("tty")), "OpenStdin": bool(spec.get("interactive")),
        },
        "Mounts": [{"Type": "bind", "Source": source, "Destination": destination, "Mode": "",
                    "RW": not readonly, "Propagation": propagation}
                   for source, destination, readonly, propagation, _ in spec.get("mounts") or ()],
        "HostConfig": {
            "Memory": spec["memory"] or 0, "MemorySwap": spec["memory_swap"] or 0,
            "NanoCpus": int((spec["cpu_quota_us"] or 0) * 1e9 / spec["cpu_period_us"]),
            "CpuShares": spec["cpu_shares"] or 0, "CpusetCpus": spec["cpuset_cpus"] or "",
            "PidsLimit": spec["pids_limit"], "NetworkMode": spec["network"],
            "ReadonlyRootfs": spec["read_only"], "AutoRemove": spec["remove"],
            "CapAdd": spec["cap_add"], "CapDrop": spec["cap_drop"],
        },
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(record.lower),
            "UpperDir": runtime.containers.dir(record.id, "upper"),
            "WorkDir": runtime.containers.dir(record.id, "work")}},
        "NetworkSettings": network_settings(record, running),
        "LogPath": record.log,
        "CgroupPath": record.cgroup,
        "Stats": stats,
    }


def network_settings(record: ContainerState, running: bool) -> dict:
    """Docker's NetworkSettings: the address, gateway and ports of a running container."""
    net = record.network if running else None
    if not net:
        return {"IPAddress": "", "Gateway": "", "IPPrefixLen": 0, "MacAddress": "",
                "Ports": {}, "SandboxKey": "", "Networks": {}}
    ports = {f"{p['container_port']}/{p['proto']}": [{"HostIp": p["host_ip"],
                                                       "HostPort": str(p["host_port"])}]
             for p in net["ports"]}
    endpoint = {"NetworkID": net["id"], "IPAddress": net["ip"], "Gateway": net["gateway"],
                "IPPrefixLen": net["prefixlen"], "MacAddress": net["mac"]}
    return {"IPAddress": net["ip"], "Gateway": net["gateway"], "IPPrefixLen": net["prefixlen"],
            "MacAddress": net["mac"], "Ports": ports, "SandboxKey": net["netns"],
            "Networks": {net["name"]: endpoint}}
