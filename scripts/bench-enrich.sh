#!/usr/bin/env bash
# The enrich stage's cost end to end: the same N generated reviews, produced once per run, drained
# by reviews-daily (no service) and by reviews-sentiment calling the sentiment service in requests
# of 1, 64 and 512 reviews; then the service's own capacity measured alone at the same sizes, with
# one client and with as many concurrent clients as the platform keeps requests in flight.
#
# Per run: records/s of wall time (from the platform's start to the end of the drain) and, from the
# platform's /metrics after the drain, p99 of two histograms:
#   batch p99  `mysimbdp_batch_duration_seconds`: per batch, from its first record taken from Kafka
#              until the batch is in its windows (for reviews-sentiment: the wait for the service's
#              answers included). The drain starts from a backlog, so batches are full.
#   call p99   `mysimbdp_enrich_call_duration_seconds`: one request to the service, from sending it
#              to its answer read (a request waiting for a slot of max_in_flight is not counted).
# Percentiles are interpolated within the histograms' buckets (…, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s).
# Prints a table and writes it to bench/enrich.md. Usage: scripts/bench-enrich.sh [ROWS]  (via
# `just bench`; needs the sentiment service on 127.0.0.1:${MYSIMBDP_SENTIMENT_PORT:-9300})
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-30000}"
in_flight="${BENCH_MAX_IN_FLIGHT:-4}"
# A free port for the platform's admin API (other platforms may run on this machine).
admin="127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
service="http://127.0.0.1:${MYSIMBDP_SENTIMENT_PORT:-9300}"
source scripts/platform.sh
new_tenant enrich
$bin gen --out "$work/reviews.tsv" --rows "$rows" --late 0 --malformed 0 2>/dev/null
results="$work/results.tsv"
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "enrich bench: $rows reviews, max_in_flight $in_flight ($work); load average before: $load_before"

# run LABEL WASM APP_NAME SUFFIX: the input produced into tenant <tenant>xSUFFIX (each run its
# own topic and table), then a platform started and the app drained; prints the rate and p99s.
run() {
  local label=$1 wasm_path=$2 app_name=$3 run_tenant="${tenant}x$4"
  $bin produce --file "$work/reviews.tsv" --tenant "$run_tenant" >/dev/null 2>&1
  local run_work="$work/$4"
  mkdir -p "$run_work"
  local start end
  start=$(date +%s.%N)
  wasm="$wasm_path" APP_NAME="$app_name" \
    PLATFORM_TOML="[services.sentiment]
url = \"$service/v1/sentiment\"
tenants = [\"$run_tenant\"]
max_in_flight = $in_flight" start_platform "$run_work" "$run_tenant" "$admin"
  app drain --tenant "$run_tenant" --app "$app_name" --admin "http://$admin" --wait >"$run_work/status.json"
  end=$(date +%s.%N)
  curl -sf -H "Authorization: Bearer $MYSIMBDP_ADMIN_TOKEN" "http://$admin/metrics" >"$run_work/metrics.txt"
  kill -TERM "$PLATFORM_PID" 2>/dev/null || true
  wait "$PLATFORM_PID" 2>/dev/null || true
  trap - EXIT
  python3 - "$label" "$rows" "$start" "$end" "$run_work/status.json" "$run_work/metrics.txt" "$run_tenant" >>"$results" <<'PY'
import json, re, sys
label, rows, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
status = json.load(open(sys.argv[5]))
metrics, tenant = open(sys.argv[6]).read(), sys.argv[7]

def p99(name):
    buckets = []
    for line in metrics.splitlines():
        m = re.match(name + r'_bucket\{(.*)le="([^"]+)"\} (\d+)', line)
        if m and f'tenant="{tenant}"' in m.group(1):
            bound = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            buckets.append((bound, int(m.group(3))))
    if not buckets or buckets[-1][1] == 0:
        return "-"
    total, target, low, below = buckets[-1][1], 0.99 * buckets[-1][1], 0.0, 0
    for bound, cumulative in buckets:
        if cumulative >= target:
            if bound == float("inf"):
                return f">{low:g} s"
            share = (target - below) / max(cumulative - below, 1)
            return f"{(low + (bound - low) * share) * 1000:,.0f} ms"
        low, below = bound, cumulative
    return "-"

calls = (status.get("enrich") or {}).get("calls", 0)
elapsed = end - start
print("\t".join([label, f"{rows / elapsed:,.0f}", f"{elapsed:.1f}", str(calls),
                 p99("mysimbdp_batch_duration_seconds"), p99("mysimbdp_enrich_call_duration_seconds"),
                 str(status["dead_letters"])]))
PY
  tail -1 "$results" | awk -F'\t' '{printf "  %-36s %9s records/s  (%5s s, %s calls, batch p99 %s, call p99 %s, dead letters %s)\n", $1, $2, $3, $4, $5, $6, $7}'
}

daily="$root/target/wasm32-wasip2/release/reviews_daily.wasm"
run "reviews-daily (no service)" "$daily" reviews-daily daily
for size in 1 64 512; do
  dir="$root/$work/app-$size"
  mkdir -p "$dir"
  cp "$root/target/wasm32-wasip2/release/reviews_sentiment.wasm" "$dir/"
  sed "s/^batch_size = .*/batch_size = $size/" "$root/tenant-apps/reviews-sentiment/enrich.toml" \
    >"$dir/reviews_sentiment.enrich.toml"
  run "reviews-sentiment, batch_size $size" "$dir/reviews_sentiment.wasm" reviews-sentiment "s$size"
done

echo "  the service alone (kept-alive connections, the same review bodies, 5 s per line):"
python3 - "$service" "$work/reviews.tsv" "$in_flight" >"$work/alone.tsv" <<'PY'
import http.client, json, sys, threading, time, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
bodies = [line.split("\t")[13] for line in open(sys.argv[2], encoding="utf-8").read().splitlines()[1:]]
in_flight = int(sys.argv[3])

def client(size, clients, index, counts, stop):
    conn = http.client.HTTPConnection(url.hostname, url.port)
    done, calls, at = 0, 0, index * size
    while not stop.is_set():
        texts = [bodies[(at + i) % len(bodies)] for i in range(size)]
        conn.request("POST", "/v1/sentiment", json.dumps({"texts": texts}), {"Content-Type": "application/json"})
        conn.getresponse().read()
        done, calls, at = done + size, calls + 1, at + size * clients
    counts[index] = (done, calls)

for size in (1, 64, 512):
    for clients in sorted({1, in_flight}):
        counts, stop = [(0, 0)] * clients, threading.Event()
        threads = [threading.Thread(target=client, args=(size, clients, i, counts, stop)) for i in range(clients)]
        start = time.time()
        for t in threads:
            t.start()
        time.sleep(5)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.time() - start
        done, calls = sum(c[0] for c in counts), sum(c[1] for c in counts)
        print(f"{size}\t{clients}\t{done / elapsed:.0f}\t{elapsed / max(calls, 1) * clients * 1000:.2f}")
PY
awk -F'\t' '{printf "    batch %3s, %s client(s): %9s reviews/s, %6s ms per call\n", $1, $2, $3, $4}' "$work/alone.tsv"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "  load average after: $load_after"

python3 - "$results" "$work/alone.tsv" "$rows" "$in_flight" "$load_before" "$load_after" >bench/enrich.md <<'PY'
import sys, datetime
runs = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
alone = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
rows, in_flight, before, after = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
best = {}
for size, clients, rate, ms in alone:
    best[size] = max(best.get(size, 0), int(rate))
print(f"# The enrich stage: `scripts/bench-enrich.sh {rows}`\n")
print(f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on the 2-core development machine (Kafka, Cassandra, the")
print(f"sentiment service and the platform sharing it, other builds and tests beside them: load average")
print(f"{before} before, {after} after). {rows} generated reviews; `max_in_flight = {in_flight}`.")
print("Records/s: wall time from the platform's start to the end of the drain. Batch p99: from a batch's")
print("first record taken from Kafka until it is in its windows (the wait for the service included).")
print("Call p99: one request to the service. Both from the platform's histograms after the drain.\n")
print("| run | records/s | drain s | service calls | batch p99 | call p99 | of the service alone |")
print("|---|---|---|---|---|---|---|")
for label, rate, elapsed, calls, batch, call, dead in runs:
    size = label.rsplit(" ", 1)[-1] if "batch_size" in label else None
    share = f"{int(rate.replace(',', '')) / best[size]:.0%}" if size in best else "-"
    calls = calls if size else "-"
    call = call if size else "-"
    print(f"| {label} | {rate} | {elapsed} | {calls} | {batch} | {call} | {share} |")
print("\nThe service alone, the same review bodies, kept-alive connections, 5 s each:\n")
print("| texts per call | clients | reviews/s | ms per call |")
print("|---|---|---|---|")
for size, clients, rate, ms in alone:
    print(f"| {size} | {clients} | {int(rate):,} | {ms} |")
PY
echo "  written to bench/enrich.md"
