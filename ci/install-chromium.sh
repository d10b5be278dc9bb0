#!/usr/bin/env bash
# Debian's headless Chromium for the portal's browser tests (Playwright drives /usr/bin/chromium; never 'playwright install').
# fonts-noto-cjk renders the Korean pages in screenshots. Idempotent; needs root only when something is missing.
set -euo pipefail
if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/opentype/noto ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install-chromium: as root run: apt-get install chromium fonts-noto-cjk" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
fi
chromium --version 2>/dev/null | head -1
