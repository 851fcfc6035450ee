#!/usr/bin/env bash
# Installs the Debian packages that the test suite drives, only when they are missing.
# Chromium (browser tests), redis-server (Redis broker tests), PostgreSQL (store tests), Node.js + npm (bench peers; `node --test` for the web client's modules), a colour emoji font (screenshots).
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
# A colour emoji font: the browser tests' screenshots show reactions and the emoji picker.
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${need[*]}; install them with apt-get (needs root)" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
