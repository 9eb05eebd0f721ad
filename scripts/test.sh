#!/usr/bin/env bash
# `just test`: formatting, lints, unit tests, and the integration tests against real Kafka and
# Cassandra (started here when not running, and stopped again). Every test binary runs even when
# one fails; the run ends with one line per binary and a total.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/prereqs.sh
# The dashboard's browser test: Playwright in a venv, Debian's chromium.
scripts/browser-prereqs.sh
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
apps=$(ls tenant-apps/*/Cargo.toml | cut -d/ -f2 | sed 's/^/-p /')
cargo clippy --release --target wasm32-wasip2 -p mysimbdp-guest $apps -- -D warnings
cargo build --release -p mysimbdp-host
cargo build --release --target wasm32-wasip2 $apps
scripts/build-guest-apps.sh
# A restarted authenticated Kafka still knows the platform after tenants were removed.
deploy/local/restart-check.sh
# Tenant apps are Wasm components: they are built for wasm32-wasip2 above, not tested natively.
mkdir -p .state
log=.state/test.log
status=0
scripts/with-services.sh cargo test --release --no-fail-fast -- --test-threads 1 2>&1 |
  tee "$log" || status=$?
scripts/test-summary.py "$log"
for shot in target/dashboard/dashboard-wide.png target/dashboard/dashboard-narrow.png; do
  [[ -f "$shot" ]] && echo "dashboard screenshot (tests/dashboard.rs): $shot"
done
exit "$status"
