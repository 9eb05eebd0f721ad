#!/usr/bin/env bash
# The enrich stage's cost end to end: the same N generated reviews, produced once, drained by
# reviews-daily (no service) and by reviews-sentiment calling the sentiment service in requests
# of 1, 64 and 512 reviews; then the service's own capacity measured alone at the same sizes.
# Prints records/s of wall time per run. Usage: scripts/bench-enrich.sh [ROWS]  (via `just bench`;
# needs the sentiment service on 127.0.0.1:${MYSIMBDP_SENTIMENT_PORT:-9300})
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-30000}"
admin="127.0.0.1:9188"
service="http://127.0.0.1:${MYSIMBDP_SENTIMENT_PORT:-9300}"
source scripts/platform.sh
new_tenant enrich
$bin gen --out "$work/reviews.tsv" --rows "$rows" --late 0 --malformed 0 2>/dev/null
echo "enrich bench: $rows reviews ($work)"

# run LABEL WASM APP_NAME SUFFIX: the input produced into tenant <tenant>_SUFFIX (each run its
# own topic and table), then a platform started and the app drained; prints the rate.
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
tenants = [\"$run_tenant\"]" start_platform "$run_work" "$run_tenant" "$admin"
  app drain --tenant "$run_tenant" --app "$app_name" --admin "http://$admin" --wait >"$run_work/status.json"
  end=$(date +%s.%N)
  kill -TERM "$PLATFORM_PID" 2>/dev/null || true
  wait "$PLATFORM_PID" 2>/dev/null || true
  trap - EXIT
  python3 - "$label" "$rows" "$start" "$end" "$run_work/status.json" <<'PY'
import json, sys
label, rows, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
status = json.load(open(sys.argv[5]))
calls = (status.get("enrich") or {}).get("calls", 0)
print(f"  {label:<34} {rows / (end - start):>9,.0f} records/s (start and drain {end - start:5.1f} s, {calls} service calls, dead letters {status['dead_letters']})")
PY
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

echo "  the service alone (one client, kept-alive connection, the same review bodies):"
python3 - "$service" "$work/reviews.tsv" <<'PY'
import http.client, json, sys, time, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
bodies = [line.split("\t")[13] for line in open(sys.argv[2], encoding="utf-8").read().splitlines()[1:]]
conn = http.client.HTTPConnection(url.hostname, url.port)
for size in (1, 64, 512):
    done, calls, start = 0, 0, time.time()
    while time.time() - start < 5 and done < len(bodies):
        texts = bodies[done:done + size]
        conn.request("POST", "/v1/sentiment", json.dumps({"texts": texts}), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        done, calls = done + len(texts), calls + 1
    elapsed = time.time() - start
    print(f"    batch {size:>3}: {done / elapsed:>9,.0f} reviews/s, {elapsed / calls * 1000:6.2f} ms per call")
PY
