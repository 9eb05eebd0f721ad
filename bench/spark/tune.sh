#!/usr/bin/env bash
# How bench/spark/reviews_daily.py's settings were chosen: the same ROWS reviews (already in
# Kafka) run through the Spark job once per maxOffsetsPerTrigger and shuffle-partition setting,
# printing records/s from the first micro-batch to the last. A setting is OFFSETS:SHUFFLE[:SINK]
# (SINK noop: everything but the Cassandra write). Usage: bench/spark/tune.sh [ROWS]
# (Kafka and Cassandra running; after bench/setup.sh). Leaves nothing behind in Kafka/Cassandra.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
rows="${1:-200000}"
export JAVA_HOME="${MYSIMBDP_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
py="$root/bench/.venv/bin/python"
bin="$root/target/release/mysimbdp"
id="sparktune_$(date +%s)"
work="$root/.state/bench-spark/$id"
mkdir -p "$work"
trap '"$py" bench/cleanup.py --prefix "$id" >/dev/null || true; rm -f "$work/reviews.tsv"' EXIT
"$bin" gen --out "$work/reviews.tsv" --rows "$rows" --seed 42 --days $(( rows * 730 / 300000 )) \
  --late 0 --malformed 0 >/dev/null 2>&1
"$bin" produce --file "$work/reviews.tsv" --tenant "$id" --partitions 4 >/dev/null 2>&1
settings="${BENCH_TUNE:-50000:2 100000:2 200000:2 100000:4}"
for setting in $settings; do
  IFS=: read -r offsets shuffle sink <<<"$setting"
  sink=${sink:-cassandra}
  dir="$work/$offsets-$shuffle-$sink"
  mkdir -p "$dir"
  "$py" bench/spark/reviews_daily.py --topic "$id.reviews" --keyspace "${id}_${offsets}_$shuffle" \
    --checkpoint "$dir/checkpoint" --progress "$dir/progress.jsonl" --summary "$dir/summary.json" \
    --pid-file "$dir/jvm.pid" --ivy "$root/.state/bench-spark/ivy" --expect "$rows" \
    --max-offsets "$offsets" --shuffle-partitions "$shuffle" --sink "$sink" >"$dir/spark.log" 2>&1
  "$py" - "$dir" "$offsets" "$shuffle" "$sink" <<'PY'
import json, sys
from datetime import datetime
d, offsets, shuffle, sink = sys.argv[1:]
batches = [json.loads(l) for l in open(f"{d}/progress.jsonl")]
batches = [b for b in batches if b["numInputRows"] > 0]
start = lambda b: datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).timestamp()
end = lambda b: start(b) + b["durationMs"]["triggerExecution"] / 1000
rows = sum(b["numInputRows"] for b in batches)
warm = sum(b["numInputRows"] for b in batches[1:])
summary = json.load(open(f"{d}/summary.json"))
print(f"maxOffsetsPerTrigger {int(offsets):>7,} shuffle partitions {shuffle} sink {sink:9s}: "
      f"{rows / (end(batches[-1]) - start(batches[0])):6,.0f} records/s, after the first batch "
      f"{warm / max(1e-9, end(batches[-1]) - end(batches[0])):6,.0f} records/s, "
      f"{len(batches)} batches, JVM {summary['jvm']['cpu_s']:.0f} CPU s")
PY
done
