#!/usr/bin/env bash
# Start dockerd (Debian docker.io 20.10) in the background if its socket does not answer.
# Idempotent: does nothing when /var/run/docker.sock already answers GET /version.
# Nothing on these hosts starts dockerd for us (no systemd); dockerd starts its own containerd.
#
# Logs: /var/log/isoinspect-dockerd.log (override with ISOINSPECT_DOCKERD_LOG).
# Waits up to ISOINSPECT_DOCKERD_WAIT seconds (default 60) for the socket to answer.
set -euo pipefail

SOCK="${DOCKER_SOCK:-/var/run/docker.sock}"
LOG="${ISOINSPECT_DOCKERD_LOG:-/var/log/isoinspect-dockerd.log}"
WAIT="${ISOINSPECT_DOCKERD_WAIT:-60}"

answers() {
    [ -S "$SOCK" ] || return 1
    curl -fsS --max-time 3 --unix-socket "$SOCK" http://localhost/version >/dev/null 2>&1
}

version() {
    curl -fsS --max-time 3 --unix-socket "$SOCK" http://localhost/version 2>/dev/null \
        | sed -n 's/.*"Version":"\([^"]*\)".*/\1/p' | head -n 1
}

if answers; then
    echo "start-dockerd: dockerd already answers on $SOCK (version $(version))"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "start-dockerd: ERROR: must be root to start dockerd" >&2; exit 1; }
DOCKERD="$(command -v dockerd || true)"
[ -n "$DOCKERD" ] || { echo "start-dockerd: ERROR: dockerd not installed (apt-get install docker.io; make setup does)" >&2; exit 1; }

# A stale pid file from a killed daemon makes dockerd refuse to start.
PIDFILE=/var/run/docker.pid
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; then
    rm -f "$PIDFILE"
fi
if [ -f "$PIDFILE" ]; then
    # dockerd is running but not answering yet (still starting): just wait below.
    echo "start-dockerd: dockerd (pid $(cat "$PIDFILE")) running, waiting for its socket"
else
    mkdir -p "$(dirname "$LOG")"
    echo "start-dockerd: starting $DOCKERD (log: $LOG)"
    {
        echo "=== $(date -Is) start-dockerd.sh"
    } >>"$LOG"
    # setsid + closed stdio: the daemon must outlive make/CI steps and hold none of their pipes.
    setsid "$DOCKERD" --pidfile "$PIDFILE" </dev/null >>"$LOG" 2>&1 &
fi

for ((i = 0; i < WAIT * 5; i++)); do
    if answers; then
        echo "start-dockerd: dockerd answers on $SOCK after $((i / 5)).$((i % 5 * 2))s (version $(version))"
        exit 0
    fi
    sleep 0.2
done
echo "start-dockerd: ERROR: dockerd did not answer on $SOCK within ${WAIT}s; last log lines:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
