#!/usr/bin/env bash
# Instructions per call of a seam script's operation, for each of its modes, counted by callgrind over
# N calls after N warm-up calls (so other work on the machine does not change the count). The script
# (bench/otel-seam.ts, bench/exchange-seam.ts) runs N warm-up calls, writes `$SEAM_SYNC.ready` with
# its pid, waits for `$SEAM_SYNC.go`, then runs the N measured calls. Usage:
#   bash bench/seam.sh otel-seam.ts [N=20000] [modes="none api sdk"]
#   bash bench/seam.sh exchange-seam.ts [N=20000] [modes="login login-form exchange exchange-select"]
set -euo pipefail
cd "$(dirname "$0")/.."
script="${1:?usage: bash bench/seam.sh <otel-seam.ts|exchange-seam.ts> [N] [modes]}"
n="${2:-20000}"
case "$script" in
  otel-seam.ts) default_modes="none api sdk" ;;
  exchange-seam.ts) default_modes="login login-form exchange exchange-select" ;;
  *) echo "unknown seam script: $script" >&2; exit 2 ;;
esac
modes="${3:-$default_modes}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
run=0
for mode in $modes; do
  run=$((run + 1))
  sync="$dir/$run-$mode"
  SEAM_SYNC="$sync" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$sync.out" node --import tsx "bench/$script" "$mode" "$n" \
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
  echo "$mode: $((total / n)) instructions per call ($total over $n calls)"
done
