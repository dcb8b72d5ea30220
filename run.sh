#!/usr/bin/env bash
# Builds veille if needed (installing what is missing) and runs it:
#   VEILLE_WEBHOOK_SECRET=whsec_... ./run.sh            # = veille serve on its defaults
#   ./run.sh history user_123                           # any other subcommand
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh >&2
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build veille >/dev/null
[ $# -gt 0 ] || set -- serve
exec build/veille "$@"
