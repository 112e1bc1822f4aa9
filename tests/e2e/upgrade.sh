#!/usr/bin/env bash
# Graceful binary upgrade of a running poolgate, under continuous requests: none may fail.
#
#   POOLGATE_BIN=target/debug/poolgate tests/e2e/upgrade.sh
#
# Old process runs; a new one starts with `run --upgrade` and waits on pingora's upgrade socket;
# SIGQUIT makes the old one hand its listening sockets over and drain. A curl loop runs throughout
# and counts every answer that is not the expected 401 (no token on an authenticated route: it
# proves a poolgate answered without needing an identity provider). No emulator is needed.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -n "${POOLGATE_BIN:-}" ] || die "POOLGATE_BIN is not set"
POOLGATE_BIN="$(realpath "$POOLGATE_BIN")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/poolgate-upgrade.XXXXXX")"
trap 'stop_all; rm -rf "$WORK"' EXIT
cd "$WORK"

listen="$(free_port)"
admin="$(free_port)"
# The issuer is never reachable: only connection continuity is under test here.
render_offline_policy policy.yaml "$listen" "$admin"

"$POOLGATE_BIN" run -c policy.yaml >old.log 2>&1 &
old=$!
track "$old"
wait_200 "http://127.0.0.1:$admin/healthz" "$old" 30 || die "the first poolgate did not start: $(tail -5 old.log)"

# Requests for 16 s, one at a time.
(
  end=$((SECONDS + 16)) ok=0 bad=0
  while [ "$SECONDS" -lt "$end" ]; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$listen/read/x" || true)"
    if [ "$code" = 401 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "answer $code at ${SECONDS}s" >>loop.err; fi
  done
  echo "$ok $bad" >loop.out
) &
loop=$!
track "$loop"
sleep 2

"$POOLGATE_BIN" run -c policy.yaml --upgrade >new.log 2>&1 &
new=$!
track "$new"
sleep 0.5 # the new process must be waiting on the upgrade socket (it retries for about 5 s)
t0=$SECONDS
kill -QUIT "$old"
old_rc=0
wait "$old" || old_rc=$?
old_secs=$((SECONDS - t0))
wait "$loop" || true
read -r ok bad <loop.out

passed=0 failed=0
verdict() { if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "  ok   $2"; else failed=$((failed + 1)); echo "  FAIL $2"; fi; }
verdict "$([ "$bad" = 0 ] && [ "$ok" -gt 50 ]; echo $?)" "no failed request across the hand-off ($ok answered, $bad failed)"
verdict "$([ "$old_rc" = 0 ] && [ "$old_secs" -le 15 ]; echo $?)" "old process drained and exited $old_rc after ${old_secs}s"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$listen/read/x" || true)"
verdict "$([ "$code" = 401 ] && kill -0 "$new" 2>/dev/null; echo $?)" "new process serves on the same port ($code)"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$admin/healthz" || true)"
verdict "$([ "$code" = 200 ]; echo $?)" "new process answers on the admin port ($code)"
new_rc=0
stop_pid "$new" 15 || new_rc=$?
verdict "$new_rc" "new process stops cleanly on SIGTERM (exit $new_rc)"
[ ! -s loop.err ] || head -5 loop.err
[ "$failed" = 0 ] || { echo "old log:"; tail -5 old.log; echo "new log:"; tail -5 new.log; }
echo "upgrade: $passed passed, $failed failed"
[ "$failed" = 0 ]
