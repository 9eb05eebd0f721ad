#!/usr/bin/env bash
# `just demo`: real Kafka and Cassandra, the platform running the reviews-daily app, a generated
# review stream replayed in event-time order, and the results as they update: from the admin API,
# from Cassandra and from the tenant's results topic.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ "${1:-}" != "--inside" ]]; then
  scripts/prereqs.sh
  cargo build --release -p mysimbdp-host
  cargo build --release --target wasm32-wasip2 -p reviews-daily
  exec scripts/with-services.sh "$0" --inside
fi

admin="127.0.0.1:9188"
# platform.sh sources deploy/local/lib.sh: the local ports, MYSIMBDP_AUTH and kafka_tool.
source scripts/platform.sh
ensure_cql_python
new_tenant demo

echo "== 1. a tenant's data: 30000 synthetic Amazon reviews over two years"
$bin gen --out "$work/reviews.tsv" --rows 30000 --seed 7

echo "== 2. the platform, with tenant $tenant's reviews-daily app (config: $work/mysimbdp.toml)"
start_platform "$work" "$tenant" "$admin"

echo "   the operator gives tenant $tenant its credentials (mysimbdp tenant add): $work/tenant.env"
tenant_credentials "$tenant" "$work/tenant.env"
sed 's/=.*/=…/' "$work/tenant.env" | sed 's/^/     /'

echo "== 3. the stream: replayed in event-time order, 60 days of reviews per second, as the tenant"
echo "   (sorted by review_date, the generator's late rows fall back in place; 'produce' in file order would send them late)"
(set -a && source "$work/tenant.env" && exec $bin produce --file "$work/reviews.tsv" --tenant "$tenant" --replay-speed 5184000) &
producer=$!
while kill -0 $producer 2>/dev/null; do
  sleep 3
  app status --tenant "$tenant" --app reviews-daily --admin "http://$admin" |
    python3 -c 'import json,sys,datetime; s=json.load(sys.stdin); w=s["watermark_ms"]; print("   in %(records_in)6d  processed %(records_processed)6d  late %(late)3d  dead letters %(dead_letters)3d  open windows %(open_windows)5d" % s, " watermark", datetime.datetime.utcfromtimestamp(w/1000).date() if 0 < w < 2**62 else "-")'
done
wait $producer

echo "== 4. end of input: drain the app, so the last days' windows close"
app drain --tenant "$tenant" --app reviews-daily --admin "http://$admin" --wait >/dev/null

echo "== 5. results in Cassandra (upserts: one row per product and day)"
if [[ "$AUTH" == on ]]; then
  # As the tenant's own Cassandra role, which may read its keyspace and nothing else.
  (umask 077 && sed -n 's/^MYSIMBDP_CASSANDRA_PASSWORD=//p' "$work/tenant.env" >"$work/cassandra.password")
  CQL_USER="$tenant" CQL_PASSWORD_FILE="$work/cassandra.password" "$CQL_PYTHON" scripts/show_results.py "$tenant" 8 "$CASSANDRA_PORT"
else
  "$CQL_PYTHON" scripts/show_results.py "$tenant" 8 "$CASSANDRA_PORT"
fi

echo "== 6. results back to the tenant, topic $tenant.reviews-daily.results (first 3)"
client="$DEPLOY_DIR/kafka/tools.properties"
if [[ "$AUTH" == on ]]; then
  # As the tenant's own Kafka user, in a group under its prefix.
  client="$work/tenant-kafka.properties"
  (umask 077 && { cat "$DEPLOY_DIR/kafka/tools.properties"
    printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n'
    printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
      "$tenant" "$(sed -n 's/^MYSIMBDP_KAFKA_PASSWORD=//p' "$work/tenant.env")"; } >"$client")
fi
kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
  --consumer.config "$client" --group "$tenant.demo" \
  --topic "$tenant.reviews-daily.results" --from-beginning --max-messages 3 2>/dev/null

echo "== 7. the metrics (Prometheus, http://$admin/metrics)"
curl -s -H "Authorization: Bearer $MYSIMBDP_ADMIN_TOKEN" "http://$admin/metrics" | grep -E '^mysimbdp_(records_in|records_processed|late_records|dead_letters)_total|^mysimbdp_batch_duration_seconds_count'
echo
echo "Late records:  topic $tenant.reviews-daily.late (with the reason in header mysimbdp-reason)"
echo "Dead letters:  topic $tenant.reviews-daily.dead-letters"
echo "Platform log:  $work/platform.log"
