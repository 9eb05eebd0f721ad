#!/usr/bin/env bash
# What the dashboard's browser test needs: a Python venv with Playwright (pinned in
# tests/browser/requirements.txt) in .state/browser-venv, and Debian's chromium. Chromium is
# installed with apt when running as root (CI); otherwise its absence is named.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.state/browser-venv"
requirements="$root/tests/browser/requirements.txt"
if ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium
  else
    echo "the dashboard's browser test needs chromium: sudo apt-get install --no-install-recommends chromium" >&2
    exit 1
  fi
fi
stamp="$venv/.requirements"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
