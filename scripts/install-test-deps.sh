#!/usr/bin/env bash
# Installs the pinned real Salesforce clients the conformance tests drive:
# jsforce (npm, conformance/jsforce/package-lock.json) and simple-salesforce
# (PyPI, conformance/simple_salesforce/requirements.txt, in target/conformance-venv).
# Quick when they are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

js=conformance/jsforce
if [ ! -f "$js/node_modules/.installed" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.installed" ]; then
  echo "installing jsforce (pinned) in $js" >&2
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$js/node_modules/.installed"
fi

venv=target/conformance-venv
req=conformance/simple_salesforce/requirements.txt
if [ ! -f "$venv/.installed" ] || [ "$req" -nt "$venv/.installed" ]; then
  echo "installing simple-salesforce (pinned) in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$venv/.installed"
fi
