#!/usr/bin/env bash
# What the dashboard costs the platform: its process's CPU over SECONDS with nobody looking, then
# over SECONDS with the page open in headless Chromium (polling once a second), one app running
# with a stream of STREAM_RATE records/s. Usage: scripts/bench-dashboard.sh [SECONDS] (via
# `just bench`; needs scripts/browser-prereqs.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
rate="${STREAM_RATE:-1000}"
admin="127.0.0.1:9188"
python="$root/.state/browser-venv/bin/python"
[[ -x "$python" ]] || scripts/browser-prereqs.sh
source scripts/platform.sh
new_tenant dash
rows=$(((2 * seconds + 60) * rate))
$bin gen --out "$work/reviews.tsv" --rows "$rows" --late 0 --malformed 0.001 2>/dev/null
start_platform "$work" "$tenant" "$admin"
platform=$PLATFORM_PID
$bin produce --file "$work/reviews.tsv" --tenant "$tenant" --rate "$rate" >"$work/produce.log" 2>&1 &
producer=$!
trap 'kill -TERM $producer 2>/dev/null || true; kill -TERM $PLATFORM_PID 2>/dev/null; wait $PLATFORM_PID 2>/dev/null || true' EXIT
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$platform/stat"; }
sleep 10 # the stream reaches its pace
a0=$(cpu); t0=$(date +%s.%N)
sleep "$seconds"
a1=$(cpu); t1=$(date +%s.%N)
DASH_URL="http://$admin" DASH_TENANT="$tenant" DASH_APP=reviews-daily DASH_SECONDS="$seconds" \
  "$python" tests/browser/hold_open.py >"$work/browser.log" 2>&1 &
browser=$!
until grep -q '^open' "$work/browser.log" 2>/dev/null; do
  kill -0 "$browser" 2>/dev/null || { cat "$work/browser.log" >&2; exit 1; }
  sleep 0.2
done
b0=$(cpu); u0=$(date +%s.%N)
wait "$browser"
b1=$(cpu); u1=$(date +%s.%N)
python3 - "$a0" "$a1" "$t0" "$t1" "$b0" "$b1" "$u0" "$u1" "$rate" "$(grep '^polls' "$work/browser.log")" <<'PY'
import sys
a0, a1, t0, t1, b0, b1, u0, u1, rate = map(float, sys.argv[1:10])
closed = (a1 - a0) / (t1 - t0) * 100
opened = (b1 - b0) / (u1 - u0) * 100
print(f"dashboard: platform CPU with a stream of {rate:.0f} records/s, % of one core")
print(f"  nobody looking: {closed:.2f}% over {t1 - t0:.0f} s")
print(f"  page open:      {opened:.2f}% over {u1 - u0:.0f} s ({sys.argv[10]} API requests of the page)")
print(f"  difference:     {opened - closed:+.2f} points of one core")
PY
