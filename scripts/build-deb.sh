#!/usr/bin/env bash
# Builds the Debian package (veille_VERSION_ARCH.deb) from the working tree with
# Debian's own tools: dpkg-buildpackage -us -uc -b, then lintian on the result.
# The build runs in a temporary copy, because dpkg-buildpackage writes its
# results into the parent directory of the source tree; the .deb lands in
# OUTDIR (default build-deb/). Installs debhelper and lintian when missing.
# Usage: scripts/build-deb.sh [OUTDIR]. Not part of tests/run.sh: it takes a
# few minutes (a full meson build and the unit tests, as dh_auto_test).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build-deb}")

need=()
for p in build-essential debhelper lintian meson ninja-build pkg-config libh2o-evloop-dev liblmdb-dev \
  libmsgpack-dev libjansson-dev libssl-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/veille"
# The tracked and new files, without build directories or node_modules.
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/veille"
(cd "$work/veille" && dpkg-buildpackage -us -uc -b)
mkdir -p "$out"
cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
deb=$(ls "$out"/veille_*.deb | tail -1)
echo "built $deb"
lintian --info --display-info "$deb" || { echo "lintian found problems (see above)" >&2; exit 1; }
echo "lintian: clean"
