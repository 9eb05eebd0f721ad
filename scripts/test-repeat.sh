#!/usr/bin/env bash
# `just test-repeat N`: the end-to-end suite (tests/) N times in a row against real Kafka and
# Cassandra, every test binary each time; then every test that failed in any run, and the time
# of each run. Usage: scripts/test-repeat.sh N
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:?usage: scripts/test-repeat.sh N}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number, not '$runs'" >&2; exit 2; }
if [[ "${2:-}" != "--inside" ]]; then
  scripts/prereqs.sh
  scripts/browser-prereqs.sh
  apps=$(ls tenant-apps/*/Cargo.toml | cut -d/ -f2 | sed 's/^/-p /')
  cargo build --release -p mysimbdp-host
  cargo build --release --target wasm32-wasip2 $apps
  scripts/build-guest-apps.sh
  cargo test --release -p mysimbdp-tests --no-run
  exec scripts/with-services.sh "$0" "$runs" --inside
fi

mkdir -p .state
summary=()
failures=0
for run in $(seq 1 "$runs"); do
  log=".state/test-repeat-$run.log"
  echo "== run $run of $runs (log: $log)"
  t0=$SECONDS
  status=0
  cargo test --release -p mysimbdp-tests --no-fail-fast -- --test-threads 1 >"$log" 2>&1 || status=$?
  failed="$(sed -nE 's/^test (.*) \.\.\. FAILED$/\1/p' "$log" | tr '\n' ' ')"
  line="run $run: $((SECONDS - t0)) s, exit $status${failed:+, failed: $failed}"
  echo "$line"
  summary+=("$line")
  [[ $status == 0 ]] || failures=$((failures + 1))
done
echo
echo "== $runs runs of the end-to-end suite"
printf '%s\n' "${summary[@]}"
echo "runs: $((runs - failures)) passed, $failures failed"
((failures == 0))
