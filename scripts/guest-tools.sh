#!/usr/bin/env bash
# The tools tenants' Python apps are built with, pinned, under .state/guest-tools/ (called by
# scripts/prereqs.sh, so a fresh machine gets them): componentize-py in a venv of its own.
# `mysimbdp app build` looks for it there (or at MYSIMBDP_COMPONENTIZE_PY) and refuses another
# version; the version is also `COMPONENTIZE_PY` in host/src/cli/project/mod.rs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/deploy/local/lib.sh"

COMPONENTIZE_PY=0.25.1
venv="$root/.state/guest-tools/py"
if [[ "$("$venv/bin/componentize-py" --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY" ]]; then
  log "installing componentize-py $COMPONENTIZE_PY into $venv (Python tenant apps are built with it)"
  python3 -m venv "$venv" || die "python3 -m venv failed: sudo apt-get install python3-venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi
