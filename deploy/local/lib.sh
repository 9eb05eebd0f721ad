# Shared helpers for deploy/local/*.sh. Sourced, not run.
# Everything is derived from this file's own location, so the scripts work from any cwd.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEPLOY_DIR/../.." && pwd)"
# The services' data, logs, pid files and secrets: <repo>/.state, or MYSIMBDP_STATE_DIR for a
# second set beside the first (the jars and Python venvs stay shared in <repo>/.state).
SHARED_STATE="$REPO_ROOT/.state"
STATE_DIR="${MYSIMBDP_STATE_DIR:-$SHARED_STATE}"
LIB_DIR="$SHARED_STATE/lib"

# OpenJDK 17 explicitly: the machine also has JDK 25, which cannot run Cassandra 5.0.
JAVA_HOME="${MYSIMBDP_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
JAVA="$JAVA_HOME/bin/java"
export JAVA_HOME

# Ports: the defaults, or others so that a second set of services can run beside the first.
KAFKA_PORT="${MYSIMBDP_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${MYSIMBDP_KAFKA_CONTROLLER_PORT:-9093}"
# Kafka's TLS listener (SASL_SSL, or SSL without authentication): beside the plain one, for
# clients that must see TLS. Two above the client port unless set, so another set's ports move it.
KAFKA_TLS_PORT="${MYSIMBDP_KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}"
CASSANDRA_PORT="${MYSIMBDP_CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${MYSIMBDP_CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_SSL_STORAGE_PORT="${MYSIMBDP_CASSANDRA_SSL_STORAGE_PORT:-7001}"
CASSANDRA_JMX_PORT="${MYSIMBDP_CASSANDRA_JMX_PORT:-7199}"
SENTIMENT_PORT="${MYSIMBDP_SENTIMENT_PORT:-9300}"
SENTIMENT_DIR="$REPO_ROOT/services/sentiment"
SENTIMENT_MAIN="services/sentiment/sentiment_service.py"
SENTIMENT_VENV="$SHARED_STATE/sentiment-venv"

# Authentication (Kafka SASL/SCRAM with ACLs, Cassandra roles): on unless MYSIMBDP_AUTH=off.
AUTH="${MYSIMBDP_AUTH:-on}"
case "$AUTH" in on|off) ;; *) echo "MYSIMBDP_AUTH must be on or off, not '$AUTH'" >&2; exit 2 ;; esac
# The platform's own user in Kafka (a super user) and role in Cassandra (a superuser).
PLATFORM_USER=mysimbdp
SECRETS_DIR="$STATE_DIR/secrets"

# The workflow's services (issue 14): object storage, e-mail, Airflow.
S3PROXY_PORT="${MYSIMBDP_S3_PORT:-9400}"
S3PROXY_MAIN=org.gaul.s3proxy.Main
SMTP_PORT="${MYSIMBDP_SMTP_PORT:-2525}"
SMTP_VENV="$STATE_DIR/smtp-venv"
SMTP_MAIN="aiosmtpd"
AIRFLOW_PORT="${MYSIMBDP_AIRFLOW_PORT:-9480}"
AIRFLOW_VENV="$STATE_DIR/airflow-venv"
AIRFLOW_HOME_DIR="$STATE_DIR/airflow"
AIRFLOW_MAIN="deploy/local/airflow/run.sh"

KAFKA_MAIN=kafka.Kafka
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

require_java() {
  [[ -x "$JAVA" ]] || die "no Java 17 at $JAVA (apt-get install openjdk-17-jdk-headless, or set MYSIMBDP_JAVA_HOME)"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# services_from_arg ARG: prints the service names that ARG
# (kafka|cassandra|sentiment|s3proxy|smtp|airflow|workflow|all|"") stands for; `workflow` is the
# three services of the alert workflow.
services_from_arg() {
  case "${1:-all}" in
    all) echo "kafka cassandra sentiment s3proxy smtp airflow" ;;
    workflow) echo "s3proxy smtp airflow" ;;
    kafka|cassandra|sentiment|s3proxy|smtp|airflow) echo "$1" ;;
    *) die "unknown service '$1' (use kafka, cassandra, sentiment, s3proxy, smtp, airflow, workflow or all)" ;;
  esac
}

pid_file() { echo "$STATE_DIR/$1.pid"; }

main_class_of() {
  case "$1" in
    kafka) echo "$KAFKA_MAIN" ;;
    cassandra) echo "$CASSANDRA_MAIN" ;;
    sentiment) echo "$SENTIMENT_MAIN" ;;
    s3proxy) echo "$S3PROXY_MAIN" ;;
    smtp) echo "$SMTP_MAIN" ;;
    airflow) echo "$AIRFLOW_MAIN" ;;
  esac
}

# pid_alive SVC PID: the process exists and really is that service (its JVM main class, or the
# sentiment service's script) (guards against pid reuse).
pid_alive() {
  local svc=$1 pid=$2
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(main_class_of "$svc")"
}

# started_pid SVC: prints the pid from the pid file when that process is alive, else nothing.
started_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 0
  pid="$(tr -dc '0-9' <"$f")"
  if pid_alive "$1" "$pid"; then echo "$pid"; fi
}

# --- Kafka tools (same jars as the broker) ---------------------------------------------------------
# JVM line for Kafka's command-line tools: small heap, fast start, warnings only.
KAFKA_TOOL_JAVA=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$DEPLOY_DIR/kafka/tools-log4j2.xml" -cp "$LIB_DIR/kafka/*")

# kafka_tool MAIN_CLASS ARGS... : runs a Kafka command-line tool from the fetched jars, e.g.
#   kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
kafka_tool() { "${KAFKA_TOOL_JAVA[@]}" "$@"; }

# secret NAME: prints the secret kept in <repo>/.state/secrets/NAME, generating it (32 random
# bytes as hex, readable by this user only) the first time. Secrets never go on a command line.
secret() {
  local f="$SECRETS_DIR/$1"
  if [[ ! -s "$f" ]]; then
    mkdir -p "$SECRETS_DIR" && chmod 700 "$SECRETS_DIR"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
  fi
  cat "$f"
}

# The local services' certificates: a CA made here, and a certificate for 127.0.0.1 it signed.
TLS_DIR="$STATE_DIR/tls"

# ensure_tls: makes, once, $TLS_DIR/ca.pem (what clients trust) and $TLS_DIR/server.pem (the
# certificate and its key, encrypted with secrets/tls.password as Kafka's and Cassandra's PEM key
# stores want it: PKCS#8 with PBE-SHA1-3DES, as Java 17 reads no PBES2 key). The CA's key is
# thrown away: nothing else is ever signed with it.
ensure_tls() {
  [[ -s "$TLS_DIR/server.pem" && -s "$TLS_DIR/ca.pem" ]] && return 0
  command -v openssl >/dev/null || die "tls: the openssl command is missing (Debian: apt-get install openssl)"
  secret tls.password >/dev/null
  local work
  work="$(mktemp -d)"
  (
    set -e
    cd "$work"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mysimbdp local CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile san.ext -out server.crt 2>/dev/null
    openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in server.key \
      -passout "file:$SECRETS_DIR/tls.password" -out server.key.enc
    cat server.key.enc server.crt >server.pem
  ) || { rm -rf "$work"; die "tls: openssl could not make the local certificates"; }
  mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  cp "$work/ca.pem" "$TLS_DIR/ca.pem"
  cp "$work/server.pem" "$TLS_DIR/server.pem"
  chmod 644 "$TLS_DIR/ca.pem"
  rm -rf "$work"
  log "tls: made $TLS_DIR/ca.pem and a certificate for 127.0.0.1 signed by it"
}

# kafka_tools_config: the client settings file for Kafka's tools (the platform's user when
# authentication is on), kept under .state because it holds a password.
kafka_tools_config() {
  if [[ "$AUTH" == off ]]; then echo "$DEPLOY_DIR/kafka/tools.properties"; return; fi
  local f="$SECRETS_DIR/kafka-tools.properties"
  if [[ ! -s "$f" ]]; then
    (umask 077 && { cat "$DEPLOY_DIR/kafka/tools.properties"
      printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n'
      printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
        "$PLATFORM_USER" "$(secret kafka-platform.password)"; } >"$f")
  fi
  echo "$f"
}

# kafka_answers: port open and a metadata request (list topics) succeeds within a few seconds.
kafka_answers() {
  port_open "$KAFKA_PORT" || return 1
  timeout 30 "${KAFKA_TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --command-config "$(kafka_tools_config)" --list >/dev/null 2>&1
}

# --- Cassandra CQL check (python cassandra-driver) -----------------------------------------------
CQL_PYTHON=""
# ensure_cql_python: sets CQL_PYTHON to a python3 that can `import cassandra`, installing the
# cassandra-driver package into <repo>/.state/venv when no such python exists yet.
ensure_cql_python() {
  [[ -n "$CQL_PYTHON" ]] && return 0
  if [[ -x "$SHARED_STATE/venv/bin/python" ]] && "$SHARED_STATE/venv/bin/python" -c 'import cassandra' 2>/dev/null; then
    CQL_PYTHON="$SHARED_STATE/venv/bin/python"; return 0
  fi
  if command -v python3 >/dev/null && python3 -c 'import cassandra' 2>/dev/null; then
    CQL_PYTHON="$(command -v python3)"; return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed for the CQL check"
  log "installing python cassandra-driver into $SHARED_STATE/venv (once)"
  mkdir -p "$SHARED_STATE"
  python3 -m venv "$SHARED_STATE/venv" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
  "$SHARED_STATE/venv/bin/python" -m pip install -q --disable-pip-version-check "cassandra-driver==3.29.2" \
    || die "pip install cassandra-driver failed"
  CQL_PYTHON="$SHARED_STATE/venv/bin/python"
}

# cassandra_answers: port open and SELECT release_version FROM system.local succeeds.
cassandra_answers() {
  port_open "$CASSANDRA_PORT" || return 1
  ensure_cql_python
  cql_env timeout 30 "$CQL_PYTHON" "$DEPLOY_DIR/cassandra/cql_check.py" 127.0.0.1 "$CASSANDRA_PORT" >/dev/null 2>&1
}

# cql_env CMD...: runs CMD with the platform's Cassandra role in CQL_USER/CQL_PASSWORD_FILE when
# authentication is on (the CQL scripts read them; no password on a command line).
cql_env() {
  if [[ "$AUTH" == on ]]; then
    secret cassandra-platform.password >/dev/null
    CQL_USER="$PLATFORM_USER" CQL_PASSWORD_FILE="$SECRETS_DIR/cassandra-platform.password" "$@"
  else
    "$@"
  fi
}

# --- The sentiment inference service (services/sentiment, Python) --------------------------------
# ensure_sentiment_venv: <repo>/.state/sentiment-venv with the pinned requirements.txt installed;
# installed again when requirements.txt changes (its sha256 is kept in the venv).
ensure_sentiment_venv() {
  local req="$SENTIMENT_DIR/requirements.txt" want have=""
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  [[ -f "$SENTIMENT_VENV/.installed" ]] && have="$(cat "$SENTIMENT_VENV/.installed")"
  [[ "$want" == "$have" && -x "$SENTIMENT_VENV/bin/python" ]] && return 0
  command -v python3 >/dev/null || die "python3 is needed for the sentiment service"
  log "sentiment: installing the pinned packages of ${req#"$REPO_ROOT"/} into ${SENTIMENT_VENV#"$REPO_ROOT"/}"
  mkdir -p "$SHARED_STATE"
  python3 -m venv "$SENTIMENT_VENV" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
  "$SENTIMENT_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" \
    || die "pip install -r $req failed"
  echo "$want" >"$SENTIMENT_VENV/.installed"
}

# sentiment_answers: GET /health answers 200 with status ok.
sentiment_answers() {
  port_open "$SENTIMENT_PORT" || return 1
  timeout 10 python3 -c 'import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
sys.exit(0 if doc.get("status") == "ok" else 1)' "http://127.0.0.1:$SENTIMENT_PORT/health" >/dev/null 2>&1
}

service_answers() {
  case "$1" in
    kafka) kafka_answers ;;
    cassandra) cassandra_answers ;;
    sentiment) sentiment_answers ;;
    s3proxy) s3proxy_answers ;;
    smtp) smtp_answers ;;
    airflow) airflow_answers ;;
  esac
}

service_port() {
  case "$1" in
    kafka) echo "$KAFKA_PORT" ;;
    cassandra) echo "$CASSANDRA_PORT" ;;
    sentiment) echo "$SENTIMENT_PORT" ;;
    s3proxy) echo "$S3PROXY_PORT" ;;
    smtp) echo "$SMTP_PORT" ;;
    airflow) echo "$AIRFLOW_PORT" ;;
  esac
}

# --- The alert workflow's services (issue 14) -----------------------------------------------------
# Credentials are generated on first start and kept under .state/ (mode 600), never in the repo.

# secret_at FILE: prints the secret kept in FILE, creating it (48 random hex digits) the first
# time (`secret NAME` keeps the platform's own under .state/secrets/).
secret_at() {
  local f=$1
  if [[ ! -s "$f" ]]; then
    mkdir -p "$(dirname "$f")"
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
  fi
  cat "$f"
}

# http_status URL: prints the HTTP status code of a GET (000 when nothing answers).
http_status() {
  python3 -c 'import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")' "$1" 2>/dev/null
}

# s3proxy_answers: an S3 request gets an S3 answer (403 for an unsigned request is an answer).
s3proxy_answers() {
  port_open "$S3PROXY_PORT" || return 1
  [[ "$(http_status "http://127.0.0.1:$S3PROXY_PORT/")" =~ ^(200|403)$ ]]
}

# smtp_answers: the server greets with 220.
smtp_answers() {
  port_open "$SMTP_PORT" || return 1
  timeout 5 python3 -c 'import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=4); s.noop(); s.quit()' "$SMTP_PORT" >/dev/null 2>&1
}

# airflow_answers: the API server answers and reports the metadata database and scheduler healthy.
airflow_answers() {
  port_open "$AIRFLOW_PORT" || return 1
  timeout 10 python3 -c 'import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
ok = all(doc.get(k, {}).get("status") == "healthy" for k in ("metadatabase", "scheduler"))
sys.exit(0 if ok else 1)' "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null 2>&1
}

# ensure_venv DIR REQUIREMENTS [CONSTRAINTS]: DIR holds a venv with REQUIREMENTS installed
# (under CONSTRAINTS); installed again when either file changes.
ensure_venv() {
  local venv=$1 req=$2 constraints=${3:-} want have=""
  want="$(cat "$req" ${constraints:+"$constraints"} | sha256sum | cut -d' ' -f1)"
  [[ -f "$venv/.installed" ]] && have="$(cat "$venv/.installed")"
  [[ "$want" == "$have" && -x "$venv/bin/python" ]] && return 0
  command -v python3 >/dev/null || die "python3 is needed for ${venv#"$REPO_ROOT"/}"
  log "installing ${req#"$REPO_ROOT"/} into ${venv#"$REPO_ROOT"/}"
  local t0=$SECONDS
  mkdir -p "$STATE_DIR"
  python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed (apt-get install python3-venv)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" \
    ${constraints:+-c "$constraints"} || die "pip install -r $req failed"
  echo "$want" >"$venv/.installed"
  log "installed ${venv#"$REPO_ROOT"/} in $((SECONDS - t0)) s"
}

# airflow_env: exports the settings Airflow's processes and CLI share: SQLite and everything
# under .state/airflow, the DAGs in workflows/, no examples, the API on loopback behind the
# simple auth manager with one admin user `mysimbdp` whose password is generated on first start
# (.state/airflow/admin.password), and generated JWT and session secrets.
airflow_env() {
  mkdir -p "$AIRFLOW_HOME_DIR"
  local password; password="$(secret_at "$AIRFLOW_HOME_DIR/admin.password")"
  (umask 077; printf '{"mysimbdp": "%s"}\n' "$password" >"$AIRFLOW_HOME_DIR/passwords.json")
  export AIRFLOW_HOME="$AIRFLOW_HOME_DIR"
  export AIRFLOW__CORE__DAGS_FOLDER="$REPO_ROOT/workflows"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__CORE__PARALLELISM=2
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="mysimbdp:admin"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME_DIR/passwords.json"
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME_DIR/airflow.db"
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT="$AIRFLOW_PORT"
  export AIRFLOW__API__WORKERS=1
  export AIRFLOW__API__BASE_URL="http://127.0.0.1:$AIRFLOW_PORT"
  AIRFLOW__API__SECRET_KEY="$(secret_at "$AIRFLOW_HOME_DIR/session.secret")"
  AIRFLOW__API_AUTH__JWT_SECRET="$(secret_at "$AIRFLOW_HOME_DIR/jwt.secret")"
  export AIRFLOW__API__SECRET_KEY AIRFLOW__API_AUTH__JWT_SECRET
  export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=10
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
  export MYSIMBDP_WORKFLOW_SETTINGS="$STATE_DIR/workflow/settings.json"
}

# airflow_settings: what the DAG's tasks need to reach the platform's services, written for them
# to .state/workflow/settings.json (mode 600: it holds the object store's credential).
airflow_settings() {
  mkdir -p "$STATE_DIR/workflow/runs"
  local credential; credential="$(secret_at "$STATE_DIR/s3proxy/credential")"
  # The history task runs `mysimbdp batch` as the platform's Cassandra role when logins are on.
  local login=""
  if [[ "$AUTH" != off ]]; then
    secret cassandra-platform.password >/dev/null
    login="$PLATFORM_USER"
  fi
  (umask 077; python3 - "$STATE_DIR/workflow/settings.json" <<PY
import json, sys
json.dump({
    "cassandra_user": "$login",
    "cassandra_password_file": "$SECRETS_DIR/cassandra-platform.password",
    "mysimbdp": "${MYSIMBDP_BIN:-$REPO_ROOT/target/release/mysimbdp}",
    "apps": "$REPO_ROOT/target/wasm32-wasip2/release",
    "cassandra": "127.0.0.1:$CASSANDRA_PORT",
    "runs": "$STATE_DIR/workflow/runs",
    "s3": {"endpoint": "http://127.0.0.1:$S3PROXY_PORT", "identity": "mysimbdp", "credential": "$credential"},
    "smtp": {"host": "127.0.0.1", "port": $SMTP_PORT, "sender": "alerts@mysimbdp.local"},
}, open(sys.argv[1], "w"), indent=2)
PY
  )
}
