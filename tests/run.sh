#!/usr/bin/env bash
# The whole test suite: unit tests and the svix interop tests, on a normal build and
# again under ASan+UBSan. Installs what is missing. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests || { echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

build() { # dir, meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$log/setup" 2>&1 || { cat "$log/setup"; return 1; }
  fi
  ninja -C "$dir" >"$log/ninja" 2>&1 || { tail -40 "$log/ninja"; return 1; }
}

count_unit() { # label, build dir
  local label=$1 dir=$2
  for t in "$dir"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    "$t" >"$log/out" 2>&1
    local rc=$?
    local p f
    p=$(grep -c '^PASS ' "$log/out"); f=$(grep -c '^FAIL ' "$log/out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed or sanitizer report
    passed=$((passed + p)); failed=$((failed + f))
    echo "$label $(basename "$t"): $p passed, $f failed"
    if [ "$f" -ne 0 ]; then grep -v '^PASS ' "$log/out" | tail -40; fi
  done
}

count_interop() { # label, veille binary
  local label=$1 bin=$2
  VEILLE_BIN="$bin" node --test --test-reporter=tap tests/interop/ >"$log/node" 2>&1
  local rc=$?
  local p f
  p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/node" | tail -1); f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/node" | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "$label interop: $p passed, $f failed"
  if [ "$f" -ne 0 ]; then grep -E -A25 '^not ok' "$log/node" | head -120; fi
}

if build build; then
  count_unit "build" build
  count_interop "build" build/veille
else
  echo "build failed"; failed=$((failed + 1))
fi

# ./run.sh (the README's first command) builds with --buildtype=release: -O3
# finds warnings (maybe-uninitialized) the debugoptimized build does not.
if build build-release --buildtype=release; then
  passed=$((passed + 1)); echo "release build: 1 passed, 0 failed"
else
  echo "release build failed"; failed=$((failed + 1))
fi

if [ "${VEILLE_SKIP_SANITIZERS:-0}" != 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
  if build build-asan -Db_sanitize=address,undefined -Dbuildtype=debug -Db_lundef=false; then
    count_unit "asan+ubsan" build-asan
    count_interop "asan+ubsan" build-asan/veille
  else
    echo "sanitizer build failed"; failed=$((failed + 1))
  fi
fi

# Fuzz step: every libFuzzer target (tests/fuzz/run.sh, which installs clang) for
# VEILLE_FUZZ_SECONDS each, default 30 (0 skips; VEILLE_SKIP_SANITIZERS=1 makes
# the default 0, these are sanitizer builds too). Each target counts 1 passed or
# 1 failed; skipped when clang cannot build libFuzzer targets.
fuzz_seconds=${VEILLE_FUZZ_SECONDS:-30}
[ -n "${VEILLE_FUZZ_SECONDS:-}" ] || [ "${VEILLE_SKIP_SANITIZERS:-0}" != 1 ] || fuzz_seconds=0
if [ "$fuzz_seconds" != 0 ]; then
  FUZZ_SECONDS="$fuzz_seconds" tests/fuzz/run.sh >"$log/fuzz" 2>"$log/fuzz.err"
  rc=$?
  if [ "$rc" -eq 77 ]; then
    cat "$log/fuzz.err"
  else
    grep '^fuzz ' "$log/fuzz"
    p=$(grep -c '^fuzz [a-z]*: ok' "$log/fuzz"); f=$(grep -c '^fuzz [a-z]*: FOUND' "$log/fuzz")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then tail -60 "$log/fuzz.err"; fi
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
