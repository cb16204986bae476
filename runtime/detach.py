"""Detached containers (``run -d``, ``start``): a small monitor process outlives the CLI.

The CLI forks a monitor in its own session; the monitor starts the container with its stdout
and stderr on two pipes, tells the CLI (over a pipe) that the command runs or why it failed,
then copies both pipes into containers/<id>/container-frames.log as timestamped records
(runtime/log_format.py), waits for the container, records its exit code and, with ``--rm``,
removes it. This is the role conmon or containerd-shim play for other runtimes.

Once the CLI has its answer, the monitor execs the static C program runtime/monitor.c (built
once, runtime/monitor_program.py): the same process, so still the container's parent, holding
the same lock, writing the same records, in a few hundred KiB instead of Python's ~4.5 MiB. It
execs the Python teardown (runtime/monitor_exit.py) when PID 1 exits. Without gcc to build it
the Python monitor below does all of it, as before.
"""

from __future__ import annotations

import os

from isoinspect.runtime.container_state import ContainerState
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.records import LOG_FILE
from isoinspect.runtime.network import NetworkHook
from isoinspect.runtime.runtime import Runtime, Started
from isoinspect.runtime.spec import ContainerSpec


def run_detached(runtime: Runtime, spec: ContainerSpec) -> ContainerState:
    """Create and start a container in the background; return its record once it runs."""
    return start_detached(runtime, runtime.create(spec))


def start_detached(runtime: Runtime, record: ContainerState) -> ContainerState:
    """Start a created container in the background (its monitor forked here); return its
    record once it runs. Its output is appended to its log, kept across starts."""
    log_path = runtime.containers.dir(record.id, LOG_FILE)
    record = record.replace(log=log_path)
    runtime.containers.save(record)
    remove = bool(record.spec.get("remove"))
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    monitor = os.fork()
    if monitor == 0:
        _monitor(runtime, record, remove, log_path, write_fd)  # never returns
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        reply = pipe.read()
    # The monitor double-forks nothing: it stays our child until we exit, then init adopts it.
    if reply.startswith(b"ok"):
        return runtime.containers.load(record.id)
    code_text, _, message = reply.partition(b" ")
    try:
        code = int(code_text)
    except ValueError:
        code, message = 125, reply or b"the monitor died before the container started"
    if remove:
        try:
            runtime.remove(record.id, force=True)
        except IsoinspectError:
            pass
    raise IsoinspectError(message.decode(errors="replace"), exit_code=code)


def _monitor(runtime: Runtime, record: ContainerState, remove: bool, log_path: str,
             write_fd: int) -> None:
    code = 0
    try:
        os.setsid()
        devnull = os.open("/dev/null", os.O_RDWR)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            started = runtime.start(record, stdio=(0, out_w, err_w), die_with_parent=False)
        except IsoinspectError as exc:
            os.write(write_fd, f"{exc.exit_code} {exc}".encode())
            os._exit(0)
        except Exception as exc:  # a bug: said in one line rather than "the monitor died"
            os.write(write_fd, f"125 internal error in the monitor: {type(exc).__name__}: "
                               f"{exc}".encode())
            os._exit(1)
        finally:
            os.close(out_w)
            os.close(err_w)
        os.write(write_fd, b"ok")
        os.close(write_fd)
        _exec_c_monitor(runtime, started, remove, out_r, err_r, log_fd)  # if it can be built
        from isoinspect.runtime.log_copier import copy_streams  # after the CLI has returned

        try:
            exit_fd = os.pidfd_open(started.pid)
        except OSError:  # before Linux 5.3: wait for the pipes alone
            exit_fd = -1
        copy_streams(out_r, err_r, log_fd, exit_fd)
        runtime.wait_child(started)
        if remove:
            runtime.remove(record.id, force=True)
    except BaseException:
        code = 1
    os._exit(code)


def _exec_c_monitor(runtime: Runtime, started: Started, remove: bool, out_r: int, err_r: int,
                    log_fd: int) -> None:
    """Become the C monitor (runtime/monitor.c): still the parent of the container's PID 1,
    holding the monitor lock, copying the pipes into the log, and exec'ing the Python
    teardown (runtime/monitor_exit.py) once PID 1 exits; ~0.3 MiB instead of Python's ~4.5.
    Returns only if that cannot be done (no gcc to build it, a hook living in this process
    alone): the Python monitor then does the same."""
    if any(not isinstance(hook, NetworkHook) for hook in runtime.prestart_hooks):
        return
    from isoinspect.runtime.monitor_exit import cleanup_argv
    from isoinspect.runtime.monitor_program import monitor_binary

    binary = monitor_binary()
    if binary is None:
        return
    cid = started.record.id
    lock_fd = runtime.monitor_lock_fd(cid)
    for fd in (out_r, err_r, log_fd, lock_fd):
        os.set_inheritable(fd, True)
    argv = [binary, "--out", str(out_r), "--err", str(err_r), "--log", str(log_fd),
            "--pid", str(started.pid), "--", *cleanup_argv(runtime, cid, lock_fd, remove)]
    try:
        os.execv(binary, argv)
    except OSError:
        for fd in (out_r, err_r, log_fd, lock_fd):
            os.set_inheritable(fd, False)

