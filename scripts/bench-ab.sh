#!/usr/bin/env bash
# Two builds of the platform side by side, interleaved (A, B, A, B, ...), on the end-to-end
# bench (scripts/bench-e2e.sh), so that the machine's noise falls on both alike; prints
# min / median / max of each measure per build. Usage:
#   scripts/bench-ab.sh BIN_A BIN_B [RUNS=3] [ROWS=300000]
# (copy a build aside first, e.g. `cp target/release/mysimbdp /tmp/before`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
a=$1 b=$2 runs=${3:-3} rows=${4:-300000}
out=".state/bench-ab/$(date +%s).jsonl"
mkdir -p "$(dirname "$out")"
for i in $(seq 1 "$runs"); do
  for bin in "$a" "$b"; do
    echo "== run $i: $bin"
    BENCH_BIN="$bin" BENCH_JSON="$out" scripts/bench-e2e.sh "$rows" | sed 's/^/   /'
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["bin"], []).append(r)
def mmm(values, fmt):
    v = sorted(values)
    return " / ".join(fmt.format(x) for x in (v[0], statistics.median(v), v[-1]))
print(f"\n{sys.argv[1]}: min / median / max over {len(runs) // max(1, len(by))} runs each")
print("| build | records/s | platform µs/record | Cassandra µs/record | Kafka µs/record | all three µs/record | rows written | other load (cores) |")
print("|---|---|---|---|---|---|---|---|")
for bin, rs in by.items():
    per = lambda k: [r[k] * 1e6 / r["rows"] for r in rs]
    print(f"| {bin} | {mmm([r['records_per_s'] for r in rs], '{:,.0f}')} | "
          f"{mmm(per('platform_cpu_s'), '{:.2f}')} | {mmm(per('cassandra_cpu_s'), '{:.1f}')} | "
          f"{mmm(per('kafka_cpu_s'), '{:.2f}')} | "
          f"{mmm([(r['platform_cpu_s'] + r['kafka_cpu_s'] + r['cassandra_cpu_s']) * 1e6 / r['rows'] for r in rs], '{:.1f}')} | "
          f"{mmm([r['rows_emitted'] for r in rs], '{:,.0f}')} | {mmm([r['other_load_cores'] for r in rs], '{:.2f}')} |")
PY
