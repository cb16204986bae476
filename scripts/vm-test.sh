#!/bin/sh
# The cgroup v2 guest tests, as CI runs them: QEMU + a Debian kernel with pure cgroup v2.
# Kernel and initramfs are cached in $ISOINSPECT_VM_CACHE (default /var/cache/isoinspect/vm,
# ~75 MB): cache that directory between CI runs to skip the 70 MB download (~5 s anyway).
set -eu
cd "$(dirname "$0")/.."
missing=""
for pkg in qemu-system-x86 busybox-static; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    apt-get install -y --no-install-recommends $missing
fi
PY=${PYTHON:-.venv/bin/python}
"$PY" -m isoinspect vm prepare --disk 0
exec "$PY" -m pytest -q tests/integration/test_vm_harness.py tests/integration/test_vm_cgroup_v2.py "$@"
