#!/usr/bin/env bash
# Offline checks of everything under deploy/, with the real tools (installed when missing):
#   promtool        check + unit-test the alert rules; parse every dashboard query
#   dashboard.py    the dashboard's structure: unique ids, grid, units, defined variables
#   metric names    alerts and dashboard query only metrics/labels poolgate exports
#                   (docs/architecture.md; plus a live /metrics scrape when given)
#   systemd-analyze verify the unit in a throwaway root; `security` exposure under a threshold
#   kustomize       render base and overlays (kubectl kustomize, else checks/render.py)
#   kubernetes-validate  strict schema check of the render (oldest and newest Kubernetes)
#   manifests.py    the pieces fit: selectors, ports, probes, security context, shutdown budget
#   hadolint + dockerfile.py  the image's Dockerfile
#   ShellCheck      the deploy and e2e scripts
#   poolgate check  the ConfigMap's policy (POOLGATE_BIN; else the policies crate's `check` example
#                   when built: POLICIES_CHECK_BIN or <target>/debug/examples/check)
#
#   deploy/check.sh
#   POOLGATE_BIN=target/debug/poolgate POOLGATE_METRICS_FILE=metrics.txt deploy/check.sh
#
# Exits non-zero when any check fails; the last line is `deploy-check: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DEPLOY="$ROOT/deploy"
VENV="$DEPLOY/.venv"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/poolgate-deploy-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log() { printf '[deploy-check] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  log "installing $* (apt)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools -----------------------------------------------------------------------------------
command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
want="$(sha256sum "$DEPLOY/checks/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  log "installing the check venv (kubernetes-validate, hadolint, promql-parser) into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$DEPLOY/checks/requirements.txt"
  printf '%s\n' "$want" >"$VENV/.requirements.sha256"
fi
PY="$VENV/bin/python"

PASSED=0
FAILED=0
FAILURES=()
# check NAME CMD...: runs CMD, shows its output indented, counts the result.
check() {
  local name="$1" out rc=0
  shift
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
    printf 'ok   %s\n' "$name"
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$name")
    printf 'FAIL %s (exit %s)\n' "$name" "$rc"
  fi
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/     /'
}

# A command that must succeed AND print nothing (systemd-analyze verify exits 0 on warnings).
silent() {
  local out
  out="$("$@" 2>&1)" || { printf '%s\n' "$out"; return 1; }
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}

# --- Prometheus rules and the dashboard --------------------------------------------------------
check "promtool check rules deploy/prometheus/alerts.yaml" promtool check rules "$DEPLOY/prometheus/alerts.yaml"
check "promtool test rules deploy/prometheus/alerts.test.yaml" promtool test rules "$DEPLOY/prometheus/alerts.test.yaml"
live=()
if [ -n "${POOLGATE_METRICS_FILE:-}" ]; then live=(--live "$POOLGATE_METRICS_FILE"); fi
check "alerts and dashboard query only exported metrics${live:+ (and a live scrape)}" \
  "$PY" "$DEPLOY/checks/metric_names.py" --docs "$ROOT/docs/architecture.md" \
  --alerts "$DEPLOY/prometheus/alerts.yaml" --dashboard "$DEPLOY/grafana/poolgate.json" \
  --emit-rules "$WORK/dashboard-rules.yaml" "${live[@]}"
check "promtool parses every dashboard query" promtool check rules "$WORK/dashboard-rules.yaml"
check "dashboard structure (ids, grid, units, variables)" "$PY" "$DEPLOY/checks/dashboard.py" "$DEPLOY/grafana/poolgate.json"

# --- systemd ---------------------------------------------------------------------------------
# verify needs the unit's binaries and systemd's own units: a throwaway root with the system's
# unit directory and, unless POOLGATE_BIN is given, a stub at /usr/local/bin/poolgate.
SDROOT="$WORK/sdroot"
mkdir -p "$SDROOT/usr/local/bin" "$SDROOT/etc/systemd/system" "$SDROOT/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$SDROOT/usr/lib/systemd/"
if [ -n "${POOLGATE_BIN:-}" ]; then
  cp "$POOLGATE_BIN" "$SDROOT/usr/local/bin/poolgate"
else
  printf '#!/bin/sh\nexit 0\n' >"$SDROOT/usr/local/bin/poolgate"
  chmod 0755 "$SDROOT/usr/local/bin/poolgate"
fi
cp "$DEPLOY/systemd/poolgate.service" "$SDROOT/etc/systemd/system/"
check "systemd-analyze verify poolgate.service" silent systemd-analyze verify --root="$SDROOT" /etc/systemd/system/poolgate.service
# Exposure score (0 = locked down, 10 = none); 2.0 is well inside systemd's "OK" band.
security() {
  local out rc=0
  out="$(systemd-analyze security --offline=yes --root="$SDROOT" --threshold=20 --no-pager poolgate.service 2>&1)" || rc=$?
  if [ "$rc" = 0 ]; then printf '%s\n' "$out" | tail -n 1; else printf '%s\n' "$out" | grep -v '✓'; fi
  return "$rc"
}
check "systemd-analyze security poolgate.service (exposure <= 2.0)" security
# shellcheck disable=SC2016 # $MAINPID is matched literally
check "unit reloads with SIGHUP" grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$DEPLOY/systemd/poolgate.service"

# --- Kubernetes ------------------------------------------------------------------------------
# DEPLOY_CHECK_RENDERER=python forces the stand-in renderer (to test it where kubectl exists).
render() {
  if [ "${DEPLOY_CHECK_RENDERER:-auto}" != python ] && command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    kubectl kustomize "$1"
  else
    "$PY" "$DEPLOY/checks/render.py" "$1"
  fi
}
if [ "${DEPLOY_CHECK_RENDERER:-auto}" != python ] && command -v kubectl >/dev/null 2>&1; then log "rendering with $(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'kubectl kustomize')"; else log "rendering with deploy/checks/render.py (no kubectl, or DEPLOY_CHECK_RENDERER=python)"; fi
# The policy in the ConfigMap goes through the real loader: `poolgate check`, or until the binary
# exists the policies crate's example (`cargo build -p poolgate-policies --example check`).
POLICY_CHECK=""
POLICY_CHECK_NAME=""
if [ -n "${POOLGATE_BIN:-}" ]; then
  POLICY_CHECK="'$POOLGATE_BIN' check -c"
  POLICY_CHECK_NAME="poolgate check"
else
  for c in "${POLICIES_CHECK_BIN:-}" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/check"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      POLICY_CHECK="'$c'"
      POLICY_CHECK_NAME="the policies loader ($(basename "$c"))"
      break
    fi
  done
fi
for k in base overlays/example; do
  out="$WORK/${k//\//-}.yaml"
  check "render deploy/kubernetes/$k" bash -c "$(declare -f render); PY='$PY' DEPLOY='$DEPLOY'; DEPLOY_CHECK_RENDERER='${DEPLOY_CHECK_RENDERER:-auto}' render '$DEPLOY/kubernetes/$k' > '$out'"
  for v in 1.30.0 1.37.0; do
    check "kubernetes-validate --strict $k (Kubernetes $v)" "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$out"
  done
  check "manifests fit together: $k" "$PY" "$DEPLOY/checks/manifests.py" "$out" --policy-out "$WORK/policy-${k//\//-}"
  if [ -n "$POLICY_CHECK" ]; then
    check "${POLICY_CHECK_NAME} on the ConfigMap policy ($k)" bash -c \
      "set -a; . '$WORK/policy-${k//\//-}/env'; set +a; $POLICY_CHECK '$WORK/policy-${k//\//-}/poolgate.yaml'"
  fi
done
[ -n "$POLICY_CHECK" ] || log "neither POOLGATE_BIN nor POLICIES_CHECK_BIN: the ConfigMap policy was not loaded"

# --- container image -------------------------------------------------------------------------
# DL3008 (pin apt package versions) is ignored on purpose: Debian security updates replace the
# pinned versions, which would break rebuilds; the base image tag pins the release.
check "hadolint deploy/Dockerfile" "$VENV/bin/hadolint" --ignore DL3008 --no-color "$DEPLOY/Dockerfile"
check "Dockerfile agrees with the other deploy files" "$PY" "$DEPLOY/checks/dockerfile.py" "$DEPLOY/Dockerfile" "$DEPLOY/systemd/poolgate.service"

# The image's HEALTHCHECK command itself, against a running poolgate (and a stopped one).
healthcheck_cmd() {
  local admin="$1"
  python3 - "$DEPLOY/Dockerfile" "$admin" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M)
cmd = json.loads(m.group(1))
print(cmd[2].replace("/9090", "/" + sys.argv[2]))
PY
}
image_healthcheck() {
  local listen admin pid cmd rc=0
  listen="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  admin="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  E2E_LISTEN_PORT="$listen" E2E_ADMIN_PORT="$admin" E2E_BACKEND_PORT=9 E2E_ISSUER=https://issuer.invalid/pool \
    E2E_JWKS_URL=http://127.0.0.1:9/jwks.json E2E_CLIENT_ID=check \
    python3 -c 'import os, string, sys; print(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
    "$ROOT/tests/e2e/policy.yaml.tmpl" >"$WORK/hc-policy.yaml"
  cmd="$(healthcheck_cmd "$admin")" || return 1
  "$POOLGATE_BIN" run -c "$WORK/hc-policy.yaml" >"$WORK/hc.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/healthz" && break; sleep 0.1; done
  if bash -c "$cmd"; then echo "HEALTHCHECK passes against a running poolgate"; else echo "HEALTHCHECK fails against a running poolgate"; rc=1; fi
  curl -s --max-time 5 "http://127.0.0.1:$admin/metrics" >"$WORK/live-metrics.txt" || true
  kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  if bash -c "$cmd" 2>/dev/null; then echo "HEALTHCHECK passes with poolgate stopped"; rc=1; else echo "HEALTHCHECK fails with poolgate stopped, as it should"; fi
  return "$rc"
}
if [ -n "${POOLGATE_BIN:-}" ]; then
  check "the image's HEALTHCHECK command against a running and a stopped poolgate" image_healthcheck
  # Without a scrape from real traffic, this idle one still shows the unlabelled metrics' names.
  if [ -z "${POOLGATE_METRICS_FILE:-}" ] && [ -s "$WORK/live-metrics.txt" ]; then
    check "alerts and dashboard against an idle poolgate's /metrics" \
      "$PY" "$DEPLOY/checks/metric_names.py" --docs "$ROOT/docs/architecture.md" \
      --alerts "$DEPLOY/prometheus/alerts.yaml" --dashboard "$DEPLOY/grafana/poolgate.json" \
      --live "$WORK/live-metrics.txt"
  fi
fi

# --- scripts ---------------------------------------------------------------------------------
check "shellcheck deploy/check.sh tests/e2e" shellcheck -x "$DEPLOY/check.sh" "$ROOT"/tests/e2e/*.sh "$ROOT"/tests/e2e/selftest/*.sh "$ROOT/tests/e2e/selftest/fake-poolgate"

for f in "${FAILURES[@]}"; do log "failed: $f"; done
echo "deploy-check: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
