"""``isoinspect-runc``: the OCI runtime command line in runc's dialect, for containerd/Docker.

    isoinspect-runc [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup]
                    COMMAND ...
    create --bundle B [--pid-file F] [--console-socket S] ID     start ID     state ID
    kill [--all] ID [SIGNAL]     delete [--force] ID     pause ID     resume ID
    exec [--process F] [--detach] [--pid-file F] [--console-socket S] [--tty] [--cwd D]
         [--env K=V] [--user UID[:GID]] [--additional-gids G] [--cap CAP] [--no-new-privs]
         [--ignore-paused] [--preserve-fds N] ID [ARGS...]
    ps [--format table|json] ID     list     run --bundle B ID     features     --version
    update [-r FILE|-] [--memory M] [--memory-swap M] [--memory-reservation M] [--cpu-quota N]
           [--cpu-period N] [--cpu-share N] [--cpuset-cpus L] [--cpuset-mems L]
           [--pids-limit N] [--blkio-weight N] [--cpu-rt-period N] [--cpu-rt-runtime N] ID
    write-launcher VENV   (replace pip's script by a faster `python -I -S` one)

create, start, state, kill and delete (containerd's shim runs them on every container) are
parsed by cli/oci_args.py and import neither argparse nor json nor re (runtime/json_lite.py);
every other command line goes to argparse (never click). ``--systemd-cgroup`` is accepted and ignored
(cgroupfs paths are used; a systemd-style "slice:prefix:name" cgroupsPath is mapped to
"slice/prefix-name.scope"). ``--debug``, ``--criu``, ``--rootless`` and create's
``--no-pivot`` and ``--no-new-keyring`` are accepted and ignored too (``--preserve-fds N`` keeps
fds 3..3+N-1 open in the container). Errors go
to stderr and, with --log, to the log file (JSON lines {"level","msg","time"} with
--log-format json, which containerd's shim reads back).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse only for the commands cli/oci_args.py leaves to it
    import argparse

VERSION = "0.1.0"
OCI_SPEC_VERSION = "1.0.2"


def _parser() -> argparse.ArgumentParser:
    import argparse
    parser = argparse.ArgumentParser(prog="isoinspect-runc", add_help=True)
    parser.add_argument("--root", default=None)
    parser.add_argument("--log", default=None)
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    parser.add_argument("--systemd-cgroup", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--criu", default=None)
    parser.add_argument("--rootless", default=None)
    parser.add_argument("-v", "--version", action="store_true")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("create")
    _create_args(p)
    p = sub.add_parser("run")
    _create_args(p)
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--keep", action="store_true")
    p = sub.add_parser("start")
    p.add_argument("id")
    p = sub.add_parser("state")
    p.add_argument("id")
    sub.add_parser("pause").add_argument("id")
    sub.add_parser("resume").add_argument("id")
    p = sub.add_parser("kill")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p = sub.add_parser("delete")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("id")
    p = sub.add_parser("exec")
    p.add_argument("-p", "--process", default=None)
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--console-socket", default=None)
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--cwd", default=None)
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default=None)
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("-c", "--cap", action="append", default=[])
    p.add_argument("-g", "--additional-gids", action="append", default=[])
    p.add_argument("--ignore-paused", action="store_true")
    p.add_argument("id")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("ps")
    p.add_argument("-f", "--format", default="table", choices=("table", "json"))
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    sub.add_parser("list").add_argument("-q", "--quiet", action="store_true")
    sub.add_parser("features")
    from isoinspect.runtime.oci.update import add_arguments as update_arguments
    update_arguments(sub.add_parser("update"))
    return parser


def _create_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-b", "--bundle", default=".")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--console-socket", default=None)
    p.add_argument("--no-pivot", action="store_true")
    p.add_argument("--no-new-keyring", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("id")


def _log(args, level: str, message: str) -> None:
    if not getattr(args, "log", None):
        return
    import time
    from isoinspect.runtime.json_lite import dumps
    try:
        with open(args.log, "a") as handle:
            if args.log_format == "json":
                handle.write(dumps({"level": level, "msg": message,
                                         "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())}) + "\n")
            else:
                handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                             f"{level}: {message}\n")
    except OSError:
        pass


def features() -> dict:
    from isoinspect.runtime.oci.features import features as supported
    return supported(OCI_SPEC_VERSION, VERSION)


def _process_from_args(args) -> dict:
    """The exec'd process: --process FILE or the bundle's process, with the flags applied."""
    from isoinspect.runtime.oci import exec_ as ex
    flags = ex.ExecFlags(cwd=args.cwd, env=list(args.env), user=args.user, tty=args.tty,
                         caps=list(args.cap), additional_gids=list(args.additional_gids),
                         no_new_privs=args.no_new_privs)
    if not args.process:  # the bundle's process with the flags' overrides (runc's way)
        if not args.args:
            raise SystemExit("isoinspect-runc exec: give --process FILE or a command")
        from isoinspect.runtime.oci.container import Store
        return ex.process_from_bundle(Store(args.root), args.id, args.args, flags)
    return ex.apply_flags(ex.load_process(args.process), flags)


def dispatch(args) -> int:
    from isoinspect.runtime.oci import container as oc
    store = oc.Store(args.root)
    cmd = args.command
    if cmd == "create":
        oc.create(store, args.id, args.bundle, args.pid_file, args.console_socket,
                  args.preserve_fds)
    elif cmd == "run":
        return _run(store, args)
    elif cmd == "start":
        oc.start(store, args.id)
    elif cmd == "state":
        from isoinspect.runtime.json_lite import dumps
        print(dumps(oc.state_of(store, args.id), indent=2))
    elif cmd == "pause":
        oc.pause(store, args.id)
    elif cmd == "resume":
        oc.resume(store, args.id)
    elif cmd == "kill":
        from isoinspect.runtime.linux.signals import parse_signal
        sig = parse_signal(args.signal)
        if sig is None:
            raise oc.OciError(f"unknown signal {args.signal!r}")
        oc.kill(store, args.id, sig, args.all)
    elif cmd == "delete":
        oc.delete(store, args.id, args.force)
    elif cmd == "exec":
        from isoinspect.runtime.oci import exec_ as ex
        return ex.execute(store, args.id, _process_from_args(args), args.detach,
                          args.pid_file, args.console_socket, args.ignore_paused)
    elif cmd == "ps":
        pids = oc.ps(store, args.id)
        if args.format == "json":
            import json
            print(json.dumps(pids))
        else:
            import subprocess
            out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True,
                                 text=True).stdout.splitlines()
            if out:
                print(out[0])
                col = out[0].split().index("PID") if "PID" in out[0].split() else 1
                for line in out[1:]:
                    fields = line.split()
                    if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                        print(line)
    elif cmd == "list":
        states = oc.list_states(store)
        if args.quiet:
            for s in states:
                print(s["id"])
        else:
            print(f"{'ID':<24} {'PID':<8} {'STATUS':<10} BUNDLE")
            for s in states:
                print(f"{s['id']:<24} {s['pid']:<8} {s['status']:<10} {s['bundle']}")
    elif cmd == "update":
        from isoinspect.runtime.oci import update as up
        change, warnings = up.from_args(args)
        for warning in warnings + up.update(store, args.id, change):
            oc._warn(warning)
    elif cmd == "features":
        import json
        print(json.dumps(features(), indent=2))
    else:
        _parser().print_help(sys.stderr)
        return 1
    return 0


def _run(store, args) -> int:
    """create + start + wait (init is this process's child) + delete, like `runc run`."""
    from isoinspect.runtime import process
    from isoinspect.runtime.oci import container as oc
    state = oc.create(store, args.id, args.bundle, args.pid_file, args.console_socket)
    try:
        oc.start(store, args.id)
        if args.detach:
            return 0
        while True:
            try:
                _, status = os.waitpid(state.pid, 0)
                return process.exit_code_from_status(status)
            except InterruptedError:
                continue
    finally:
        if not args.detach and not args.keep:
            oc.delete(store, args.id, force=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "write-launcher":
        from isoinspect.cli.launcher import write_launcher

        print(write_launcher(argv[1]))
        return 0
    from isoinspect.cli.oci_args import parse
    args = parse(argv) or _parser().parse_args(argv)
    if args.version:
        print(f"isoinspect-runc version {VERSION}\nspec: {OCI_SPEC_VERSION}")
        return 0
    from isoinspect.runtime.errors import IsoinspectError, report_error
    try:
        code = dispatch(args)
    except (IsoinspectError, OSError, ValueError) as exc:
        message = str(exc)
        if isinstance(exc, OSError):
            message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        _log(args, "error", message)
        # runc's codes: 1 for any failure (255 for `exec`'s); 126/127 when the container's
        # command could not run
        code = getattr(exc, "exit_code", 1)
        failed = 255 if args.command == "exec" else 1
        return report_error(message, "isoinspect-runc", code if code in (126, 127) else failed)
    from isoinspect.runtime.oci import container as oc
    for warning in oc.warnings():
        _log(args, "warning", warning)
        print(f"isoinspect-runc: warning: {warning}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
