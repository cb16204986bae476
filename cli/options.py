"""The ``run`` command's options, declared once.

Both the click command (help, errors, completion) and the fast start path (entry.py, which must
not import click) are built from this table, so the two parsers cannot drift apart.
Each option: (flags, dest, kind, metavar, help); kind is "flag", "value" or "multi".
"""

from __future__ import annotations

RUN_OPTIONS: tuple[tuple[tuple[str, ...], str, str, str, str], ...] = (
    (("--rm",), "rm", "flag", "", "Remove the container when it exits."),
    (("-i", "--interactive"), "interactive", "flag", "", "Keep stdin open (relayed with -t)."),
    (("-t", "--tty"), "tty", "flag", "", "Allocate a pseudo-terminal."),
    (("-d", "--detach"), "detach", "flag", "", "Run in the background and print the id."),
    (("--name",), "name", "value", "NAME", "Assign a name to the container."),
    (("-e", "--env"), "env", "multi", "K=V", "Set an environment variable (repeatable)."),
    (("--env-file",), "env_file", "multi", "FILE",
     "Read KEY=VALUE lines (or KEY: the caller's value) from a file (repeatable)."),
    (("-v", "--volume"), "volume", "multi", "SRC:DST[:OPTS]",
     "Bind a host path: OPTS ro or rw, and a propagation, e.g. ro,rslave (repeatable)."),
    (("--mount",), "mount", "multi", "type=bind,...",
     "Bind mount: type=bind,source=,target=[,readonly][,bind-propagation=] (repeatable)."),
    (("-w", "--workdir"), "workdir", "value", "DIR", "Working directory inside the container."),
    (("-u", "--user"), "user", "value", "UID[:GID]", "User (name or id) to run as."),
    (("--hostname", "-h"), "hostname", "value", "NAME", "Container host name."),
    (("--read-only",), "read_only", "flag", "", "Mount the root file system read-only."),
    (("-m", "--memory"), "memory", "value", "BYTES", "Memory limit, e.g. 64m."),
    (("--memory-swap",), "memory_swap", "value", "BYTES",
     "Memory plus swap limit; -1 for unlimited swap."),
    (("--cpus",), "cpus", "value", "N", "Number of CPUs (CFS quota), e.g. 0.5."),
    (("-c", "--cpu-shares"), "cpu_shares", "value", "N", "Relative CPU weight (default 1024)."),
    (("--cpuset-cpus",), "cpuset_cpus", "value", "LIST", "CPUs to run on, e.g. 0-1."),
    (("--pids-limit",), "pids_limit", "value", "N", "Maximum number of processes (-1: none)."),
    (("--device-read-bps",), "device_read_bps", "multi", "DEV:RATE",
     "Limit reads from a block device, e.g. /dev/loop0:1mb (repeatable)."),
    (("--device-write-bps",), "device_write_bps", "multi", "DEV:RATE",
     "Limit writes to a block device, e.g. /dev/loop0:1mb (repeatable)."),
    (("--device-cgroup-rule",), "device_cgroup_rule", "multi", "RULE",
     "Add a rule to the device allow-list, e.g. 'b 7:0 rw' (repeatable)."),
    (("--network", "--net"), "network", "value", "NAME",
     "bridge (default), none, host or a network made by `isoinspect network create`."),
    (("-p", "--publish"), "publish", "multi", "[IP:]HOST:CTR[/udp]",
     "Publish a container port on the host (repeatable)."),
    (("--cap-add",), "cap_add", "multi", "CAP", "Add a Linux capability."),
    (("--cap-drop",), "cap_drop", "multi", "CAP", "Drop a Linux capability."),
    (("--entrypoint",), "entrypoint", "value", "CMD", "Override the image's entrypoint."),
    (("--userns",), "userns", "value", "MODE",
     "host (default) or remap: the container's root becomes an unprivileged host uid."),
    (("--security-opt",), "security_opt", "multi", "OPT",
     "seccomp=unconfined disables the default seccomp profile."),
    (("--pull",), "pull", "value", "POLICY",
     "missing (default): pull the image if it is not in the store; always; never."),
    (("--trace",), "trace", "flag", "", "Trace the start-up with eBPF; print its timeline."),
)

DEFAULTS = {dest: ([] if kind == "multi" else (False if kind == "flag" else None))
            for _, dest, kind, _, _ in RUN_OPTIONS}
DEFAULTS["network"] = "bridge"


class FastParseError(Exception):
    """The fast parser gave up; the click command reports the problem properly."""


def parse_run_args(args: list[str]) -> tuple[dict, str, list[str]]:
    """Parse ``run`` arguments without click: (options, image, command).

    Options stop at the image name, as in Docker. Anything unusual (help, an unknown option,
    a missing value) raises FastParseError so the caller falls back to click.
    """
    options, positionals = parse_options(RUN_OPTIONS, DEFAULTS, args, interspersed=False)
    if not positionals:
        raise FastParseError("missing image")
    return options, positionals[0], positionals[1:]


def parse_options(table: tuple, defaults: dict, args: list[str],
                  interspersed: bool) -> tuple[dict, list[str]]:
    """(options, positionals) of ``args`` by an option table (entries start with flags, dest,
    kind). Without ``interspersed`` options stop at the first positional (run, exec: the
    rest is the command); with it they may come anywhere before ``--``, as click allows."""
    by_flag = {flag: (entry[1], entry[2]) for entry in table for flag in entry[0]}
    options = {k: (list(v) if isinstance(v, list) else v) for k, v in defaults.items()}
    positionals: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            positionals += args[index + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                positionals += args[index:]
                break
            positionals.append(arg)
            index += 1
            continue
        flag, eq, inline = arg.partition("=")
        if flag not in by_flag and _short_flags(arg, by_flag):
            for letter in arg[1:]:  # -it = -i -t
                options[by_flag["-" + letter][0]] = True
            index += 1
            continue
        if flag not in by_flag:
            raise FastParseError(arg)
        dest, kind = by_flag[flag]
        if kind == "flag":
            if eq:
                raise FastParseError(arg)
            options[dest] = True
            index += 1
            continue
        if eq:
            value = inline
            index += 1
        elif index + 1 < len(args):
            value = args[index + 1]
            index += 2
        else:
            raise FastParseError(arg)
        if kind == "multi":
            options[dest].append(value)
        else:
            options[dest] = value
    return options, positionals


def _short_flags(arg: str, by_flag: dict) -> bool:
    """``arg`` is several one-letter boolean flags written together (``-it``)."""
    return (len(arg) > 2 and arg[1] != "-" and "=" not in arg
            and all(by_flag.get("-" + letter, ("", ""))[1] == "flag" for letter in arg[1:]))
