# Sourced by the demo and the end-to-end benchmark: one tenant's platform on a scratch config.
bin="$root/target/release/mysimbdp"

# new_tenant KIND: a fresh tenant id ($tenant) and its scratch folder ($work) under .state/KIND/.
new_tenant() {
  tenant="${1}_$(date +%s)"
  work=".state/$1/$tenant"
  mkdir -p "$work"
}

# start_platform WORKDIR TENANT ADMIN_ADDR: writes WORKDIR/mysimbdp.toml for TENANT's reviews-daily
# app, starts `mysimbdp run` in the background (PLATFORM_PID; stopped by pid on exit), exports
# MYSIMBDP_ADMIN_TOKEN and waits until the app answers on the admin API. PLATFORM_TOML (extra
# tables) and PLATFORM_DELIVERY (the app's delivery mode) adjust the config when set.
start_platform() {
  local work=$1 tenant=$2 admin=$3
  export MYSIMBDP_ADMIN_TOKEN="${MYSIMBDP_ADMIN_TOKEN:-token-$RANDOM$RANDOM$RANDOM}"
  cat >"$work/mysimbdp.toml" <<TOML
${PLATFORM_TOML:-}

[admin]
listen = "$admin"
token_env = "MYSIMBDP_ADMIN_TOKEN"

[[tenants]]
id = "$tenant"

[[tenants.apps]]
path = "$root/target/wasm32-wasip2/release/reviews_daily.wasm"
stream = "reviews"
delivery = "${PLATFORM_DELIVERY:-exactly-once}"
TOML
  "$bin" run --config "$work/mysimbdp.toml" >>"$work/platform.log" 2>&1 &
  PLATFORM_PID=$!
  trap 'kill -TERM $PLATFORM_PID 2>/dev/null; wait $PLATFORM_PID 2>/dev/null || true' EXIT
  local _
  for _ in $(seq 1 300); do
    app status --tenant "$tenant" --app reviews-daily --admin "http://$admin" >/dev/null 2>&1 && return 0
    kill -0 "$PLATFORM_PID" 2>/dev/null || { tail -20 "$work/platform.log" >&2; return 1; }
    sleep 0.2
  done
  echo "the platform did not answer on $admin; log: $work/platform.log" >&2
  return 1
}

# app ARGS...: `mysimbdp app ARGS...`
app() { "$bin" app "$@"; }
