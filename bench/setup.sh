#!/usr/bin/env bash
# Makes bench/.venv (PySpark, the Cassandra and Kafka clients, matplotlib) and resolves Spark's
# Kafka and Cassandra connector jars from Maven Central into .state/bench-spark/ivy, each only
# when missing. Run by scripts/bench-spark.sh; safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/bench/.venv"
stamp="$venv/.requirements"
if ! cmp -s "$root/bench/requirements.txt" "$stamp" 2>/dev/null; then
  echo "bench: installing bench/requirements.txt into bench/.venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/bench/requirements.txt"
  cp "$root/bench/requirements.txt" "$stamp"
fi
ivy="$root/.state/bench-spark/ivy"
if ! ls "$ivy"/jars/*spark-cassandra-connector_2.12-3.5.1.jar >/dev/null 2>&1 ||
   ! ls "$ivy"/jars/*spark-sql-kafka-0-10_2.12-3.5.7.jar >/dev/null 2>&1; then
  echo "bench: resolving the Spark connector jars from Maven Central"
  mkdir -p "$ivy"
  cd "$root"
  JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}" "$venv/bin/python" - "$ivy" \
    <<'PY' >"$ivy/../resolve.log" 2>&1 || { tail -30 "$ivy/../resolve.log" >&2; exit 1; }
import sys
sys.path.insert(0, "bench/spark")
from pyspark.sql import SparkSession
from reviews_daily import PACKAGES
spark = (SparkSession.builder.master("local[1]").config("spark.jars.packages", PACKAGES)
         .config("spark.jars.ivy", sys.argv[1]).config("spark.ui.enabled", "false").getOrCreate())
spark.stop()
PY
fi
