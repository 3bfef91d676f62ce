#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real, when they are missing:
# Chromium (browser tests through Playwright) and PostgreSQL (database tests).
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
command -v fc-list >/dev/null || need+=(fontconfig)
[ ${#need[@]} -eq 0 ] && exit 0
echo "system-packages: installing ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
