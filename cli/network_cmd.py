"""``isoinspect network create|ls|inspect|rm``: user-defined bridge networks (Docker's verbs)."""

from __future__ import annotations

import json
import time

import click

from isoinspect.cli.listing import emit, format_options


@click.group("network")
def network() -> None:
    """Manage networks: containers on one network reach each other by name."""


def _require_root() -> None:
    from isoinspect.runtime.runtime import require_root

    require_root()


@network.command("create")
@click.option("--subnet", metavar="CIDR", help="IPv4 subnet, e.g. 10.214.7.0/24 (default: "
              "the first free 10.214.N.0/24).")
@click.argument("name")
def create(name: str, subnet: str | None) -> None:
    """Create a network (its bridge is made when the first container joins)."""
    _require_root()
    from isoinspect.runtime.network.store import NetworkStore

    click.echo(NetworkStore().create(name, subnet)["id"])


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only print names.")
@format_options
def ls(quiet: bool, fmt: str | None, as_json: bool) -> None:
    """List networks."""
    _require_root()
    from isoinspect.runtime.network.store import NetworkStore

    networks = NetworkStore().list()
    if quiet:
        for item in networks:
            click.echo(item["name"])
        return
    rows = [{"ID": n["id"][:12], "Name": n["name"], "Driver": "bridge", "Scope": "local",
             "Subnet": n["subnet"], "Bridge": n["bridge"]} for n in networks]
    emit(rows, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnet}}\t{{.Bridge}}",
         {"ID": "NETWORK ID"}, fmt, as_json)


@network.command("inspect")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Show networks as JSON, with their containers' addresses (docker network inspect)."""
    _require_root()
    from isoinspect.runtime.network.hook import endpoints
    from isoinspect.runtime.network.store import NetworkStore

    store = NetworkStore()
    shown = []
    for name in names:
        item = store.get(name)
        containers = {
            holder["id"]: {"Name": holder["name"], "IPv4Address":
                           f"{address}/{item['subnet'].split('/')[1]}"}
            for address, holder in endpoints(item).items()}
        shown.append({
            "Name": item["name"], "Id": item["id"], "Driver": "bridge",
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item["created"])),
            "IPAM": {"Config": [{"Subnet": item["subnet"], "Gateway": item["gateway"]}]},
            "Options": {"com.docker.network.bridge.name": item["bridge"]},
            "Containers": containers})
    click.echo(json.dumps(shown, indent=4))


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...]) -> None:
    """Remove networks (refused while a running container uses one)."""
    _require_root()
    from isoinspect.runtime.network.hook import remove_network

    for name in names:
        remove_network(name)
        click.echo(name)


commands = [network]


def _register_bench() -> None:
    """``isoinspect bench network``, added to the bench group without editing its module."""
    try:
        from isoinspect.cli.bench_cmd import bench
    except ImportError:
        return

    @bench.command("network")
    @click.option("--runs", type=int, default=30, show_default=True,
                  help="Measured runs per configuration.")
    @click.option("--warmup", type=int, default=3, show_default=True,
                  help="Unmeasured runs per configuration first.")
    @click.option("--rounds", type=int, default=8, show_default=True,
                  help="Batches per concurrency level.")
    @click.option("--settle", type=float, default=0.5, show_default=True,
                  help="Seconds of rest before each batch, so one runtime's teardown does "
                       "not land in another's batch.")
    @click.option("--no-docker", is_flag=True, help="Measure isoinspect only.")
    @click.option("--results", metavar="DIR",
                  help="Where the run record goes (default $ISOINSPECT_RESULTS).")
    def bench_network(runs: int, warmup: int, rounds: int, settle: float, no_docker: bool,
                      results: str | None) -> None:
        """Bridge networking's cost per start, isoinspect vs Docker, 1-8 at once."""
        from isoinspect.benches.network_bench import main

        argv = ["--runs", str(runs), "--warmup", str(warmup), "--rounds", str(rounds),
                "--settle", str(settle)]
        argv += ["--no-docker"] * no_docker + (["--results", results] if results else [])
        raise SystemExit(main(argv))


_register_bench()
