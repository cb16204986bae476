"""Run a command under a tracer: the child waits at a gate until its pid is watched, so its
whole life (even 1 ms) is traced, then the perf buffer is polled until it exits."""

from __future__ import annotations

import os


def run_traced(tracer, argv: list[str], poll_ms: int = 50) -> int:
    """Run ``argv`` with its pid tree watched; return its exit code (128+signal if killed)."""
    gate_r, gate_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: wait for the go, then exec
        try:
            os.close(gate_w)
            os.read(gate_r, 1)
            os.close(gate_r)
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"isoinspect trace: {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
        os._exit(127)
    os.close(gate_r)
    try:
        tracer.watch_pid(pid)
    finally:
        os.write(gate_w, b"g")
        os.close(gate_w)
    status = 0
    try:
        while True:
            tracer.poll(poll_ms)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
    except KeyboardInterrupt:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    tracer.drain()
    tracer.unwatch_pid(pid)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
