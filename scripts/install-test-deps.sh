#!/usr/bin/env bash
# Installs the pinned real Salesforce clients the conformance tests drive
# (and axe-core and Chromium for the admin page's browser test):
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

# axe-core, which the admin page's browser test runs on every page (pinned).
axe=crates/thena-sf/tests/axe
if [ ! -f "$axe/node_modules/.installed" ] || [ "$axe/package-lock.json" -nt "$axe/node_modules/.installed" ]; then
  echo "installing axe-core (pinned) in $axe" >&2
  (cd "$axe" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$axe/node_modules/.installed"
fi

venv=target/conformance-venv
req=conformance/simple_salesforce/requirements.txt
if [ ! -f "$venv/.installed" ] || [ "$req" -nt "$venv/.installed" ]; then
  echo "installing simple-salesforce (pinned) in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$venv/.installed"
fi

# Headless Chromium and its WebDriver for the admin page's browser test
# (crates/thena-sf/tests/admin/browser.rs): Debian's packages, pinned. Should the
# pinned build have left the archive (security updates replace it), the
# archive's current build is taken, and said so.
chromium_version=156.0.8078.129-1~deb12u1
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver $chromium_version" >&2
  sudo_=""
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  pinned="chromium=$chromium_version chromium-driver=$chromium_version"
  if ! $sudo_ apt-get install -y --no-install-recommends $pinned >/dev/null; then
    $sudo_ apt-get update -qq
    if ! $sudo_ apt-get install -y --no-install-recommends $pinned >/dev/null; then
      echo "chromium $chromium_version is no longer in the archive; installing its current build" >&2
      $sudo_ apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null
    fi
  fi
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)" >&2
