#!/usr/bin/env bash
# `just test`: formatting, lints, unit tests, and the integration tests against real Kafka and
# Cassandra (started here when not running, and stopped again).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
apps=$(ls tenant-apps | sed 's/^/-p /')
cargo clippy --release --target wasm32-wasip2 -p mysimbdp-guest $apps -- -D warnings
cargo build --release -p mysimbdp-host
cargo build --release --target wasm32-wasip2 $apps
# Tenant apps are Wasm components: they are built for wasm32-wasip2 above, not tested natively.
scripts/with-services.sh cargo test --release -- --test-threads 1
