#!/usr/bin/env bash
# Spark Structured Streaming against mysimbdp on this machine (issue 5): the same generated
# reviews in the same 4-partition topic layout, the same Cassandra, one engine after the other.
#  1. throughput: ROWS reviews already in Kafka, each engine from start to all of them in
#     Cassandra; records/s, the engine's own processing rate, CPU seconds, peak memory;
#     then a check that both engines' daily aggregates are equal
#  2. latency: at each fixed input rate (and at ~80% of each engine's own throughput), markers
#     from produce to the first update in Cassandra (p50, p99), lag over time, CPU
#  3. bench/results.json, bench/report.md and bench/figures/*.png
# Usage: scripts/bench-spark.sh [ROWS=1000000]  (run via `just bench-spark`; needs Kafka and Cassandra)
# A million reviews: at 300 000 our run lasted under 2 s, too short for its start and end to be
# timed to a few per cent.
# Environment: BENCH_RUNS (3 throughput rounds, each engine once per round, interleaved: the
# tables give min / median / max), BENCH_RATES ("1000 10000 50000"; "" for throughput only),
# BENCH_SECONDS (20 per rate), BENCH_HOLD (1: also
# run each engine at ~80% of its throughput), BENCH_SPARK_MAX_OFFSETS (maxOffsetsPerTrigger,
# 50000), BENCH_KEEP (1: keep this run's topics and keyspaces).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-${BENCH_ROWS:-1000000}}"
rates="${BENCH_RATES-1000 10000 50000}"
runs="${BENCH_RUNS:-3}"
seconds="${BENCH_SECONDS:-20}"
hold="${BENCH_HOLD:-1}"
max_offsets="${BENCH_SPARK_MAX_OFFSETS:-50000}"
admin="127.0.0.1:9186"
export JAVA_HOME="${MYSIMBDP_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
source scripts/platform.sh   # $bin and app()
wasm="$root/target/wasm32-wasip2/release/reviews_daily.wasm"
[[ -x "$bin" && -f "$wasm" ]] || { echo "build first: just build (missing $bin or $wasm)" >&2; exit 1; }
bench/setup.sh
py="$root/bench/.venv/bin/python"

id="$(date +%s)"
run="$root/.state/bench-spark/$id"
mkdir -p "$run/thr" "$run/lat"
# The binary and the app are copied so that a rebuild during the run cannot change the engine
# under test.
cp "$bin" "$run/mysimbdp"
cp "$wasm" "$run/reviews_daily.wasm"
bin="$run/mysimbdp"
wasm="$run/reviews_daily.wasm"
# On exit: stop this script's own background jobs that still run (the platform, the Spark job,
# monitors; by pid, nothing else), and delete the run's topics and keyspaces.
cleanup() {
  local pid
  for pid in $(jobs -pr); do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
    "$py" bench/cleanup.py --prefix "simbench$id" --prefix "sparkbench$id" || true
  fi
  rm -f "$run/mysimbdp" "$run"/*.tsv "$run"/lat/*.tsv
}
trap cleanup EXIT
log() { printf '== %s\n' "$*"; }
now() { date +%s.%N; }

# gen_reviews FILE ROWS SEED: synthetic reviews with out-of-order rows (within the watermark) but
# no late or malformed ones, so both engines must give the same aggregates; about 411 reviews a
# day (300 000 over two years) whatever the size.
gen_reviews() {
  local days=$(( $2 * 730 / 300000 ))
  (( days < 3 )) && days=3
  "$bin" gen --out "$1" --rows "$2" --seed "$3" --days "$days" --late 0 --malformed 0 >/dev/null 2>&1
}

# produce_all FILE TENANT LOG: the whole file into <tenant>.reviews (created with 4 partitions).
produce_all() { "$bin" produce --file "$1" --tenant "$2" --partitions 4 >"$3" 2>&1; }

# create_topic TENANT: the empty 4-partition input topic, before an engine subscribes to it.
create_topic() {
  : >"$run/empty.tsv"
  "$bin" produce --file "$run/empty.tsv" --tenant "$1" --partitions 4 >/dev/null 2>&1
}

# service_pid NAME PORT: the pid of the local Kafka or Cassandra (up.sh's pid file in the
# services' state folder, MYSIMBDP_STATE_DIR or .state, or whoever listens on the port), so that
# the monitor can record their CPU too; empty if unknown.
service_pid() {
  cat "$STATE_DIR/$1.pid" 2>/dev/null ||
    ss -ltnpH "sport = :$2" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true
}
services=(--service "kafka=$(service_pid kafka "$KAFKA_PORT")" --service "cassandra=$(service_pid cassandra "$CASSANDRA_PORT")")

# start_monitor DIR PID TOPIC ARGS...: samples the engine into DIR/monitor.jsonl (MONITOR_PID).
start_monitor() {
  local dir=$1 pid=$2 topic=$3
  shift 3
  "$py" bench/monitor.py --pid "$pid" --topic "$topic" --out "$dir/monitor.jsonl" \
    --stop-file "$dir/monitor.stop" "${services[@]}" "$@" &
  MONITOR_PID=$!
}
stop_monitor() { touch "$1/monitor.stop"; wait "$MONITOR_PID" 2>/dev/null || true; }

# start_mysimbdp DIR TENANT [INTERVAL]: the platform with TENANT's reviews-daily app (the same
# config as scripts/platform.sh writes), a monitor on it from its launch, its launch time in
# DIR/times.json; returns once the app answers on the admin API.
start_mysimbdp() {
  local dir=$1 tenant=$2 interval=${3:-0.5} launched
  write_config "$dir" "$tenant" "$admin"
  launched=$(now)
  "$bin" run --config "$dir/mysimbdp.toml" >"$dir/platform.log" 2>&1 &
  PLATFORM_PID=$!
  printf '{"launched": %s}\n' "$launched" >"$dir/times.json"
  start_monitor "$dir" "$PLATFORM_PID" "$tenant.reviews" --interval "$interval" \
    --metrics-url "http://$admin/metrics" --tenant "$tenant"
  wait_answering "$tenant" "$admin" "$dir/platform.log"
}
stop_mysimbdp() {
  kill -TERM "$PLATFORM_PID" 2>/dev/null || true
  wait "$PLATFORM_PID" 2>/dev/null || true
  stop_monitor "$1"
}

# start_spark DIR TENANT INTERVAL ARGS...: the Spark job (SPARK_PID) on TENANT's topic and
# keyspace, with a monitor on its process tree (the Python driver and its JVM).
start_spark() {
  local dir=$1 tenant=$2 interval=$3
  shift 3
  printf '{"launched": %s}\n' "$(now)" >"$dir/times.json"
  "$py" bench/spark/reviews_daily.py --topic "$tenant.reviews" --keyspace "$tenant" \
    --checkpoint "$dir/checkpoint" --progress "$dir/progress.jsonl" --summary "$dir/summary.json" \
    --pid-file "$dir/jvm.pid" --ivy "$root/.state/bench-spark/ivy" --max-offsets "$max_offsets" \
    "$@" >"$dir/spark.log" 2>&1 &
  SPARK_PID=$!
  start_monitor "$dir" "$SPARK_PID" "$tenant.reviews" --interval "$interval" \
    --spark-progress "$dir/progress.jsonl"
}
wait_spark() {
  wait "$SPARK_PID" || { tail -40 "$1/spark.log" >&2; return 1; }
  stop_monitor "$1"
}

# ---------------------------------------------------------------------------------------------
log "run $id: $rows reviews; rates $rates rec/s for ${seconds}s each; raw files in $run"
"$py" - "$run/meta.json" "$id" "$rows" "$rates" "$seconds" "$max_offsets" <<'PY'
import json, os, platform, subprocess, sys, time
out, run_id, rows, rates, seconds, max_offsets = sys.argv[1:]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
json.dump({"id": run_id, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "rows": int(rows), "rates": [int(r) for r in rates.split()], "seconds": float(seconds),
           "spark_max_offsets": int(max_offsets), "cores": os.cpu_count(),
           "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
           "cpu_model": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
           "kernel": platform.release(), "python": platform.python_version(),
           "java": sh("$JAVA_HOME/bin/java -version 2>&1 | head -1"),
           "git": sh("git rev-parse --short HEAD") + (" (with uncommitted changes)" if sh("git status --porcelain -- host guest-sdk tenant-apps wit") else ""),
           "load_at_start": os.getloadavg()}, open(out, "w"), indent=1)
PY

log "1. throughput: $rows reviews already in Kafka, $runs rounds"
gen_reviews "$run/reviews.tsv" "$rows" 42
# thr/ holds round 1 (its tables are compared row by row), thr-2/, thr-3/... the others.
for round in $(seq 1 "$runs"); do
  thr="$run/thr"; [[ $round == 1 ]] || thr="$run/thr-$round"
  sfx="thr"; [[ $round == 1 ]] || sfx="thr$round"
  mkdir -p "$thr/mysimbdp" "$thr/spark"
  produce_all "$run/reviews.tsv" "simbench${id}$sfx" "$thr/mysimbdp/produce.log"
  produce_all "$run/reviews.tsv" "sparkbench${id}$sfx" "$thr/spark/produce.log"
  grep -h "rate" "$thr"/*/produce.log | sed "s/^/   round $round produce: /"

  dir="$thr/mysimbdp"
  start_mysimbdp "$dir" "simbench${id}$sfx" 0.25
  app drain --tenant "simbench${id}$sfx" --app reviews-daily --admin "http://$admin" --wait >"$dir/status.json"
  drained=$(now)
  "$py" -c 'import json,sys; p=sys.argv[1]; t=json.load(open(p)); t["drained"]=float(sys.argv[2]); json.dump(t,open(p,"w"))' "$dir/times.json" "$drained"
  stop_mysimbdp "$dir"
  echo "   round $round mysimbdp: done"

  dir="$thr/spark"
  start_spark "$dir" "sparkbench${id}$sfx" 0.25 --expect "$rows"
  wait_spark "$dir"
  echo "   round $round spark: done"
  if [[ $round == 1 ]]; then
    "$py" bench/compare.py --left "simbench${id}thr" --right "sparkbench${id}thr" \
      --out "$run/correctness.json" | sed 's/^/   /'
  fi
  # Each round's topics and keyspaces go once compared: the machine keeps no more than one.
  if [[ "${BENCH_KEEP:-0}" != 1 && $round != 1 ]]; then
    "$py" bench/cleanup.py --prefix "simbench${id}$sfx" --prefix "sparkbench${id}$sfx" >/dev/null || true
  fi
done
"$py" bench/analyze.py "$run" "$run/results.json" >/dev/null
"$py" - "$run/results.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["throughput_runs"]
for engine, rs in runs.items():
    for i, t in enumerate(rs, 1):
        warm = f" ({t['warm_records_per_s']:,.0f} once warm)" if t.get("warm_records_per_s") else ""
        print(f"   round {i} {engine:8s} {t['records_per_s']:9,.0f} records/s{warm}; engine "
              f"{t['engine_us_per_record']:.1f} µs CPU/record, engine+Kafka+Cassandra "
              f"{t['machine_us_per_record']:.1f} µs/record; other load {t['other_cores']:.2f} cores")
PY

# ---------------------------------------------------------------------------------------------
# latency_run ENGINE RATE TSV KEYS: one engine at one fixed input rate, after the warm-up.
latency_run() {
  local engine=$1 rate=$2 file=$3 keys=$4 tenant dir
  dir="$run/lat/$engine-$rate"
  mkdir -p "$dir"
  if [[ $engine == mysimbdp ]]; then tenant="simbench${id}r$rate"; else tenant="sparkbench${id}r$rate"; fi
  create_topic "$tenant"
  if [[ $engine == mysimbdp ]]; then
    start_mysimbdp "$dir" "$tenant"
  else
    start_spark "$dir" "$tenant" 0.5 --stop-file "$dir/stop" --ready-file "$dir/ready"
    local _
    for _ in $(seq 1 600); do
      [[ -f "$dir/ready" ]] && break
      kill -0 "$SPARK_PID" 2>/dev/null || { tail -40 "$dir/spark.log" >&2; return 1; }
      sleep 0.2
    done
  fi
  "$py" bench/latency.py run --file "$file" --keys "$keys" --tenant "$tenant" --keyspace "$tenant" \
    --rate "$rate" --bin "$bin" --out "$dir/latency.json" \
    --warmup "$run/lat/warmup.tsv" --warmup-key "WARM$rate" | sed "s/^/   $engine: /"
  if [[ $engine == mysimbdp ]]; then
    stop_mysimbdp "$dir"
  else
    touch "$dir/stop"
    wait_spark "$dir"
  fi
}

# latency_rate RATE ENGINES...: the input for RATE (with markers), then each engine on it.
latency_rate() {
  local rate=$1 engine
  shift
  local file="$run/lat/reviews-$rate.tsv"
  # The warm-up: 30 000 reviews dated from 2014-06-01, before the measured ones (from 2015-01-01).
  "$bin" gen --out "$run/lat/warmup-plain.tsv" --rows 30000 --seed 3 --start-date 2014-06-01 \
    --days 73 --late 0 --malformed 0 >/dev/null 2>&1
  "$py" bench/latency.py warmup --in "$run/lat/warmup-plain.tsv" --out "$run/lat/warmup.tsv" \
    --key "WARM$rate"
  # Event time moves one day per 5 s of input at every rate, as a live stream's would barely
  # move: a marker then shows up through the engine's update path, not because the watermark
  # happened to close its window (which at ~411 reviews a day and 10 000 records/s it would
  # within a fraction of a second).
  "$bin" gen --out "$run/lat/plain-$rate.tsv" --rows $(( rate * ${seconds%.*} )) --seed 7 \
    --days $(( ${seconds%.*} / 5 > 2 ? ${seconds%.*} / 5 : 2 )) --late 0 --malformed 0 >/dev/null 2>&1
  "$py" bench/latency.py markers --in "$run/lat/plain-$rate.tsv" --out "$file" \
    --keys "$run/lat/keys-$rate.json" --rate "$rate" --tag "r$rate" >/dev/null
  rm -f "$run/lat/plain-$rate.tsv"
  for engine in "$@"; do
    latency_run "$engine" "$rate" "$file" "$run/lat/keys-$rate.json"
  done
  rm -f "$file"
}

[[ -n "$rates" ]] && log "2. latency at fixed input rates"
for rate in $rates; do
  latency_rate "$rate" mysimbdp spark
done
if [[ "$hold" == 1 && -n "$rates" ]]; then
  log "2b. each engine at about 80% of its own throughput"
  for engine in mysimbdp spark; do
    # 80% of the engine's records/s (Spark's after its first, cold micro-batch), 2 digits.
    rate=$("$py" -c '
import json, sys
t = json.load(open(sys.argv[1]))["throughput"][sys.argv[2]]
rate = 0.8 * (t.get("warm") or t)["records_per_s"]
print(int(float(f"{rate:.2g}")))' "$run/results.json" "$engine")
    if [[ " $rates " == *" $rate "* ]]; then continue; fi
    latency_rate "$rate" "$engine"
  done
fi

# ---------------------------------------------------------------------------------------------
log "3. report"
"$py" bench/analyze.py "$run" bench/results.json
"$py" bench/report.py bench/results.json
