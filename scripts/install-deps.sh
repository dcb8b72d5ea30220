#!/usr/bin/env bash
# Installs what building and testing veille needs, only when it is missing:
# Debian packages for the build, and the npm packages of the interop tests.
# Usage: scripts/install-deps.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(gcc meson ninja-build pkg-config libh2o-evloop-dev liblmdb-dev libmsgpack-dev libjansson-dev libssl-dev)
# src/device: uap-core's regexes (read at run time, and its test suite), PCRE2, libyaml.
pkgs+=(uap-core libpcre2-dev libyaml-dev)
# src/ipintel: libloc and its location database.
pkgs+=(libloc-dev libloc-database)
if [ "${1:-}" = "--tests" ]; then
  # rsyslog: the syslog sink tests run a real rsyslogd on loopback ports.
  pkgs+=(nodejs npm rsyslog)
  # chromium: the web console's browser tests (tests/interop/console.test.mjs, puppeteer-core).
  pkgs+=(chromium)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node may come from outside Debian (it does on these machines): then npm is there too.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--tests" ] && { [ ! -d tests/interop/node_modules/svix ] ||
  [ ! -d tests/interop/node_modules/standardwebhooks ] || [ ! -d tests/interop/node_modules/puppeteer-core ]; }; then
  echo "installing the interop tests' npm packages" >&2
  (cd tests/interop && npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null)
fi
