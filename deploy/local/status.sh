#!/usr/bin/env bash
# Print, for each local service, whether it answers (Kafka: port + metadata request; Cassandra:
# port + SELECT release_version FROM system.local; sentiment: GET /health) and whether up.sh
# started it (pid file).
# Usage: deploy/local/status.sh [kafka|cassandra|sentiment|all]      (default: all)
# Exit status: 0 when every service asked about answers, 3 otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for svc in $(services_from_arg "${1:-all}"); do
  port="$(service_port "$svc")"
  pid="$(started_pid "$svc")"
  owner="not started by up.sh"
  [[ -n "$pid" ]] && owner="started by up.sh, pid $pid"
  if [[ "$svc" =~ ^(kafka|cassandra|s3proxy)$ && ! -d "$LIB_DIR/$svc" ]]; then
    if port_open "$port"; then state="port open (jars not fetched, cannot check further)"; else state="DOWN"; rc=3; fi
  elif service_answers "$svc"; then
    state="UP"
    if [[ "$svc" == cassandra ]]; then
      state="UP (release_version $(cql_env "$CQL_PYTHON" "$DEPLOY_DIR/cassandra/cql_check.py" 127.0.0.1 "$port" 2>/dev/null || echo '?'))"
    fi
  elif port_open "$port"; then
    state="STARTING (port open, not answering yet)"; rc=3
  else
    state="DOWN"; rc=3
    [[ -n "$pid" ]] && state="DOWN (but its JVM is running: still starting?)"
  fi
  printf '%-10s 127.0.0.1:%-5s %s (%s)\n' "$svc" "$port" "$state" "$owner"
done
exit "$rc"
