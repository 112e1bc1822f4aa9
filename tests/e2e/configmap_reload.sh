#!/usr/bin/env bash
# Live reload when the policy is a Kubernetes ConfigMap volume: the kubelet never edits the file,
# it writes a new timestamped directory and atomically swaps the `..data` symlink. poolgate must
# notice that by itself (no SIGHUP in a pod) and serve the new policy.
#
#   POOLGATE_BIN=target/debug/poolgate tests/e2e/configmap_reload.sh
#
# The new policy renames the /read/** route: a request there goes from 401 (route, no token) to
# 404 (no route). No identity provider is needed.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -n "${POOLGATE_BIN:-}" ] || die "POOLGATE_BIN is not set"
POOLGATE_BIN="$(realpath "$POOLGATE_BIN")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/poolgate-configmap.XXXXXX")"
trap 'stop_all; rm -rf "$WORK"' EXIT
cd "$WORK"

listen="$(free_port)"
admin="$(free_port)"
render_offline_policy v1.yaml "$listen" "$admin"
sed 's|match: { path: /read/\*\* }|match: { path: /reading/** }|' v1.yaml >v2.yaml
cmp -s v1.yaml v2.yaml && die "could not derive the second policy from the template"

# The layout the kubelet writes for a ConfigMap volume.
mkdir -p vol/..2026_01_01_00_00_00.1
cp v1.yaml vol/..2026_01_01_00_00_00.1/poolgate.yaml
ln -s ..2026_01_01_00_00_00.1 vol/..data
ln -s ..data/poolgate.yaml vol/poolgate.yaml

"$POOLGATE_BIN" run -c vol/poolgate.yaml >poolgate.log 2>&1 &
pid=$!
track "$pid"
wait_200 "http://127.0.0.1:$admin/healthz" "$pid" 30 || die "poolgate did not start: $(tail -5 poolgate.log)"

passed=0 failed=0
verdict() { if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "  ok   $2"; else failed=$((failed + 1)); echo "  FAIL $2"; fi; }
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$listen/read/x")"
verdict "$([ "$code" = 401 ]; echo $?)" "before the update: /read/x -> $code (401)"

# The kubelet's update: new directory, symlink swapped by rename, old directory removed.
mkdir vol/..2026_01_01_00_01_00.2
cp v2.yaml vol/..2026_01_01_00_01_00.2/poolgate.yaml
ln -s ..2026_01_01_00_01_00.2 vol/..data_tmp
mv -T vol/..data_tmp vol/..data
rm -rf vol/..2026_01_01_00_00_00.1
t0="$(date +%s.%N)"
for _ in $(seq 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$listen/read/x")"
  [ "$code" = 404 ] && break
  sleep 0.1
done
secs="$(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$t0")"
verdict "$([ "$code" = 404 ]; echo $?)" "after the ..data swap: /read/x -> $code (404) within ${secs}s, without SIGHUP"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$listen/reading/x")"
verdict "$([ "$code" = 401 ]; echo $?)" "the renamed route answers: /reading/x -> $code (401)"

# A broken policy arrives the same way: refused, the running one stays.
mkdir vol/..2026_01_01_00_02_00.3
printf 'version: 1\nroutes: [\n' >vol/..2026_01_01_00_02_00.3/poolgate.yaml
ln -s ..2026_01_01_00_02_00.3 vol/..data_tmp
mv -T vol/..data_tmp vol/..data
rm -rf vol/..2026_01_01_00_01_00.2
sleep 3 # longer than the good update took to apply
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$listen/reading/x")"
verdict "$([ "$code" = 401 ]; echo $?)" "a broken update is refused, the running policy stays: /reading/x -> $code (401)"
failures="$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^poolgate_reloads_total\{/ && !/result="(ok|success)"/ {n += $NF} END {print n + 0}')"
verdict "$([ "$failures" -ge 1 ] 2>/dev/null; echo $?)" "the refused update is counted as a failed reload ($failures)"
verdict "$(kill -0 "$pid" 2>/dev/null; echo $?)" "poolgate kept running"
echo "configmap-reload: $passed passed, $failed failed"
[ "$failed" = 0 ]
