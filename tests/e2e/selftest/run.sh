#!/usr/bin/env bash
# Self-test of the e2e harness (not of poolgate): run.sh against a stand-in proxy must pass, and
# against each deliberately flawed stand-in must fail. Proves the table can fail.
#   tests/e2e/selftest/run.sh
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
passed=0
failed=0
expect() {
  local want="$1" flaw="$2" rc=0
  shift 2
  FAKE_POOLGATE_FLAW="$flaw" POOLGATE_BIN="$here/fake-poolgate" "$here/../run.sh" "$@" >"$tmp/out" 2>&1 || rc=$?
  if { [ "$want" = pass ] && [ "$rc" = 0 ]; } || { [ "$want" = fail ] && [ "$rc" != 0 ]; }; then
    passed=$((passed + 1))
    echo "ok   ${flaw:-no flaw}: run.sh ${want}ed as it should"
  else
    failed=$((failed + 1))
    echo "FAIL ${flaw:-no flaw}: run.sh should ${want} (exit $rc)"
    tail -30 "$tmp/out"
  fi
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
expect pass "" moto cognito-local
for flaw in no_pool_check no_strip fail_open; do expect fail "$flaw" moto; done
echo "e2e-selftest: $passed passed, $failed failed"
[ "$failed" = 0 ]
