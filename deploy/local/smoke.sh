#!/usr/bin/env bash
# End-to-end check of the running local services, with clients that no one here wrote:
#   Kafka: create a 4-partition topic, produce one message (ConsoleProducer), consume it back
#          (ConsoleConsumer), delete the topic.
#   Cassandra: create a keyspace and a table, insert and select a row (python cassandra-driver).
#   sentiment: POST a positive and a negative review (python urllib), check the scores' signs.
# Usage: deploy/local/smoke.sh [kafka|cassandra|sentiment|all]   (default: all; run up.sh first)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_java

smoke_kafka() {
  local topic="smoke-$RANDOM$RANDOM" msg="hello-$(date +%s%N)" got
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$KAFKA_PORT \
    --create --topic "$topic" --partitions 4 --replication-factor 1 >/dev/null
  local parts
  parts="$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$KAFKA_PORT \
    --describe --topic "$topic" | grep -c 'Partition: ')"
  [[ "$parts" == 4 ]] || die "kafka smoke: topic $topic has $parts partitions, expected 4"
  echo "$msg" | kafka_tool org.apache.kafka.tools.ConsoleProducer \
    --bootstrap-server 127.0.0.1:$KAFKA_PORT --topic "$topic"
  got="$(kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server 127.0.0.1:$KAFKA_PORT \
    --topic "$topic" --from-beginning --max-messages 1 --timeout-ms 30000 2>/dev/null)"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$KAFKA_PORT \
    --delete --topic "$topic" >/dev/null
  [[ "$got" == "$msg" ]] || die "kafka smoke: consumed '$got', expected '$msg'"
  log "kafka smoke: topic $topic (4 partitions): produced and consumed 1 message, topic deleted"
}

smoke_cassandra() {
  ensure_cql_python
  "$CQL_PYTHON" "$DEPLOY_DIR/cassandra/cql_smoke.py" | while IFS= read -r l; do log "$l"; done
}

smoke_sentiment() {
  python3 - "http://127.0.0.1:$SENTIMENT_PORT/v1/sentiment" <<'PY' | while IFS= read -r l; do log "$l"; done
import json, sys, urllib.request
texts = ["Great product, works perfectly!", "Terrible. Broke after a day."]
request = urllib.request.Request(sys.argv[1], json.dumps({"texts": texts}).encode(),
                                 {"Content-Type": "application/json"})
results = json.load(urllib.request.urlopen(request, timeout=10))["results"]
good, bad = results
if not (good["sentiment"] > 0 > bad["sentiment"] and good["stars"] > bad["stars"]):
    sys.exit(f"sentiment smoke: unexpected scores {results}")
print(f"sentiment smoke: {good} for a positive review, {bad} for a negative one")
PY
}

for svc in $(services_from_arg "${1:-all}"); do
  "smoke_$svc"
done
