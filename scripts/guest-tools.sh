#!/usr/bin/env bash
# The tools tenants' Python and JavaScript apps are built with, pinned, under
# .state/guest-tools/ (called by scripts/prereqs.sh, so a fresh machine gets them):
# componentize-py in a venv of its own, and @bytecodealliance/componentize-js by `npm ci` from
# sdk/js/tools/package-lock.json. `mysimbdp app build` looks for them there (or at
# MYSIMBDP_COMPONENTIZE_PY / MYSIMBDP_COMPONENTIZE_JS) and refuses other versions; the versions
# are also `COMPONENTIZE_PY` and `COMPONENTIZE_JS` in host/src/cli/project/mod.rs.
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

COMPONENTIZE_JS=0.23.0
js="$root/.state/guest-tools/js"
if [[ "$(node "$js/node_modules/.bin/componentize-js" --version 2>/dev/null || true)" != "$COMPONENTIZE_JS" ]] ||
  ! cmp -s "$root/sdk/js/tools/package-lock.json" "$js/package-lock.json"; then
  command -v npm >/dev/null || die "needs Node.js 20 and npm for JavaScript tenant apps: sudo apt-get install nodejs npm"
  log "installing componentize-js $COMPONENTIZE_JS into $js (JavaScript tenant apps are built with it)"
  mkdir -p "$js"
  cp "$root/sdk/js/tools/package.json" "$root/sdk/js/tools/package-lock.json" "$js/"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
