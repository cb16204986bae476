"""What ``isoinspect run`` does once its arguments are parsed (shared by click and fast path)."""

from __future__ import annotations

import sys

from isoinspect.runtime.errors import ImageNotFound, UsageError


def container_spec(options: dict, image: str, command: list[str]):
    """The ContainerSpec the options describe (run's and create's), or a one-line refusal."""
    from isoinspect.runtime.spec import ContainerSpec

    security = options.get("security_opt") or []
    for item in security:
        if item not in ("seccomp=unconfined", "no-new-privileges", "no-new-privileges:true"):
            raise UsageError(f"invalid --security-opt {item!r}")
    entrypoint = options.get("entrypoint")
    userns_mode = options.get("userns") or "host"
    if userns_mode not in ("host", "remap"):
        raise UsageError(f"invalid value {userns_mode!r} for --userns: expected host or remap")
    return ContainerSpec.from_flags(
        image, list(command), memory=options["memory"], memory_swap=options["memory_swap"],
        cpus=options["cpus"], cpu_shares=options["cpu_shares"],
        cpuset_cpus=options["cpuset_cpus"], pids_limit=options["pids_limit"],
        device_read_bps=options.get("device_read_bps") or [],
        device_write_bps=options.get("device_write_bps") or [],
        device_cgroup_rules=options.get("device_cgroup_rule") or [],
        env=options["env"], user=options["user"], name=options["name"],
        workdir=options["workdir"], hostname=options["hostname"],
        read_only=options["read_only"], network=options["network"] or "bridge",
        remove=options["rm"], detach=bool(options.get("detach")), cap_add=options["cap_add"],
        cap_drop=options["cap_drop"], seccomp="seccomp=unconfined" not in security,
        entrypoint=[entrypoint] if entrypoint else None, userns=userns_mode == "remap",
        publish=options.get("publish") or [], volumes=options.get("volume") or [],
        mounts=options.get("mount") or [], env_files=options.get("env_file") or [],
        tty=bool(options.get("tty")), interactive=bool(options.get("interactive")))


def with_image(runtime, image: str, options: dict, action: "callable") -> object:
    """``action()`` (which creates a container of ``image``) under Docker's --pull policy:
    always pulls first; missing pulls when action's own image lookup misses, then tries again;
    never turns the miss into Docker's "No such image"."""
    policy = options.get("pull") or "missing"
    if policy != "missing":
        from isoinspect.runtime.run_pull import check_policy, pull_image

        if check_policy(policy) == "always":
            pull_image(runtime.roots, image)
    try:
        return action()
    except ImageNotFound as exc:  # raised by the lookup create does: nothing was made yet
        if exc.ref != image:
            raise
        from isoinspect.runtime.run_pull import pull_missing

        pull_missing(runtime.roots, image, policy)
        return action()


def execute_run(root: str | None, options: dict, image: str, command: list[str]) -> int:
    """Run a container as the options say; return the exit code for the CLI."""
    from isoinspect.runtime.runtime import Runtime

    if options.get("tty"):
        from isoinspect.runtime.terminal import check_input
        check_input(True, bool(options.get("interactive")))
    spec = container_spec(options, image, command)
    runtime = Runtime(root)
    return with_image(runtime, image, options, lambda: _start(runtime, spec, options))


def execute_create(root: str | None, options: dict, image: str, command: list[str]) -> int:
    """``create``: a container made as run would make it, left "created" for ``start``;
    prints its id."""
    from isoinspect.runtime.runtime import Runtime

    spec = container_spec(options, image, command)
    runtime = Runtime(root)
    record = with_image(runtime, image, options, lambda: runtime.create(spec))
    runtime.containers.keep_created(record.id)
    sys.stdout.write(record.id + "\n")
    return 0


def _start(runtime, spec, options: dict) -> int:
    """Create and start (foreground, detached or traced); the exit code for the CLI."""
    if options.get("trace"):
        if spec.detach or spec.tty:
            raise UsageError("--trace needs a foreground container without -t or --detach")
        from isoinspect.inspector.runtime_adapter import run_with_trace  # BCC only with --trace

        runtime.images.resolve(spec.image)  # a missing image is pulled before tracing starts
        return run_with_trace(runtime, spec)
    if spec.detach:
        if spec.tty:
            raise UsageError("-t with --detach is not supported: use exec -it to attach")
        from isoinspect.runtime.detach import run_detached

        record = run_detached(runtime, spec)
        sys.stdout.write(record.id + "\n")
        return 0
    return runtime.run(spec)
