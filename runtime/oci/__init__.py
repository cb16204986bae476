"""OCI runtime support: a runc-compatible command line over the isoinspect runtime core.

config (load + named checks) -> translate (spec -> child plan) -> container (create/start/
state/kill/delete/exec/ps) with state kept in one directory per container (state.json and the
exec FIFO that `start` writes to). ``setup`` runs inside the container's init (mounts, devices,
masked paths, sysctl); ``hooks`` runs the spec's hooks; ``console`` hands a pty master to a
console socket. A spec's seccomp section is compiled by ``linux.seccomp_profile``, the compiler
of the default profile.
"""
