#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (agent console, lead console, dashboard), when
# it is not there yet. Playwright drives this browser; it never downloads one of its own.
#
# What it does to the machine (root needed): `apt-get install chromium` from the machine's own
# Debian sources. Elsewhere, install Chromium yourself and point KEFU_CHROMIUM at its binary.
set -euo pipefail

browser=${KEFU_CHROMIUM:-/usr/bin/chromium}
if [ -x "$browser" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "the browser tests need Chromium: install Debian's 'chromium' package (root), or set" \
        "KEFU_CHROMIUM to a Chromium binary" >&2
    exit 1
fi
echo "[setup] installing Debian's chromium for the browser tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
