"""OCI hooks: each hook is {path, args, env, timeout}; the container's state JSON on stdin.

prestart and createRuntime run in the runtime's namespaces once the container's namespaces
exist (in ``create``), createContainer inside the container's mount namespace before
pivot_root, startContainer in the container after ``start`` before its command's exec,
poststart after ``start`` released the container, poststop in ``delete``. A failing prestart,
createRuntime, createContainer or startContainer hook fails the container; poststart and
poststop failures are logged only, as the spec says.
"""

from __future__ import annotations

import os

from isoinspect.runtime.json_lite import dumps


class HookError(Exception):
    pass


def run_hook(hook: dict, state: dict) -> None:
    import subprocess

    args = hook.get("args") or [hook["path"]]
    env = {}
    for item in hook.get("env") or ():
        key, _, value = item.partition("=")
        env[key] = value
    timeout = hook.get("timeout")
    try:
        result = subprocess.run(args, executable=hook["path"], env=env,
                                input=dumps(state).encode(), capture_output=True,
                                timeout=timeout if timeout and timeout > 0 else None,
                                close_fds=True)
    except subprocess.TimeoutExpired:
        raise HookError(f"hook {hook['path']} timed out after {timeout}s") from None
    except OSError as exc:
        raise HookError(f"hook {hook['path']}: {exc.strerror or exc}") from None
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise HookError(f"hook {hook['path']} {args[1:]} exited {result.returncode}"
                        + (f": {output[-500:]}" if output else ""))


def run_hooks(hooks: list[dict], state: dict, kind: str) -> None:
    for hook in hooks:
        try:
            run_hook(hook, state)
        except HookError as exc:
            raise HookError(f"{kind} {exc}") from None


def run_hooks_in_child(hooks: list[dict], state: dict) -> None:
    """From the container's init (no subprocess module after a raw clone): fork, exec, wait."""
    state = dict(state)
    try:
        state["pid"] = int(os.readlink("/proc/self"))  # the host's /proc: the host pid
    except (OSError, ValueError):
        pass
    data = dumps(state).encode()
    for hook in hooks:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(write_fd)
                os.dup2(read_fd, 0)
                env = {}
                for item in hook.get("env") or ():
                    key, _, value = item.partition("=")
                    env[key] = value
                os.execve(hook["path"], hook.get("args") or [hook["path"]], env)
            finally:
                os._exit(127)
        os.close(read_fd)
        try:
            os.write(write_fd, data)
        except OSError:
            pass
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise HookError(f"hook {hook['path']} failed (wait status {status})")
