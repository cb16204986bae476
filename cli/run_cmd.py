"""What ``isoinspect run`` does once its arguments are parsed (shared by click and fast path)."""

from __future__ import annotations

import os
import sys

from isoinspect.runtime.errors import IsoinspectError


def execute_run(root: str | None, options: dict, image: str, command: list[str]) -> int:
    """Run a container as the options say; return the exit code for the CLI."""
    from isoinspect.runtime.runtime import Runtime
    from isoinspect.runtime.spec import ContainerSpec

    security = options.get("security_opt") or []
    for item in security:
        if item not in ("seccomp=unconfined", "no-new-privileges", "no-new-privileges:true"):
            raise IsoinspectError(f"invalid --security-opt {item!r}")
    entrypoint = options.get("entrypoint")
    userns_mode = options.get("userns") or "host"
    if userns_mode not in ("host", "remap"):
        raise IsoinspectError(f"invalid value {userns_mode!r} for --userns: expected host or "
                              "remap")
    spec = ContainerSpec.from_flags(
        image, list(command), memory=options["memory"], memory_swap=options["memory_swap"],
        cpus=options["cpus"], cpu_shares=options["cpu_shares"],
        cpuset_cpus=options["cpuset_cpus"], pids_limit=options["pids_limit"],
        device_read_bps=options.get("device_read_bps") or [],
        device_write_bps=options.get("device_write_bps") or [],
        device_cgroup_rules=options.get("device_cgroup_rule") or [],
        env=options["env"], user=options["user"], name=options["name"],
        workdir=options["workdir"], hostname=options["hostname"],
        read_only=options["read_only"], network=options["network"] or "bridge",
        remove=options["rm"], detach=options["detach"], cap_add=options["cap_add"],
        cap_drop=options["cap_drop"], seccomp="seccomp=unconfined" not in security,
        entrypoint=[entrypoint] if entrypoint else None, userns=userns_mode == "remap",
        publish=options.get("publish") or [])
    runtime = Runtime(root)
    if options.get("trace"):
        if spec.detach:
            raise IsoinspectError("--trace needs a foreground container (no --detach)")
        from isoinspect.inspector.runtime_adapter import run_with_trace  # BCC only with --trace

        return run_with_trace(runtime, spec)
    if spec.detach:
        from isoinspect.runtime.detach import run_detached

        record = run_detached(runtime, spec)
        sys.stdout.write(record.id + "\n")
        return 0
    return runtime.run(spec)


def report_error(exc: IsoinspectError) -> int:
    """One line on stderr, no traceback; return the exit code."""
    os.write(2, f"isoinspect: {exc}\n".encode(errors="replace"))
    return exc.exit_code


def debug_enabled() -> bool:
    """ISOINSPECT_DEBUG=1/yes/true shows tracebacks; unset, empty, 0, false, no, off do not."""
    value = os.environ.get("ISOINSPECT_DEBUG", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def report_unexpected(exc: Exception) -> int:
    """An exception that is not an IsoinspectError: re-raised with ISOINSPECT_DEBUG on,
    otherwise one line (a full disk named as such, anything else as an internal error)."""
    if debug_enabled():
        raise exc
    from isoinspect.runtime.errors import out_of_space

    full = out_of_space(exc, "the state directory")
    if full is not None:
        return report_error(full)
    os.write(2, f"isoinspect: internal error: {type(exc).__name__}: {exc} "
                "(set ISOINSPECT_DEBUG=1 for details)\n".encode(errors="replace"))
    return 125
