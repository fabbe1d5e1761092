#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it; no browser is ever downloaded by a tool).
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Chromium is missing: run 'apt-get install chromium' as root, then 'make test' again." >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
