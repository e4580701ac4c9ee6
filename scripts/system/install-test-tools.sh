#!/usr/bin/env bash
# Debian packages the browser (status page) and Prometheus tests drive: chromium, prometheus, promtool.
# Those tests fail, never skip, without them; this installs only what is missing.
set -euo pipefail
missing=0
for tool in chromium prometheus promtool; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ "$missing" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium and prometheus are needed by the status-page and Prometheus tests: install the Debian packages 'chromium' and 'prometheus' (needs root and apt-get)" >&2
  exit 1
fi
echo "Installing Debian packages: chromium prometheus"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium prometheus >/dev/null
