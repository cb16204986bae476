#!/usr/bin/env bash
# Load a busybox image into the local dockerd without Docker Hub: build a rootfs tarball from
# Debian's busybox-static (/bin/busybox + one symlink per applet) and `docker import` it.
#
#   scripts/docker-busybox.sh [IMAGE]        (default isoinspect-busybox:latest)
#
# Idempotent: the image carries a label with the sha256 of /bin/busybox; when the image exists
# with the same label nothing is done. Needs a running dockerd (scripts/start-dockerd.sh).
# Then e.g.: docker run --rm --network none isoinspect-busybox:latest /bin/true
set -euo pipefail

IMAGE="${1:-isoinspect-busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
if [ -z "${DOCKER:-}" ]; then
    # Prefer Debian's CLI (same release as the daemon) over any other docker on PATH.
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER="$(command -v docker)"; fi
fi
LABEL=org.isoinspect.busybox.sha256

[ -x "$BUSYBOX" ] || { echo "docker-busybox: ERROR: $BUSYBOX missing (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox would need libc in the image.
if ! file -b "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' && command -v file >/dev/null; then
    echo "docker-busybox: ERROR: $BUSYBOX is not statically linked (install busybox-static)" >&2
    exit 1
fi

SUM="$(sha256sum "$BUSYBOX" | cut -d' ' -f1)"
HAVE="$("$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "$HAVE" = "$SUM" ]; then
    echo "docker-busybox: $IMAGE is up to date"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
ROOT="$TMP/rootfs"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
# One symlink per applet, in /bin (busybox finds applets by argv[0]).
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$ROOT" -cf "$TMP/rootfs.tar" .

"$DOCKER" import \
    --change "LABEL $LABEL=$SUM" \
    --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    --change 'CMD ["/bin/sh"]' \
    "$TMP/rootfs.tar" "$IMAGE" >/dev/null
echo "docker-busybox: imported $IMAGE ($("$BUSYBOX" 2>&1 | head -n 1 | cut -d' ' -f1-2))"
