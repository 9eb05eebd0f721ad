#!/usr/bin/env bash
# `mysimbdp batch` over N stored daily rows (default 1 000 000) against Pandas over the whole
# table in one process, same machine, one run each; both results checked against the rows
# written. Needs Kafka and Cassandra (scripts/with-services.sh starts them). Pandas and the
# Python Cassandra driver go into .state/bench-venv (pinned in bench/batch/requirements.txt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source deploy/local/lib.sh
ensure_venv "$STATE_DIR/bench-venv" bench/batch/requirements.txt
cargo build --release -q -p mysimbdp-host
cargo build --release -q --target wasm32-wasip2 -p product-all-time -p product-seasonality
cargo run --release -q -p mysimbdp-tests --bin bench-batch -- "${1:-1000000}" "$STATE_DIR/bench-venv/bin/python"
