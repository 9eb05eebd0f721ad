#!/usr/bin/env bash
# End-to-end check of the running local services, with clients that no one here wrote:
#   Kafka: create a 4-partition topic, produce one message (ConsoleProducer), consume it back
#          (ConsoleConsumer), delete the topic.
#   Cassandra: create a keyspace and a table, insert and select a row (python cassandra-driver).
#   sentiment: POST a positive and a negative review (python urllib), check the scores' signs.
#   s3proxy: create a bucket, put an object, read it through a presigned URL, refuse it unsigned
#            (boto3 from the Airflow venv), delete both.
#   smtp: send a message (python smtplib) and find it in the Maildir .state/mail.
#   airflow: 401 without a token; with the generated password, the DAG critical_condition is listed.
# Usage: deploy/local/smoke.sh [kafka|cassandra|sentiment|s3proxy|smtp|airflow|workflow|all]
#        (default: all; run up.sh first)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ " $(services_from_arg "${1:-all}") " == *" kafka "* ]] && require_java

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

smoke_s3proxy() {
  "$AIRFLOW_VENV/bin/python" - "http://127.0.0.1:$S3PROXY_PORT" "$(cat "$STATE_DIR/s3proxy/credential")" <<'PY' | while IFS= read -r l; do log "$l"; done
import sys, urllib.error, urllib.request, uuid
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="mysimbdp",
                  aws_secret_access_key=sys.argv[2], region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required"))
bucket, body = f"smoke-{uuid.uuid4().hex[:12]}", b"hello s3proxy"
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="a/b.txt", Body=body)
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a/b.txt"}, ExpiresIn=60)
got = urllib.request.urlopen(url, timeout=10).read()
try:
    urllib.request.urlopen(url.split("?")[0], timeout=10)
    sys.exit("s3proxy smoke: an unsigned GET was answered")
except urllib.error.HTTPError as e:
    unsigned = e.code
s3.delete_object(Bucket=bucket, Key="a/b.txt")
s3.delete_bucket(Bucket=bucket)
if got != body:
    sys.exit(f"s3proxy smoke: read {got!r} through the presigned URL")
print(f"s3proxy smoke: bucket {bucket}: put, read through a presigned URL, unsigned GET {unsigned}, deleted")
PY
}

smoke_smtp() {
  local subject="smoke-$RANDOM$RANDOM"
  python3 - "$SMTP_PORT" "$subject" <<'PY'
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"], m["To"], m["Subject"] = "smoke@mysimbdp.local", "ops@example.com", sys.argv[2]
m.set_content("smoke")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.send_message(m)
PY
  grep -lq "Subject: $subject" "$STATE_DIR"/mail/new/* 2>/dev/null ||
    die "smtp smoke: the message $subject is not in $STATE_DIR/mail/new"
  log "smtp smoke: sent $subject and found it in ${STATE_DIR#"$REPO_ROOT"/}/mail/new"
}

smoke_airflow() {
  python3 - "http://127.0.0.1:$AIRFLOW_PORT" "$(cat "$AIRFLOW_HOME_DIR/admin.password")" <<'PY' | while IFS= read -r l; do log "$l"; done
import json, sys, urllib.error, urllib.request
base, password = sys.argv[1], sys.argv[2]
try:
    urllib.request.urlopen(f"{base}/api/v2/dags", timeout=10)
    sys.exit("airflow smoke: the API answered without a token")
except urllib.error.HTTPError as e:
    anonymous = e.code
request = urllib.request.Request(f"{base}/auth/token", json.dumps(
    {"username": "mysimbdp", "password": password}).encode(), {"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(request, timeout=10))["access_token"]
dags = json.load(urllib.request.urlopen(urllib.request.Request(
    f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}), timeout=10))
ids = [d["dag_id"] for d in dags["dags"]]
if "critical_condition" not in ids:
    sys.exit(f"airflow smoke: critical_condition is not among the DAGs {ids}")
print(f"airflow smoke: {anonymous} without a token; with one, DAGs {ids}")
PY
}

for svc in $(services_from_arg "${1:-all}"); do
  "smoke_$svc"
done
