#!/usr/bin/env bash
# End-to-end throughput through real Kafka into real Cassandra: N generated reviews are produced
# first, then the platform starts and drains them. Prints records/s of wall time and per CPU
# second of the platform process. Usage: scripts/bench-e2e.sh [ROWS]   (run via `just bench`)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-300000}"
admin="127.0.0.1:9189"
source scripts/platform.sh
new_tenant bench
$bin gen --out "$work/reviews.tsv" --rows "$rows" --late 0 --malformed 0 2>/dev/null
echo "produce:"
$bin produce --file "$work/reviews.tsv" --tenant "$tenant" 2>&1 | grep -E "sent|elapsed|rate" | sed 's/^/  /'
start=$(date +%s.%N)
start_platform "$work" "$tenant" "$admin"
platform=$PLATFORM_PID
app drain --tenant "$tenant" --app reviews-daily --admin "http://$admin" --wait >"$work/status.json"
end=$(date +%s.%N)
ticks=$(getconf CLK_TCK)
cpu=$(awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$platform/stat")
python3 - "$rows" "$start" "$end" "$cpu" "$work/status.json" <<'PY'
import json, sys
rows, start, end, cpu = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
status = json.load(open(sys.argv[5]))
wall = end - start
print(f"platform: {rows} reviews from Kafka into Cassandra in {wall:.1f} s (start, load, drain)")
print(f"  {rows / wall:,.0f} records/s of wall time; {cpu:.1f} CPU s used: {rows / cpu:,.0f} records per CPU second")
print(f"  rows written {status['rows_emitted']}, late {status['late']}, dead letters {status['dead_letters']}")
PY
