#!/usr/bin/env bash
# The main job without make: set up, start dockerd, then `isoinspect compare --quick` (every
# measurement, the VM included, then the HTML report; about 10 minutes on a 2-core host).
#
#   scripts/demo.sh [REPORT.html] [compare options...]   (as root; default ./isoinspect-report.html)
#
# Progress goes to stderr; the last line on stdout is the path of the HTML file. Exit status:
# compare's (0; 1 when a stage failed; 130 when interrupted, after the report of what was
# measured). Environment: ISOINSPECT_VENV (default <repo>/.venv), ISOINSPECT_RESULTS (where
# records go), ISOINSPECT_DEMO_SETUP=0 to skip set-up and dockerd (already done),
# ISOINSPECT_COMPARE_<STAGE> to change one stage's arguments (see `isoinspect compare --help`).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ISOINSPECT_VENV:-$REPO/.venv}"
OUT="${1:-$PWD/isoinspect-report.html}"
shift || true

if [ "${ISOINSPECT_DEMO_SETUP:-1}" = 1 ]; then
    ISOINSPECT_VENV="$VENV" "$REPO/scripts/setup.sh" >&2 || { echo "demo: set-up failed" >&2; exit 1; }
    "$REPO/scripts/start-dockerd.sh" >&2 || echo "demo: dockerd did not start: Docker targets are skipped" >&2
fi
exec "$VENV/bin/isoinspect" compare --quick -o "$OUT" "$@"
