#!/usr/bin/env bash
# Tenant apps of this repository written in other languages than Rust, built by the platform's
# own `mysimbdp app build` with the pinned tools of scripts/guest-tools.sh, into
# target/wasm32-wasip2/release/ beside the Rust ones (tenant-apps/reviews-daily-py becomes
# reviews_daily_py.wasm, tenant-apps/reviews-daily-js reviews_daily_js.wasm).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/guest-tools.sh"
out="$root/target/wasm32-wasip2/release"
for project in tenant-apps/*/pyproject.toml tenant-apps/*/package.json; do
  dir="$(dirname "$project")"
  name="$(basename "$dir")"
  wasm="$out/${name//-/_}.wasm"
  # Built again only when the app, its SDK, or the contract changed: each build of
  # a Python or JavaScript app is a new component to compile.
  if [[ -f "$wasm" ]] && [[ -z "$(find "$dir" sdk wit -newer "$wasm" \
    -type f -not -path '*/.build/*' -not -path '*/__pycache__/*' -print -quit)" ]]; then
    continue
  fi
  target/release/mysimbdp app build "$dir" --out "$wasm"
done
