# Shared shell helpers for scripts/*; source it, do not run it.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
source "$ROOT/scripts/versions.env"

# Long-lived state (docker data root, registry storage, built binaries) lives
# outside the repo so a fresh clone on the same machine reuses it.
CACHE_DIR="${NOMADML_CACHE_DIR:-$HOME/.cache/nomadml}"
STACK_DIR="${NOMADML_STACK_DIR:-$CACHE_DIR/stack}"
RUN_DIR="$STACK_DIR/run"
# Wheels of nomadml's run-time dependencies, for the offline install test.
WHEELHOUSE="${NOMADML_WHEELHOUSE:-$CACHE_DIR/wheelhouse}"
LOG_DIR="$STACK_DIR/logs"
export NOMAD_ADDR="${NOMAD_ADDR:-http://127.0.0.1:$NOMAD_HTTP_PORT}"
# onnxruntime (the ONNX example) phones home from 1.29 on unless told not to; belt and braces
# beside the pinned version: every script, test and job started from here says no.
export ORT_DISABLE_TELEMETRY=1

say() { printf '%s %s\n' "[$(date +%H:%M:%S)]" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout)) delay=0.1
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep "$delay"
    # back off gently up to 1 s between polls
    delay=$(awk -v d="$delay" 'BEGIN { d *= 1.5; if (d > 1) d = 1; print d }')
  done
  say "$what is ready"
}

# pid_alive NAME EXPECTED_EXE: true when RUN_DIR/NAME.pid names a live process
# whose executable is EXPECTED_EXE (guards against pid reuse).
pid_alive() {
  local name=$1 exe=$2 pid
  [ -f "$RUN_DIR/$name.pid" ] || return 1
  pid=$(cat "$RUN_DIR/$name.pid")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ]
}

nomad_bin() { printf '%s\n' "$CACHE_DIR/nomad-$NOMAD_VERSION/nomad"; }
prometheus_bin() { printf '%s\n' "$CACHE_DIR/prometheus-$PROMETHEUS_MODULE_VERSION/prometheus"; }
