#!/usr/bin/env bash
# End-to-end throughput through real Kafka into real Cassandra: N generated reviews are produced
# first, then the platform starts and drains them. Prints records/s of wall time, the CPU
# seconds of the platform, Kafka and Cassandra over the run (per record, and the whole
# machine's), and the machine's other load meanwhile; with BENCH_JSON=FILE also appends them as
# one JSON line. BENCH_BIN runs another build of the platform (for before/after runs side by
# side). BENCH_PERF=FILE samples the platform with `perf record -g` meanwhile (its summary next
# to FILE; BENCH_PERF_ARGS="--call-graph dwarf" for whole stacks). The run's topics are deleted
# at the end (BENCH_KEEP=1 keeps them): a few runs of 300 000 reviews would otherwise fill the
# local broker. Usage: scripts/bench-e2e.sh [ROWS]
# (run via `just bench`)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-300000}"
admin="127.0.0.1:${BENCH_ADMIN_PORT:-9189}"
source scripts/platform.sh
bin="${BENCH_BIN:-$bin}"
new_tenant bench
$bin gen --out "$work/reviews.tsv" --rows "$rows" --late 0 --malformed 0 2>/dev/null
echo "produce:"
$bin produce --file "$work/reviews.tsv" --tenant "$tenant" 2>&1 | grep -E "sent|elapsed|rate" | sed 's/^/  /'
rm -f "$work/reviews.tsv"
# service_pid NAME PORT: the local Kafka's or Cassandra's pid (up.sh's pid file in the services'
# state folder, MYSIMBDP_STATE_DIR or .state, else whoever listens on the port).
service_pid() {
  cat "$STATE_DIR/$1.pid" 2>/dev/null ||
    ss -ltnpH "sport = :$2" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true
}
kafka=$(service_pid kafka "$KAFKA_PORT")
cassandra=$(service_pid cassandra "$CASSANDRA_PORT")
ticks() { [[ -n "$1" && -r "/proc/$1/stat" ]] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
k0=$(ticks "$kafka"); c0=$(ticks "$cassandra"); m0=$(machine)
start=$(date +%s.%N)
start_platform "$work" "$tenant" "$admin"
platform=$PLATFORM_PID
if [[ -n "${BENCH_PERF:-}" ]]; then
  perf record -q -F 997 ${BENCH_PERF_ARGS:--g} -o "$BENCH_PERF" -p "$platform" >/dev/null 2>&1 &
  perf_pid=$!
fi
app drain --tenant "$tenant" --app reviews-daily --admin "http://$admin" --wait >"$work/status.json"
end=$(date +%s.%N)
p1=$(ticks "$platform"); k1=$(ticks "$kafka"); c1=$(ticks "$cassandra"); m1=$(machine)
# Threads and context switches of the platform, over its life so far.
threads=$(ls "/proc/$platform/task" | wc -l)
switches=$(cat /proc/"$platform"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{print s+0}')
echo "  platform threads: $threads; context switches: $switches"
if [[ -n "${BENCH_PERF:-}" ]]; then
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  { perf report -i "$BENCH_PERF" --no-children --sort comm --stdio -g none 2>/dev/null || true; } | grep -v '^#' | grep -v '^$' | head -15 >"$BENCH_PERF.threads.txt" || true
  { perf report -i "$BENCH_PERF" --no-children --sort dso,sym --stdio -g none 2>/dev/null || true; } | grep -v '^#' | grep -v '^$' | head -40 >"$BENCH_PERF.symbols.txt" || true
  echo "  perf summaries: $BENCH_PERF.threads.txt, $BENCH_PERF.symbols.txt"
fi
python3 - "$rows" "$start" "$end" "$(getconf CLK_TCK)" "$p1" "$k0" "$k1" "$c0" "$c1" "$m0" "$m1" \
  "$work/status.json" "${BENCH_JSON:-}" "$bin" <<'PY'
import json, sys
a = sys.argv
rows, start, end, hz = int(a[1]), float(a[2]), float(a[3]), float(a[4])
platform = float(a[5]) / hz
kafka = (float(a[7]) - float(a[6])) / hz
cassandra = (float(a[9]) - float(a[8])) / hz
m0, m1 = [list(map(float, x.split())) for x in (a[10], a[11])]
busy = (m1[0] - m0[0]) / hz
status = json.load(open(a[12]))
wall = end - start
other = max(0.0, busy - platform - kafka - cassandra)
print(f"platform: {rows} reviews from Kafka into Cassandra in {wall:.1f} s (start, load, drain)")
print(f"  {rows / wall:,.0f} records/s of wall time")
print(f"  CPU s: platform {platform:.2f} ({platform * 1e6 / rows:.2f} µs/record, "
      f"{rows / platform:,.0f} records per CPU s), Cassandra {cassandra:.2f} "
      f"({cassandra * 1e6 / rows:.2f} µs/record), Kafka {kafka:.2f}; the three "
      f"{(platform + kafka + cassandra) * 1e6 / rows:.2f} µs/record")
print(f"  the machine meanwhile: {busy / wall:.2f} of its cores busy, {other / wall:.2f} of them "
      f"by other processes")
print(f"  rows written {status['rows_emitted']}, late {status['late']}, dead letters {status['dead_letters']}")
if a[13]:
    with open(a[13], "a") as f:
        f.write(json.dumps({"bin": a[14], "rows": rows, "wall_s": wall, "records_per_s": rows / wall,
                            "platform_cpu_s": platform, "kafka_cpu_s": kafka,
                            "cassandra_cpu_s": cassandra, "machine_busy_cores": busy / wall,
                            "other_load_cores": other / wall,
                            "rows_emitted": status["rows_emitted"]}) + "\n")
PY
if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
  kill -TERM "$platform" 2>/dev/null && wait "$platform" 2>/dev/null || true
  trap - EXIT
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$(kafka_tools_config)" --delete --topic "$tenant\\..*" >/dev/null 2>&1 ||
    echo "  (the run's topics $tenant.* were not deleted)"
fi
