#!/usr/bin/env bash
# Start the local Kafka (KRaft, 127.0.0.1:9092), Cassandra (127.0.0.1:9042) and/or the sentiment
# inference service (services/sentiment, 127.0.0.1:9300) in the background and wait until each
# really answers. Ports: MYSIMBDP_KAFKA_PORT, MYSIMBDP_KAFKA_CONTROLLER_PORT,
# MYSIMBDP_KAFKA_TLS_PORT (TLS, default the Kafka port + 2), MYSIMBDP_CASSANDRA_PORT (plain or TLS),
# MYSIMBDP_CASSANDRA_STORAGE_PORT, MYSIMBDP_CASSANDRA_SSL_STORAGE_PORT, MYSIMBDP_CASSANDRA_JMX_PORT,
# MYSIMBDP_SENTIMENT_PORT. Kafka runs with SASL/SCRAM and ACLs and Cassandra with roles unless
# MYSIMBDP_AUTH=off; their generated passwords are kept under <repo>/.state/secrets/.
# Usage: deploy/local/up.sh [kafka|cassandra|sentiment|all]      (default: all)
#
# - fetches the jars first if needed (deploy/local/fetch.sh);
# - a service that already answers on its port is left alone and gets NO pid file;
# - a service this script starts gets <repo>/.state/<svc>.pid (down.sh stops only those);
# - data and logs live under <repo>/.state/kafka/ and <repo>/.state/cassandra/;
# - readiness: Kafka = port open and a metadata request (TopicCommand --list) succeeds;
#   Cassandra = "Startup complete" in its log and SELECT release_version FROM system.local works;
#   sentiment = GET /health answers ok (its pinned packages go to <repo>/.state/sentiment-venv).
# Timeouts (seconds): MYSIMBDP_KAFKA_TIMEOUT (120), MYSIMBDP_CASSANDRA_TIMEOUT (240),
# MYSIMBDP_SENTIMENT_TIMEOUT (60); MYSIMBDP_SENTIMENT_PORT moves the service (default 9300). On timeout,
# or when the JVM dies, the last 40 lines of the log are printed and the exit status is non-zero.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_TIMEOUT="${MYSIMBDP_KAFKA_TIMEOUT:-120}"
CASSANDRA_TIMEOUT="${MYSIMBDP_CASSANDRA_TIMEOUT:-240}"
SENTIMENT_TIMEOUT="${MYSIMBDP_SENTIMENT_TIMEOUT:-60}"
S3PROXY_TIMEOUT="${MYSIMBDP_S3_TIMEOUT:-60}"
SMTP_TIMEOUT="${MYSIMBDP_SMTP_TIMEOUT:-30}"
AIRFLOW_TIMEOUT="${MYSIMBDP_AIRFLOW_TIMEOUT:-240}"

# launch SVC WORKDIR OUTFILE CMD... : start CMD detached (own session, SIGHUP ignored, stdin closed),
# stdout+stderr to OUTFILE; the JVM's own pid goes to the pid file (bash writes $$ and then execs).
launch() {
  local svc=$1 workdir=$2 out=$3; shift 3
  local pidf; pidf="$(pid_file "$svc")"
  rm -f "$pidf"
  nohup setsid bash -c 'cd "$1" && echo $$ >"$2" && shift 2 && exec "$@"' _ "$workdir" "$pidf" "$@" \
    >>"$out" 2>&1 </dev/null &
  local i
  for i in $(seq 1 50); do [[ -s "$pidf" ]] && break; sleep 0.1; done
  [[ -s "$pidf" ]] || die "$svc: the launcher wrote no pid file"
  log "$svc: started, pid $(cat "$pidf")"
}

# ---------------------------------------------------------------- Kafka
KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_LOG="$KAFKA_DIR/logs/server.log"
KAFKA_OUT="$KAFKA_DIR/logs/kafka.out"

# The broker's settings: the template with this run's ports and data folder, plus the listeners
# (with SCRAM, ACLs and the generated passwords unless MYSIMBDP_AUTH=off). Written readable by this
# user only, as it may hold passwords.
write_kafka_properties() {
  local data=$1 listeners=listeners-plain.properties
  [[ "$AUTH" == on ]] && listeners=listeners-auth.properties
  (umask 077 && cat "$DEPLOY_DIR/kafka/server.properties" "$DEPLOY_DIR/kafka/$listeners" | sed \
    -e "s|@KAFKA_DATA_DIR@|$data|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@PLATFORM_USER@|$PLATFORM_USER|g" \
    -e "s|@KAFKA_TLS_PORT@|$KAFKA_TLS_PORT|g" -e "s|@TLS_DIR@|$TLS_DIR|g" \
    -e "s|@TLS_PASSWORD@|$(secret tls.password)|g" \
    -e "s|@PLATFORM_PASSWORD@|$( [[ "$AUTH" == on ]] && secret kafka-platform.password)|g" \
    -e "s|@CONTROLLER_PASSWORD@|$( [[ "$AUTH" == on ]] && secret kafka-controller.password)|g" \
    >"$KAFKA_DIR/server.properties")
}

# With authentication the log is formatted with the platform's SCRAM user, so it has its own
# folder: switching MYSIMBDP_AUTH never reuses a log formatted the other way.
KAFKA_DATA="$KAFKA_DIR/data"
[[ "$AUTH" == on ]] && KAFKA_DATA="$KAFKA_DIR/data-auth"

# kafka_has_snapshot: the metadata log holds a snapshot, so a restart rebuilds the credentials
# from it and not from the log alone (see metadata.log.max.snapshot.interval.ms in
# kafka/server.properties: Kafka 4.1 can lose the platform's SCRAM user in that rebuild).
kafka_has_snapshot() {
  compgen -G "$KAFKA_DATA/__cluster_metadata-0/*.checkpoint" >/dev/null
}

KAFKA_LOG_OFFSET=0   # bytes of server.log written before this start: only newer lines count

start_kafka() {
  local data="$KAFKA_DATA"
  KAFKA_LOG_OFFSET=$(stat -c %s "$KAFKA_LOG" 2>/dev/null || echo 0)
  mkdir -p "$data" "$KAFKA_DIR/logs"
  ensure_tls
  write_kafka_properties "$data"
  if [[ ! -f "$data/meta.properties" ]]; then
    # KRaft needs the log dir formatted once with a cluster id (22 chars of url-safe base64).
    # Like Kafka's own ids, never one that starts with "-": its tools take that for an option
    # (one fresh start in 64 failed so), and a file left by such a start is replaced.
    local id
    id=$(cat "$KAFKA_DIR/cluster.id" 2>/dev/null || true)
    while [[ -z "$id" || "$id" == -* ]]; do
      id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    done
    printf '%s' "$id" >"$KAFKA_DIR/cluster.id"
    log "kafka: formatting $data (cluster id $id)"
    # The main class and its arguments go in an argument file for the java launcher: with
    # authentication they hold the platform's first SCRAM user, which must be in the log before
    # the broker starts, and its password stays off the command line.
    local args="$KAFKA_DIR/format.args"
    (umask 077 && {
      printf '%s\n' kafka.tools.StorageTool format -t "$id" \
        -c "$KAFKA_DIR/server.properties" --ignore-formatted
      [[ "$AUTH" == off ]] || printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s]\n' \
        "$PLATFORM_USER" "$(secret kafka-platform.password)"
    } >"$args")
    "${KAFKA_TOOL_JAVA[@]}" "@$args" >>"$KAFKA_OUT" 2>&1 ||
      { rm -f "$args"; tail -n 40 "$KAFKA_OUT" >&2; die "kafka: storage format failed"; }
    rm -f "$args"
  fi
  launch kafka "$KAFKA_DIR" "$KAFKA_OUT" \
    "$JAVA" -Xmx512m -Xms512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_DIR/logs" \
    -Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/log4j2.xml" \
    -cp "$LIB_DIR/kafka/*" "$KAFKA_MAIN" "$KAFKA_DIR/server.properties"
}

# ---------------------------------------------------------------- Cassandra
CASS_DIR="$STATE_DIR/cassandra"
CASS_LOG="$CASS_DIR/logs/system.log"
CASS_OUT="$CASS_DIR/logs/cassandra.out"
CASS_LOG_OFFSET=0   # bytes of system.log written before this start: only newer lines count

start_cassandra() {
  mkdir -p "$CASS_DIR"/{data,commitlog,hints,saved_caches,cdc_raw,logs}
  local authn=AllowAllAuthenticator authz=AllowAllAuthorizer
  [[ "$AUTH" == on ]] && authn=PasswordAuthenticator authz=CassandraAuthorizer
  ensure_tls
  (umask 077 && sed -e "s|@CASSANDRA_DIR@|$CASS_DIR|g" -e "s|@CASSANDRA_PORT@|$CASSANDRA_PORT|g" \
    -e "s|@TLS_DIR@|$TLS_DIR|g" -e "s|@TLS_PASSWORD@|$(secret tls.password)|g" \
    -e "s|@CASSANDRA_STORAGE_PORT@|$CASSANDRA_STORAGE_PORT|g" \
    -e "s|@CASSANDRA_SSL_STORAGE_PORT@|$CASSANDRA_SSL_STORAGE_PORT|g" \
    -e "s|@CASSANDRA_AUTHENTICATOR@|$authn|g" -e "s|@CASSANDRA_AUTHORIZER@|$authz|g" \
    "$DEPLOY_DIR/cassandra/cassandra.yaml" >"$CASS_DIR/cassandra.yaml")
  local jamm
  jamm="$(ls "$LIB_DIR"/cassandra/jamm-*.jar 2>/dev/null | head -n1)"
  [[ -n "$jamm" ]] || die "cassandra: no jamm-*.jar in $LIB_DIR/cassandra (run fetch.sh)"
  # jvm17.options: one flag per line; "--add-opens x" becomes "--add-opens=x" (one argument).
  local -a opts=()
  local line
  while IFS= read -r line; do
    line="${line%%#*}"; line="$(echo "$line" | xargs)"
    [[ -z "$line" ]] && continue
    [[ "$line" == --*" "* ]] && line="${line/ /=}"
    opts+=("$line")
  done <"$DEPLOY_DIR/cassandra/jvm17.options"
  CASS_LOG_OFFSET=$(stat -c %s "$CASS_LOG" 2>/dev/null || echo 0)
  launch cassandra "$CASS_DIR" "$CASS_OUT" \
    "$JAVA" "${opts[@]}" -Xms1G -Xmx1G -XX:HeapDumpPath="$CASS_DIR" \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$CASS_DIR/cassandra.yaml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$CASS_DIR" \
    -Dcassandra.logdir="$CASS_DIR/logs" \
    -Dlogback.configurationFile="$DEPLOY_DIR/cassandra/logback.xml" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.initial_token=0 \
    -Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" -Dcassandra.superuser_setup_delay_ms=0 \
    -cp "$LIB_DIR/cassandra/*" "$CASSANDRA_MAIN"
}

cassandra_started_in_log() {
  [[ -f "$CASS_LOG" ]] || return 1
  tail -c +"$((CASS_LOG_OFFSET + 1))" "$CASS_LOG" | grep -q "Startup complete"
}

# cassandra_setup_roles: with authentication on, makes sure the platform's superuser role exists
# with its generated password, and gives the default `cassandra` superuser a generated password
# too (both kept under .state/secrets/). Does nothing when authentication is off.
cassandra_setup_roles() {
  [[ "$AUTH" == on ]] || return 0
  port_open "$CASSANDRA_PORT" || return 1
  secret cassandra-platform.password >/dev/null
  secret cassandra-superuser.password >/dev/null
  CQL_USER="$PLATFORM_USER" CQL_PASSWORD_FILE="$SECRETS_DIR/cassandra-platform.password" \
    CQL_SUPERUSER_PASSWORD_FILE="$SECRETS_DIR/cassandra-superuser.password" \
    timeout 60 "$CQL_PYTHON" "$DEPLOY_DIR/cassandra/setup_roles.py" 127.0.0.1 "$CASSANDRA_PORT" >>"$CASS_OUT" 2>&1
}

# ---------------------------------------------------------------- sentiment service
SENT_STATE="$STATE_DIR/sentiment"
SENT_OUT="$SENT_STATE/sentiment.out"

start_sentiment() {
  mkdir -p "$SENT_STATE"
  launch sentiment "$REPO_ROOT" "$SENT_OUT" \
    "$SENTIMENT_VENV/bin/python" "$SENTIMENT_MAIN" --host 127.0.0.1 --port "$SENTIMENT_PORT"
}

# ---------------------------------------------------------------- s3proxy (object storage)
S3_STATE="$STATE_DIR/s3proxy"
S3_OUT="$S3_STATE/s3proxy.out"

start_s3proxy() {
  mkdir -p "$S3_STATE/data"
  local credential; credential="$(secret_at "$S3_STATE/credential")"
  (umask 077; sed -e "s|@S3_DATA_DIR@|$S3_STATE/data|g" -e "s|@S3_PORT@|$S3PROXY_PORT|g" \
    -e "s|@S3_CREDENTIAL@|$credential|g" "$DEPLOY_DIR/s3proxy/s3proxy.conf" >"$S3_STATE/s3proxy.conf")
  launch s3proxy "$S3_STATE" "$S3_OUT" \
    "$JAVA" -Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true \
    -cp "$LIB_DIR/s3proxy/*" "$S3PROXY_MAIN" --properties "$S3_STATE/s3proxy.conf"
}

# ---------------------------------------------------------------- SMTP (aiosmtpd, a Maildir store)
SMTP_STATE="$STATE_DIR/smtp"
SMTP_OUT="$SMTP_STATE/smtp.out"

start_smtp() {
  mkdir -p "$SMTP_STATE" "$STATE_DIR/mail"/{tmp,new,cur}
  launch smtp "$SMTP_STATE" "$SMTP_OUT" \
    "$SMTP_VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
    -c aiosmtpd.handlers.Mailbox "$STATE_DIR/mail"
}

# ---------------------------------------------------------------- Airflow (API server, scheduler, DAG processor)
AIRFLOW_OUT="$AIRFLOW_HOME_DIR/airflow.out"

start_airflow() {
  airflow_env
  airflow_settings
  launch airflow "$REPO_ROOT" "$AIRFLOW_OUT" bash "$DEPLOY_DIR/airflow/run.sh"
}

# ---------------------------------------------------------------- waiting
show_logs() {
  local svc=$1 f
  local -a files
  case "$svc" in
    kafka) files=("$KAFKA_LOG" "$KAFKA_OUT") ;;
    cassandra) files=("$CASS_LOG" "$CASS_OUT") ;;
    s3proxy) files=("$S3_OUT") ;;
    smtp) files=("$SMTP_OUT") ;;
    airflow) files=("$AIRFLOW_OUT") ;;
    *) files=("$SENT_OUT") ;;
  esac
  for f in "${files[@]}"; do
    [[ -s "$f" ]] || continue
    echo "----- last 40 lines of ${f#"$REPO_ROOT"/} -----" >&2
    tail -n 40 "$f" >&2
  done
}

# wait_ready SVC TIMEOUT STARTED_PID(or empty)
wait_ready() {
  local svc=$1 timeout=$2 pid=$3 t0=$SECONDS
  log "$svc: waiting until it answers (timeout ${timeout}s)"
  while :; do
    if [[ -n "$pid" ]] && ! pid_alive "$svc" "$pid"; then
      show_logs "$svc"
      rm -f "$(pid_file "$svc")"
      die "$svc: its process (pid $pid) exited during startup"
    fi
    case "$svc" in
      kafka) kafka_answers && break ;;
      sentiment) sentiment_answers && break ;;
      s3proxy|smtp|airflow) service_answers "$svc" && break ;;
      cassandra)
        if [[ -z "$pid" ]] || cassandra_started_in_log; then
          cassandra_setup_roles && cassandra_answers && break
        fi ;;
    esac
    if (( SECONDS - t0 >= timeout )); then
      show_logs "$svc"
      [[ "$svc" == kafka ]] && kafka_lost_platform_user
      [[ -z "$pid" && "$svc" != sentiment ]] && log "$svc: something listens on 127.0.0.1:$(service_port "$svc") but does not answer with MYSIMBDP_AUTH=$AUTH: services started with the other setting? Stop them (deploy/local/down.sh, or whoever started them) and start again, or run with MYSIMBDP_AUTH=$([[ $AUTH == on ]] && echo off || echo on)"
      die "$svc: did not answer within ${timeout}s${pid:+ (still running as pid $pid: deploy/local/down.sh $svc stops it)}"
    fi
    sleep 2
  done
  log "$svc: ready on 127.0.0.1:$(service_port "$svc") after $((SECONDS - t0)) s"
  [[ "$svc" == kafka && -n "$pid" ]] && wait_kafka_snapshot "$((timeout - (SECONDS - t0)))"
  return 0
}

# wait_kafka_snapshot TIMEOUT: with authentication, waits until the metadata log has its first
# snapshot (seconds after a fresh format), so that no later restart depends on rebuilding the
# platform's credential from the log alone.
wait_kafka_snapshot() {
  [[ "$AUTH" == on ]] || return 0
  kafka_has_snapshot && return 0
  local t0=$SECONDS
  log "kafka: waiting for the first metadata snapshot"
  until kafka_has_snapshot; do
    (( SECONDS - t0 >= $1 )) && die "kafka: no metadata snapshot in $KAFKA_DATA after ${1}s"
    sleep 1
  done
  log "kafka: metadata snapshot written after $((SECONDS - t0)) s"
}

# kafka_lost_platform_user: explains a broker that refuses the platform's login (a log written
# before metadata snapshots were on may have lost its SCRAM user).
kafka_lost_platform_user() {
  [[ "$AUTH" == on && -f "$KAFKA_LOG" ]] || return 0
  tail -c +"$((KAFKA_LOG_OFFSET + 1))" "$KAFKA_LOG" |
    grep -q "invalid credentials with SASL mechanism" || return 0
  log "kafka: the broker refuses the platform's login. If $KAFKA_DATA was formatted by an older mysimbdp (without metadata snapshots) and a tenant was removed since, Kafka 4.1 lost the platform's SCRAM user rebuilding its metadata. Stop it (deploy/local/down.sh kafka), move $KAFKA_DATA aside (it holds the local topics) and start again. Otherwise check .state/secrets/kafka-platform.password against the one the log was formatted with." >&2
}

# ---------------------------------------------------------------- main
services="$(services_from_arg "${1:-all}")"
if [[ " $services " == *" kafka "* || " $services " == *" cassandra "* || " $services " == *" s3proxy "* ]]; then
  require_java
  "$DEPLOY_DIR/fetch.sh" "${1:-all}"
fi
[[ " $services " == *" smtp "* ]] && ensure_venv "$SMTP_VENV" "$DEPLOY_DIR/smtp/requirements.txt"
[[ " $services " == *" airflow "* ]] && ensure_venv "$AIRFLOW_VENV" \
  "$DEPLOY_DIR/airflow/requirements.txt" "$DEPLOY_DIR/airflow/constraints.txt"
[[ " $services " == *" cassandra "* ]] && ensure_cql_python
[[ " $services " == *" sentiment "* ]] && ensure_sentiment_venv

declare -A waitpid=()
for svc in $services; do
  pid="$(started_pid "$svc")"
  if [[ -n "$pid" ]]; then
    log "$svc: already started by up.sh (pid $pid), not starting another"
    waitpid[$svc]="$pid"
  elif port_open "$(service_port "$svc")"; then
    rm -f "$(pid_file "$svc")"
    log "$svc: something already answers on 127.0.0.1:$(service_port "$svc"); leaving it alone (no pid file)"
    waitpid[$svc]=""
  else
    rm -f "$(pid_file "$svc")"
    "start_$svc"
    waitpid[$svc]="$(cat "$(pid_file "$svc")")"
  fi
done

for svc in $services; do
  case "$svc" in
    kafka) to=$KAFKA_TIMEOUT ;;
    cassandra) to=$CASSANDRA_TIMEOUT ;;
    s3proxy) to=$S3PROXY_TIMEOUT ;;
    smtp) to=$SMTP_TIMEOUT ;;
    airflow) to=$AIRFLOW_TIMEOUT ;;
    *) to=$SENTIMENT_TIMEOUT ;;
  esac
  wait_ready "$svc" "$to" "${waitpid[$svc]}"
done
log "up: $services"
