#!/usr/bin/env bash
# What `just demo` and `just test` need before they build: adds the wasm32-wasip2 target (and
# clippy, rustfmt) through rustup when missing; names in one line what it cannot install itself.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/deploy/local/lib.sh"

command -v rustup >/dev/null ||
  die "needs Rust by rustup: curl https://sh.rustup.rs -sSf | sh (then open a new shell)"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  log "adding the wasm32-wasip2 target (tenant apps are built for it)"
  rustup target add wasm32-wasip2
fi
for component in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
missing=()
[[ -x "$JAVA" ]] || missing+=("OpenJDK 17")
command -v mvn >/dev/null || missing+=("Maven")
command -v python3 >/dev/null || missing+=("Python 3")
if ((${#missing[@]})); then
  needs="$(printf '%s, ' "${missing[@]}")"
  die "needs ${needs%, }, which this script does not install: sudo apt-get install openjdk-17-jdk-headless maven python3"
fi
"$root/scripts/guest-tools.sh"
