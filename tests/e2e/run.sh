#!/usr/bin/env bash
# End-to-end test of poolgate against two real Cognito emulators: moto (PyPI) and cognito-local (npm).
#
#   tests/e2e/run.sh                      # both emulators: install, start, provision, sign in, check tokens
#   tests/e2e/run.sh moto                 # one emulator
#   POOLGATE_BIN=target/debug/poolgate tests/e2e/run.sh
#                                         # also run the proxy on a generated policy and assert issue 6's table
#   E2E_REQUIRE_PROXY=1 tests/e2e/run.sh  # fail (instead of skip) when POOLGATE_BIN is not given
#   E2E_AUTHORIZER_PROBE=1 ...            # also verify the tokens with poolgate's authorizer crate
#                                         # (builds tests/e2e/authorizer-probe with cargo; or give
#                                         # E2E_AUTHORIZER_PROBE_BIN=path to a built probe)
#   E2E_STRACE=1 ...                      # trace poolgate's system calls under the table and check
#                                         # them against deploy/systemd/poolgate.service's sandbox
#   E2E_KEEP=1 ...                        # keep the work directory (tokens, logs, policy) for inspection
#
# Installs what it needs (a Python venv under tests/e2e/.venv, `npm ci` in tests/e2e/cognito-local),
# idempotently; every server runs on 127.0.0.1 on a free port and is stopped by its PID.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if [ "$#" -gt 0 ]; then EMULATORS=("$@"); else EMULATORS=(moto cognito-local); fi
for emu in "${EMULATORS[@]}"; do
  case "$emu" in moto | cognito-local) ;; *) die "unknown emulator \`$emu\` (moto | cognito-local)" ;; esac
done

if [ "${E2E_STRACE:-0}" = 1 ] && ! command -v strace >/dev/null 2>&1; then
  as_root apt-get install -y -qq strace >/dev/null
fi
if [ -n "${POOLGATE_BIN:-}" ]; then
  POOLGATE_BIN="$(realpath "$POOLGATE_BIN")"
  [ -x "$POOLGATE_BIN" ] || die "POOLGATE_BIN=$POOLGATE_BIN is not an executable"
elif [ "${E2E_REQUIRE_PROXY:-0}" = 1 ]; then
  die "E2E_REQUIRE_PROXY=1 but POOLGATE_BIN is not set: build the proxy (cargo build -p poolgate-proxy) and pass POOLGATE_BIN=<target>/debug/poolgate"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/poolgate-e2e.XXXXXX")"
cleanup() {
  stop_all
  if [ "${E2E_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0
FAILED=0
SKIPPED=0
SUMMARY=()
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

start_moto() {
  local dir="$1" port
  port="$(free_port)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/emulator.log" 2>&1 &
  EMU_PID=$!
  track "$EMU_PID"
  EMU_URL="http://127.0.0.1:$port"
  wait_200 "$EMU_URL/moto-api/" "$EMU_PID" 60 || { tail -20 "$dir/emulator.log" >&2; return 1; }
}

start_cognito_local() {
  local dir="$1" port
  port="$(free_port)"
  # cognito-local reads ./.cognito/config.json and keeps its data in ./.cognito/db of its cwd.
  mkdir -p "$dir/cwd/.cognito"
  printf '%s\n' '{"UserPoolDefaults": {"UsernameAttributes": []}}' >"$dir/cwd/.cognito/config.json"
  (cd "$dir/cwd" && HOST=127.0.0.1 PORT="$port" exec node "$CL_DIR/node_modules/cognito-local/lib/bin/start.js") \
    >"$dir/emulator.log" 2>&1 &
  EMU_PID=$!
  track "$EMU_PID"
  EMU_URL="http://127.0.0.1:$port"
  wait_http "$EMU_URL/" "$EMU_PID" 60 || { tail -20 "$dir/emulator.log" >&2; return 1; }
}

# Fills policy.yaml.tmpl for this emulator's tokens: render_policy DIR LISTEN ADMIN BACKEND.
render_policy() {
  local dir="$1"
  E2E_LISTEN_PORT="$2" E2E_ADMIN_PORT="$3" E2E_BACKEND_PORT="$4" \
    "$VENV/bin/python" - "$E2E_DIR/policy.yaml.tmpl" "$dir/tokens.json" "$dir/policy.yaml" <<'PY'
import json, os, string, sys
tmpl, tokens, out = sys.argv[1:4]
t = json.load(open(tokens))
env = dict(os.environ, E2E_ISSUER=t["issuer"], E2E_JWKS_URL=t["jwks_url"], E2E_CLIENT_ID=t["client_id"])
open(out, "w").write(string.Template(open(tmpl).read()).substitute(env))
PY
  [ -s "$dir/policy.yaml" ] || { log "could not render $E2E_DIR/policy.yaml.tmpl"; return 1; }
}

# Until the binary exists, the policies crate's `check` example (built by `cargo test`) loads the
# rendered policy, so a drift between the template and the policy format shows up early.
policies_check_bin() {
  local c
  for c in "${POLICIES_CHECK_BIN:-}" "${CARGO_TARGET_DIR:-$E2E_DIR/../../target}/debug/examples/check"; do
    if [ -n "$c" ] && [ -x "$c" ]; then printf '%s\n' "$c"; return 0; fi
  done
  return 1
}

# Renders the policy, runs `poolgate check` and `poolgate run`, and asserts the table.
# Called in an `if`, where `set -e` does not apply: every step returns on failure itself.
run_proxy_cases() {
  local emu="$1" dir="$2" backend_pid proxy_pid listen admin rc=0
  python3 "$E2E_DIR/echo_backend.py" --port-file "$dir/backend.port" --hits "$dir/hits.jsonl" &
  backend_pid=$!
  track "$backend_pid"
  for _ in $(seq 50); do [ -s "$dir/backend.port" ] && break; sleep 0.1; done
  [ -s "$dir/backend.port" ] || { log "echo backend did not start"; return 1; }

  listen="$(free_port)" || return 1
  admin="$(free_port)" || return 1
  render_policy "$dir" "$listen" "$admin" "$(cat "$dir/backend.port")" || return 1

  if ! "$POOLGATE_BIN" check -c "$dir/policy.yaml" >"$dir/check.out" 2>&1; then
    log "poolgate check rejected the e2e policy:"
    cat "$dir/check.out" >&2
    return 1
  fi
  local tracer=""
  if [ "${E2E_STRACE:-0}" = 1 ]; then
    # Every system call poolgate makes under the table, for the systemd unit's sandbox check.
    strace -f -qq -o "$dir/trace.txt" "$POOLGATE_BIN" run -c "$dir/policy.yaml" >"$dir/proxy.log" 2>&1 &
    tracer=$!
    track "$tracer"
    proxy_pid=""
    for _ in $(seq 50); do proxy_pid="$(pgrep -P "$tracer" || true)"; [ -n "$proxy_pid" ] && break; sleep 0.1; done
    [ -n "$proxy_pid" ] || { log "poolgate did not start under strace"; return 1; }
    track "$proxy_pid" # stopped by PID on any exit, even if strace goes first
  else
    "$POOLGATE_BIN" run -c "$dir/policy.yaml" >"$dir/proxy.log" 2>&1 &
    proxy_pid=$!
    track "$proxy_pid"
  fi
  if ! wait_200 "http://127.0.0.1:$admin/readyz" "$proxy_pid" 30; then
    log "poolgate did not become ready (GET /readyz on the admin port); its log:"
    tail -40 "$dir/proxy.log" >&2
    return 1
  fi
  "$VENV/bin/python" "$E2E_DIR/proxy_cases.py" --tokens "$dir/tokens.json" \
    --proxy "http://127.0.0.1:$listen" --admin "http://127.0.0.1:$admin" \
    --hits "$dir/hits.jsonl" --metrics-out "$dir/metrics.txt" || rc=$?
  if [ -n "${E2E_METRICS_OUT:-}" ]; then cp "$dir/metrics.txt" "$E2E_METRICS_OUT.$emu.txt"; fi
  "$VENV/bin/python" "$E2E_DIR/reload_cases.py" --pid "$proxy_pid" --policy "$dir/policy.yaml" \
    --tokens "$dir/tokens.json" --proxy "http://127.0.0.1:$listen" --admin "http://127.0.0.1:$admin" || rc=$?
  # Graceful stop: pingora closes its listeners at once, waits its grace period (poolgate: 5 s)
  # and the runtime shutdown timeout (5 s), and exits 0.
  local t0 stop_rc=0
  t0="$(now)"
  if [ -n "$tracer" ]; then
    # The traced process is strace's child: signal it, then collect its status through strace.
    kill -TERM "$proxy_pid" 2>/dev/null || true
    stop_rc=0
    for _ in $(seq 150); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$tracer" 1 || stop_rc=$?
  else
    stop_pid "$proxy_pid" 15 || stop_rc=$?
  fi
  log "poolgate stopped on SIGTERM after $(since "$t0")s with exit status $stop_rc"
  if [ "$stop_rc" != 0 ]; then
    log "poolgate did not stop cleanly on SIGTERM within 15 s"
    rc=1
  fi
  stop_pid "$backend_pid" || true
  if [ -n "$tracer" ]; then
    python3 "$E2E_DIR/../../deploy/checks/syscalls.py" --unit "$E2E_DIR/../../deploy/systemd/poolgate.service" \
      --trace "$dir/trace.txt" || { log "the systemd unit's sandbox would refuse what poolgate did"; rc=1; }
  fi
  [ "$rc" = 0 ] || { log "proxy log tail:"; tail -20 "$dir/proxy.log" >&2; }
  return "$rc"
}

PROBE="${E2E_AUTHORIZER_PROBE_BIN:-}"
if [ -z "$PROBE" ] && [ "${E2E_AUTHORIZER_PROBE:-0}" = 1 ]; then
  log "building the authorizer probe (cargo)"
  cargo build -q --manifest-path "$E2E_DIR/authorizer-probe/Cargo.toml" || die "the authorizer probe does not build"
  PROBE="${CARGO_TARGET_DIR:-$E2E_DIR/authorizer-probe/target}/debug/poolgate-e2e-authorizer-probe"
fi

t_install="$(now)"
ensure_venv
for emu in "${EMULATORS[@]}"; do [ "$emu" = cognito-local ] && ensure_cognito_local; done
log "installs ready in $(since "$t_install")s"

for emu in "${EMULATORS[@]}"; do
  dir="$WORK/$emu"
  mkdir -p "$dir"
  t0="$(now)"
  if [ "$emu" = moto ]; then start_moto "$dir"; else start_cognito_local "$dir"; fi
  t_started="$(since "$t0")"
  log "$emu answering at $EMU_URL (pid $EMU_PID) after ${t_started}s"

  if "$VENV/bin/python" "$E2E_DIR/provision.py" --emulator "$emu" --endpoint "$EMU_URL" --out "$dir/tokens.json"; then
    PASSED=$((PASSED + 1))
    SUMMARY+=("$emu provisioning: ok (start ${t_started}s, start+provision $(since "$t0")s)")
  else
    FAILED=$((FAILED + 1))
    SUMMARY+=("$emu provisioning: FAILED")
    stop_pid "$EMU_PID" || true
    continue
  fi
  if [ -n "${E2E_TOKENS_OUT:-}" ]; then cp "$dir/tokens.json" "$E2E_TOKENS_OUT.$emu.json"; fi

  if [ -n "$PROBE" ]; then
    if "$PROBE" "$dir/tokens.json"; then
      PASSED=$((PASSED + 1))
      SUMMARY+=("$emu authorizer probe: ok")
    else
      FAILED=$((FAILED + 1))
      SUMMARY+=("$emu authorizer probe: FAILED")
    fi
  fi

  if [ -n "${POOLGATE_BIN:-}" ]; then
    if run_proxy_cases "$emu" "$dir"; then
      PASSED=$((PASSED + 1))
      SUMMARY+=("$emu proxy table: ok")
    else
      FAILED=$((FAILED + 1))
      SUMMARY+=("$emu proxy table: FAILED")
    fi
  else
    SKIPPED=$((SKIPPED + 1))
    SUMMARY+=("$emu proxy table: skipped (POOLGATE_BIN not set)")
    if checker="$(policies_check_bin)"; then
      if render_policy "$dir" 8080 9090 8081 && "$checker" "$dir/policy.yaml"; then
        PASSED=$((PASSED + 1))
        SUMMARY+=("$emu policy loads with $checker: ok")
      else
        FAILED=$((FAILED + 1))
        SUMMARY+=("$emu policy loads with $checker: FAILED")
      fi
    fi
  fi
  stop_pid "$EMU_PID" || true
done

for line in "${SUMMARY[@]}"; do log "$line"; done
echo "e2e: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
