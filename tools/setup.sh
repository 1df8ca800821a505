#!/usr/bin/env bash
# Set up a fresh checkout: npm dependencies, and Mesa's lavapipe Vulkan driver when no WebGPU
# adapter is found (Debian 12 needs Mesa >= 24 from bookworm-backports; Dawn rejects 22.x).
# Idempotent: re-running does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# The oldest TypeScript the package's declarations support: test/consumers type-checks a consumer
# project with it (a project of its own, so that it does not take node_modules/.bin/tsc).
OLDEST_TS=test/consumers/typescript-oldest
if [ ! -d "$OLDEST_TS/node_modules" ] || [ "$OLDEST_TS/package-lock.json" -nt "$OLDEST_TS/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$OLDEST_TS" --no-audit --no-fund
fi

probe() { node tools/has-adapter.mjs >/dev/null 2>&1; }

if ! probe; then
  echo "setup: no WebGPU adapter; installing Mesa lavapipe (CPU Vulkan driver)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [ -r /etc/debian_version ] && grep -q '^12' /etc/debian_version; then
    src=/etc/apt/sources.list.d/bookworm-backports.sources
    if [ ! -e "$src" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' | $SUDO tee "$src" >/dev/null
    fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
  else
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mesa-vulkan-drivers
  fi
  probe || { node tools/has-adapter.mjs; exit 1; }
fi

# Debian's Chromium drives the browser demo's end-to-end test (test/web/demo.test.ts skips without it).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian's chromium (browser demo test)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
node tools/has-adapter.mjs
