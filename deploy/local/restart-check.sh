#!/usr/bin/env bash
# Restarting the authenticated Kafka keeps the platform's login after tenants come and go: starts
# a Kafka of its own (state in .state/restart-check, ports MYSIMBDP_RESTART_CHECK_PORT and the next
# one), adds and removes three SCRAM users with Kafka's own ConfigCommand, restarts the broker and
# requires it to answer the platform's user again. Stops its broker in every case.
# Kafka 4.1 loses SCRAM users when it rebuilds its metadata from a log that removed one, with no
# snapshot to start from (see metadata.log.max.snapshot.interval.ms in kafka/server.properties).
set -euo pipefail
port="${MYSIMBDP_RESTART_CHECK_PORT:-29092}"
export MYSIMBDP_KAFKA_PORT="$port" MYSIMBDP_KAFKA_CONTROLLER_PORT="$((port + 1))" MYSIMBDP_AUTH=on
export MYSIMBDP_STATE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.state/restart-check"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rm -rf "$STATE_DIR"
# Its broker is stopped in every case; its state is kept for a look only when the check failed.
finish() {
  local status=$?
  "$DEPLOY_DIR/down.sh" kafka >/dev/null
  if ((status == 0)); then rm -rf "$STATE_DIR"; else log "restart check: its state is in $STATE_DIR"; fi
}
trap finish EXIT
"$DEPLOY_DIR/up.sh" kafka >/dev/null
cfg="$(kafka_tools_config)"
for user in restart-check-a restart-check-b restart-check-c; do
  for change in "--add-config SCRAM-SHA-256=[iterations=4096,password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')]" \
    "--delete-config SCRAM-SHA-256"; do
    # shellcheck disable=SC2086 # the change is two arguments
    kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$cfg" \
      --alter --entity-type users --entity-name "$user" $change >/dev/null
  done
done
"$DEPLOY_DIR/down.sh" kafka >/dev/null
if ! MYSIMBDP_KAFKA_TIMEOUT=60 "$DEPLOY_DIR/up.sh" kafka >/dev/null; then
  die "restart check: after three tenants' SCRAM users were added and removed, the restarted broker refuses the platform's login"
fi
log "restart check: the restarted broker still accepts the platform's login after tenants were removed"
