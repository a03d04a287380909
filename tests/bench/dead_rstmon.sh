#!/usr/bin/env bash
# A live-looking rstmon that analyses nothing: the real binary ($RSTMON_REAL) with its port swapped
# for net_null (frames of zeros: counted, never TCP). The benchmark smoke run must fail on it
# (meson test 'bench-smoke-detects-dead', should_fail) — a smoke that passes on 0 flows and 0
# RSTs would hide a broken pipeline.
set -euo pipefail
args=()
while (($#)); do
  if [[ $1 == --config ]]; then
    dead=$(mktemp --suffix=.yaml)
    sed -E 's/device: "[^"]*"/device: "net_null_dead0"/' "$2" > "$dead"
    args+=(--config "$dead")
    shift 2
  else
    args+=("$1")
    shift
  fi
done
exec "$RSTMON_REAL" "${args[@]}"
