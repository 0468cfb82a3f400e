#!/usr/bin/env bash
# Instructions per `auth.authenticate` for each OpenTelemetry mode (none, api = no SDK, sdk), counted
# by callgrind over N calls after N warm-up calls (see bench/otel-seam.ts). Usage:
#   bash bench/otel-seam.sh [N=20000] [modes="none api sdk"]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
modes="${2:-none api sdk}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
run=0
for mode in $modes; do
  run=$((run + 1))
  sync="$dir/$run-$mode"
  OTEL_SEAM_SYNC="$sync" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$sync.out" node --import tsx bench/otel-seam.ts "$mode" "$n" \
    >/dev/null 2>"$sync.err" &
  pid=$!
  while [ ! -e "$sync.ready" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$sync.err" >&2; exit 1; }
    sleep 0.2
  done
  callgrind_control -i on "$(cat "$sync.ready")" >/dev/null 2>&1
  touch "$sync.go"
  wait "$pid"
  total="$(grep -h '^totals:\|^summary:' "$sync".out* | awk '{s += $2} END {print s}')"
  echo "$mode: $((total / n)) instructions per authenticate ($total over $n calls)"
done
