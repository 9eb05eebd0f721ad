#!/usr/bin/env bash
# What authentication costs end to end: scripts/bench-e2e.sh ROWS on the local services without
# authentication, then with it (Kafka SASL/SCRAM with ACLs, Cassandra roles), one run each,
# side by side. Each mode gets its own services (state in .state/bench-auth-<mode>/, ports
# 29092/29093/29042/27000/27001/27199/29300), started and stopped here, so the services of
# `just up` are neither used nor disturbed. Usage: scripts/bench-auth.sh [ROWS]   (in `just bench`)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-200000}"
export MYSIMBDP_KAFKA_PORT=29092 MYSIMBDP_KAFKA_CONTROLLER_PORT=29093 MYSIMBDP_CASSANDRA_PORT=29042 \
  MYSIMBDP_CASSANDRA_STORAGE_PORT=27000 MYSIMBDP_CASSANDRA_SSL_STORAGE_PORT=27001 \
  MYSIMBDP_CASSANDRA_JMX_PORT=27199 MYSIMBDP_SENTIMENT_PORT=29300
out="$root/.state/bench-auth"
mkdir -p "$out"
for mode in off on; do
  echo "== authentication $mode"
  MYSIMBDP_AUTH=$mode MYSIMBDP_STATE_DIR="$root/.state/bench-auth-$mode" \
    scripts/with-services.sh scripts/bench-e2e.sh "$rows" 2>&1 | tee "$out/$mode.txt"
done
python3 - "$out/off.txt" "$out/on.txt" <<'PY'
import re, sys
def figures(path):
    text = open(path).read()
    wall = re.search(r"([\d,]+) records/s of wall time", text)
    cpu = re.search(r"([\d,]+) records per CPU s", text)
    produce = re.search(r"rate\s+(\d+) records/s", text)
    return [m.group(1) if m else "?" for m in (produce, wall, cpu)]
off, on = figures(sys.argv[1]), figures(sys.argv[2])
print("\nauthentication      off          on")
for name, a, b in zip(["produce (records/s)", "platform (records/s)", "per CPU second"], off, on):
    print(f"  {name:<22} {a:>10}  {b:>10}")
PY
