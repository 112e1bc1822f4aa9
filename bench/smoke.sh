#!/usr/bin/env bash
# Smoke run of the load harness for CI: every scenario for a couple of seconds against a
# freshly started poolgate, nginx and HAProxy (skipped with a message when not installed), so
# the harness cannot rot. Fails when a target answers nothing or a scenario that must not fail
# (hot, rotation, reload, routes, cache) answers anything unexpected.
#
#   bash bench/smoke.sh                            # debug build (what `cargo test` already built)
#   POOLGATE_BENCH_PROFILE=release bash bench/smoke.sh   # reuse a release build
#
# Takes about a minute plus the build; figures from a debug build say nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${POOLGATE_BENCH_PROFILE:-debug}"
target_dir="${CARGO_TARGET_DIR:-target}"
flags=()
[ "$profile" = release ] && flags+=(--release)

cargo build "${flags[@]}" -p poolgate-proxy -p poolgate-bench
timeout 300 "$target_dir/$profile/poolgate-bench" all --smoke --peer nginx --peer haproxy
