#!/usr/bin/env bash
# Runs a command with real Kafka, Cassandra, the sentiment service and the alert workflow's
# services (s3proxy, SMTP, Airflow) available: starts each one that is not already
# answering, and stops exactly those (by the pid files deploy/local/up.sh wrote) when the command
# ends, however it ends. Usage: scripts/with-services.sh CMD [ARGS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=()
stop_started() {
  local svc
  for svc in "${started[@]}"; do
    "$root/deploy/local/down.sh" "$svc" || echo "warning: could not stop $svc" >&2
  done
}
trap stop_started EXIT
for svc in kafka cassandra sentiment s3proxy smtp airflow; do
  if "$root/deploy/local/status.sh" "$svc" >/dev/null 2>&1; then
    echo "$svc is already running: using it, leaving it running"
  else
    started+=("$svc")
    "$root/deploy/local/up.sh" "$svc"
  fi
done
"$@"
