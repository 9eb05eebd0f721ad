#!/usr/bin/env bash
# Airflow's three processes for the workflow (API server, scheduler, DAG processor), run by
# deploy/local/up.sh as one service: migrates the SQLite database first, and on SIGTERM stops
# the three and waits for them, so down.sh stopping this pid stops all of Airflow.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
airflow_env
bin="$AIRFLOW_VENV/bin/airflow"
"$bin" db migrate || exit 1
pids=()
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}"
  exit 0
}
trap stop TERM INT
for component in api-server scheduler dag-processor; do
  "$bin" "$component" &
  pids+=($!)
done
# Any component ending ends the service (and up.sh or status.sh shows it as down).
wait -n "${pids[@]}"
stop
