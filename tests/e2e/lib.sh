# shellcheck shell=bash
# Helpers for tests/e2e/run.sh: idempotent installs, free ports, readiness waits and
# PID-tracked background processes. Sourced, not executed.

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$E2E_DIR/.venv"
CL_DIR="$E2E_DIR/cognito-local"

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Run as root directly, otherwise through sudo (CI runs as root; a developer may not).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The Python venv with moto and boto3, reinstalled only when requirements.txt changes.
ensure_venv() {
  local want stamp="$VENV/.requirements.sha256"
  want="$(sha "$E2E_DIR/requirements.txt")"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing the Python venv (moto, boto3) into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's system python3 ships venv separately.
    as_root apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$E2E_DIR/requirements.txt"
  printf '%s\n' "$want" >"$stamp"
}

# cognito-local from the committed lock file, reinstalled only when the lock changes.
ensure_cognito_local() {
  local want stamp="$CL_DIR/node_modules/.package-lock.sha256"
  command -v npm >/dev/null 2>&1 || as_root apt-get install -y -qq nodejs npm >/dev/null
  want="$(sha "$CL_DIR/package-lock.json")"
  if [ -x "$CL_DIR/node_modules/.bin/cognito-local" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing cognito-local with npm ci into $CL_DIR/node_modules"
  (cd "$CL_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  printf '%s\n' "$want" >"$stamp"
}

# An ephemeral port the kernel considers free right now (bind port 0, read it, close).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Wait until URL answers with any HTTP status (curl exit 0), or the PID dies, or time runs out.
wait_http() {
  local url="$1" pid="$2" secs="${3:-60}" i
  for ((i = 0; i < secs * 10; i++)); do
    if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Wait until URL answers 200.
wait_200() {
  local url="$1" pid="$2" secs="${3:-60}" i code
  for ((i = 0; i < secs * 10; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
    [ "$code" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Background processes started by this run, stopped by PID (never by name).
E2E_PIDS=()
track() { E2E_PIDS+=("$1"); }

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5). Returns the exit
# status (137 when it had to be killed).
stop_pid() {
  local pid="$1" secs="${2:-5}" i rc=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return "$rc"; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return "$rc"; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 137
}

stop_all() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do stop_pid "$pid" || true; done
  E2E_PIDS=()
}

# Writes to $1 the e2e policy with an issuer that is never reachable, listening on $2 (proxy) and
# $3 (admin): for tests of connection handling and reload, which need no identity provider.
render_offline_policy() {
  E2E_LISTEN_PORT="$2" E2E_ADMIN_PORT="$3" E2E_BACKEND_PORT=9 E2E_ISSUER=https://issuer.invalid/pool \
    E2E_JWKS_URL=http://127.0.0.1:9/jwks.json E2E_CLIENT_ID=e2e \
    python3 -c 'import os, string, sys; print(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
    "$E2E_DIR/policy.yaml.tmpl" >"$1"
}
