# Sourced by the demo scripts (scripts/device_demo.sh): the repository's venv on PATH, a
# throwaway demo folder $DEMO (DEMO_PREFIX names it) that holds this demo's Ray session, and a
# trap that stops only this demo's Ray processes and removes the folder (KEEP=1 keeps it).
# The caller sets `set -euo pipefail` and SCRIPT_DIR.
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
export PATH="$REPO/.venv/bin:$PATH"   # what `source .venv/bin/activate` does
DEMO=$(mktemp -d "/tmp/${DEMO_PREFIX:-srnas}-XXXXXX")  # short: Ray's unix sockets live below it
# This demo's Ray keeps its session and its "latest cluster" file (what --address auto reads)
# under $DEMO, so no other Ray user of this machine joins it by accident.
export RAY_TMPDIR=$DEMO
cd "$DEMO"

cleanup() {
    local status=$?
    # `ray stop` would stop every Ray process of this machine: stop only this demo's, which
    # all carry $DEMO (their session folder) on their command line.
    local pids
    pids=$(pgrep -f -- "$DEMO/" || true)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        for _ in $(seq 50); do
            # shellcheck disable=SC2086
            kill -0 $pids 2>/dev/null || break
            sleep 0.2
        done
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DEMO"; fi
    exit "$status"
}
trap cleanup EXIT
