#!/usr/bin/env bash
# The main job in one command: set up, compare start-up latency with the peers, verify that the
# limits are enforced (tracing on), and write the HTML report. Quick mode: a few minutes here.
#
#   scripts/demo.sh [REPORT.html]          (as root; default ./isoinspect-report.html)
#
# Progress goes to stderr; the last line on stdout is the path of the HTML file. Every record the
# steps write (named by run id, which sorts by time) goes into the one report. A step that fails
# is reported and the others still run, so the report shows what was measured; the exit status
# is then 1.
# Environment: ISOINSPECT_VENV (default <repo>/.venv), ISOINSPECT_RESULTS (where records go),
# ISOINSPECT_DEMO_BENCH / ISOINSPECT_DEMO_VERIFY (the steps' arguments, defaults below),
# ISOINSPECT_DEMO_SETUP=0 to skip set-up and dockerd (already done).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ISOINSPECT_VENV:-$REPO/.venv}"
CLI="$VENV/bin/isoinspect"
OUT="${1:-$PWD/isoinspect-report.html}"
export ISOINSPECT_RESULTS="${ISOINSPECT_RESULTS:-/var/lib/isoinspect/results}"
read -r -a BENCH_ARGS <<<"${ISOINSPECT_DEMO_BENCH:-startup --quick}"
read -r -a VERIFY_ARGS <<<"${ISOINSPECT_DEMO_VERIFY:---runtime all --quick}"

log() { printf 'demo: %s\n' "$*" >&2; }

if [ "${ISOINSPECT_DEMO_SETUP:-1}" = 1 ]; then
    ISOINSPECT_VENV="$VENV" "$REPO/scripts/setup.sh" >&2 || { log "set-up failed"; exit 1; }
    "$REPO/scripts/start-dockerd.sh" >&2 || log "dockerd did not start: Docker targets are skipped"
fi

# Records are named <run id>.json and run ids start with the UTC time: everything from now on
# sorts at or after this stamp (one second earlier, for a run started within this second).
SINCE="$(date -u -d '-1 second' +%Y%m%dT%H%M%SZ)"
failed=0
step() {
    log "isoinspect $*"
    "$CLI" "$@" >&2 || { log "isoinspect $* failed (exit $?)"; failed=1; }
}
step bench "${BENCH_ARGS[@]}"
step verify "${VERIFY_ARGS[@]}"

runs=()
shopt -s nullglob
for record in "$ISOINSPECT_RESULTS"/*.json; do
    name="$(basename "$record" .json)"
    [[ "$name" > "$SINCE" || "$name" == "$SINCE"* ]] && runs+=("$record")
done
if [ "${#runs[@]}" -eq 0 ]; then
    log "no run record was written to $ISOINSPECT_RESULTS: nothing to report"
    exit 1
fi
log "writing the report of ${#runs[@]} run(s)"
"$CLI" report "${runs[@]}" -o "$OUT" || exit 1
exit "$failed"
