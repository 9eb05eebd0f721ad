#!/usr/bin/env bash
# What checkpoints cost and how fast a crashed platform is back: the same N reviews, already in
# Kafka, drained end to end with at-most-once (no checkpoints), at-least-once every 1 s and
# exactly-once (the two-phase commit with the Kafka transaction) every 10 s and every 1 s; then
# a kill -9 mid-run and the time from restart to processing again.
# Usage: scripts/bench-checkpoint.sh [ROWS]   (run via `just bench`)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-200000}"
admin="127.0.0.1:9191"
source scripts/platform.sh
new_tenant ckptdata
data="$work"
$bin gen --out "$data/reviews.tsv" --rows "$rows" --late 0 --malformed 0 2>/dev/null
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
status() { app status --tenant "$tenant" --app reviews-daily --admin "http://$admin" 2>/dev/null; }
stop_platform() { kill -TERM "$PLATFORM_PID" 2>/dev/null; wait "$PLATFORM_PID" 2>/dev/null || true; }

run_mode() {  # NAME DELIVERY INTERVAL_MS
  local name=$1
  export PLATFORM_DELIVERY=$2 PLATFORM_TOML="[checkpoint]
interval_ms = $3"
  new_tenant ckpt
  $bin produce --file "$data/reviews.tsv" --tenant "$tenant" >/dev/null 2>&1
  local start end cpu
  start=$(date +%s.%N)
  start_platform "$work" "$tenant" "$admin"
  app drain --tenant "$tenant" --app reviews-daily --admin "http://$admin" --wait >"$work/status.json"
  end=$(date +%s.%N)
  cpu=$(awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$PLATFORM_PID/stat")
  stop_platform
  python3 - "$name" "$rows" "$start" "$end" "$cpu" "$work/status.json" <<'PY'
import json, sys
name, rows, start, end, cpu = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = json.load(open(sys.argv[6]))
wall = end - start
print(f"{name:<28} {rows / wall:>9,.0f} rec/s wall  {rows / cpu:>9,.0f} rec/CPU-s  {s['checkpoints']:>3} checkpoints  ({wall:.1f} s, {cpu:.1f} CPU s)")
PY
}

echo "$rows reviews from Kafka into Cassandra, drained (platform start included):"
run_mode "at-most-once (none)" at-most-once 5000
run_mode "at-least-once, every 1 s" at-least-once 1000
run_mode "exactly-once, every 10 s" exactly-once 10000
run_mode "exactly-once, every 1 s" exactly-once 1000

# Crash and restart: kill -9 after a checkpoint of the first half, then the second half comes and
# the way back is timed. (Killed after two checkpoints of the whole input, a fast machine had
# read it all by then, and the restarted platform had nothing left to process.)
export PLATFORM_DELIVERY=exactly-once PLATFORM_TOML="[checkpoint]
interval_ms = 1000"
new_tenant ckptcrash
half=$((rows / 2 + 1))
head -n "$half" "$data/reviews.tsv" >"$work/first.tsv"
{ head -n 1 "$data/reviews.tsv"; tail -n +"$((half + 1))" "$data/reviews.tsv"; } >"$work/second.tsv"
$bin produce --file "$work/first.tsv" --tenant "$tenant" >/dev/null 2>&1
start_platform "$work" "$tenant" "$admin"
until [ "$(status | field checkpoints)" -ge 1 ]; do sleep 0.05; done
kill -KILL "$PLATFORM_PID"; wait "$PLATFORM_PID" 2>/dev/null || true
$bin produce --file "$work/second.tsv" --tenant "$tenant" >/dev/null 2>&1
restart=$(date +%s.%N)
start_platform "$work" "$tenant" "$admin"
answering=$(date +%s.%N)
until [ "$(status | field records_processed)" -gt 0 ]; do sleep 0.02; done
processing=$(date +%s.%N)
app drain --tenant "$tenant" --app reviews-daily --admin "http://$admin" --wait >/dev/null
stop_platform
python3 -c "
r, a, p = $restart, $answering, $processing
print(f'restart after kill -9: admin API up in {a - r:.2f} s, processing again {p - r:.2f} s after the start')"
