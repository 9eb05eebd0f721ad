# Sourced by the demo and the end-to-end benchmark: one tenant's platform on a scratch config.
bin="$root/target/release/mysimbdp"
# The local services' ports and MYSIMBDP_AUTH, as deploy/local reads them.
source "$root/deploy/local/lib.sh"
# `mysimbdp produce` reaches the local Kafka; with authentication on, as the platform's user
# (the benchmarks seed data as the operator; the demo sends as its tenant, see tenant_credentials).
export MYSIMBDP_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
if [[ "$AUTH" == on ]]; then
  export MYSIMBDP_KAFKA_USER="$PLATFORM_USER"
  MYSIMBDP_KAFKA_PASSWORD="$(secret kafka-platform.password)"
  export MYSIMBDP_KAFKA_PASSWORD
  # The benchmarks' own Cassandra clients (bench/services.py) read as the platform too.
  secret cassandra-platform.password >/dev/null
  export MYSIMBDP_CASSANDRA_USER="$PLATFORM_USER"
  export MYSIMBDP_CASSANDRA_PASSWORD_FILE="$SECRETS_DIR/cassandra-platform.password"
fi

# new_tenant KIND: a fresh tenant id ($tenant, letters and digits) and its scratch folder ($work)
# under .state/KIND/.
new_tenant() {
  tenant="${1}$(date +%s)"
  work=".state/$1/$tenant"
  mkdir -p "$work"
}

# services_toml: the [kafka] and [cassandra] tables for the local services, with the platform's
# login (its passwords by file) unless MYSIMBDP_AUTH=off.
services_toml() {
  echo "[kafka]"
  echo "bootstrap = \"127.0.0.1:$KAFKA_PORT\""
  if [[ "$AUTH" == on ]]; then
    echo "sasl_mechanism = \"SCRAM-SHA-256\""
    echo "user = \"$PLATFORM_USER\""
    echo "password_file = \"$(secret kafka-platform.password >/dev/null; echo "$SECRETS_DIR/kafka-platform.password")\""
  fi
  echo
  echo "[cassandra]"
  echo "nodes = [\"127.0.0.1:$CASSANDRA_PORT\"]"
  if [[ "$AUTH" == on ]]; then
    echo "user = \"$PLATFORM_USER\""
    echo "password_file = \"$(secret cassandra-platform.password >/dev/null; echo "$SECRETS_DIR/cassandra-platform.password")\""
  fi
}

# tenant_credentials TENANT FILE: `mysimbdp tenant add` as the operator, its credentials (admin
# token, and with authentication on its Kafka user and Cassandra role) into FILE, readable by
# this user only: a file to source before acting as the tenant.
tenant_credentials() {
  (umask 077 && "$bin" tenant add --tenant "$1" --admin "http://$admin" >"$2")
}

# write_config WORKDIR TENANT ADMIN_ADDR: WORKDIR/mysimbdp.toml for TENANT's reviews-daily app
# ($wasm, or the release build), with an admin token in MYSIMBDP_ADMIN_TOKEN. PLATFORM_TOML (extra
# tables) and PLATFORM_DELIVERY (the app's delivery mode) adjust it when set.
write_config() {
  local work=$1 tenant=$2 admin=$3
  export MYSIMBDP_ADMIN_TOKEN="${MYSIMBDP_ADMIN_TOKEN:-token-$RANDOM$RANDOM$RANDOM}"
  cat >"$work/mysimbdp.toml" <<TOML
${PLATFORM_TOML:-}

$(services_toml)

[admin]
listen = "$admin"
token_env = "MYSIMBDP_ADMIN_TOKEN"

[[tenants]]
id = "$tenant"

[[tenants.apps]]
path = "${wasm:-$root/target/wasm32-wasip2/release/reviews_daily.wasm}"
stream = "reviews"
delivery = "${PLATFORM_DELIVERY:-exactly-once}"
TOML
}

# wait_answering TENANT ADMIN_ADDR LOG: until TENANT's app ($APP_NAME, default reviews-daily)
# answers on the admin API; fails with the log's tail if the platform ($PLATFORM_PID) exits first.
wait_answering() {
  local tenant=$1 admin=$2 log=$3 _
  for _ in $(seq 1 300); do
    app status --tenant "$tenant" --app "${APP_NAME:-reviews-daily}" --admin "http://$admin" >/dev/null 2>&1 && return 0
    kill -0 "$PLATFORM_PID" 2>/dev/null || { tail -20 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "the platform did not answer on $admin; log: $log" >&2
  return 1
}

# start_platform WORKDIR TENANT ADMIN_ADDR: write_config, then `mysimbdp run` in the background
# (PLATFORM_PID; stopped by pid on exit), until the app answers.
start_platform() {
  local work=$1 tenant=$2 admin=$3
  write_config "$work" "$tenant" "$admin"
  "$bin" run --config "$work/mysimbdp.toml" >>"$work/platform.log" 2>&1 &
  PLATFORM_PID=$!
  trap 'kill -TERM $PLATFORM_PID 2>/dev/null; wait $PLATFORM_PID 2>/dev/null || true' EXIT
  wait_answering "$tenant" "$admin" "$work/platform.log"
}

# app ARGS...: `mysimbdp app ARGS...`
app() { "$bin" app "$@"; }
