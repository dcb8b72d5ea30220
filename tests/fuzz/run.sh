#!/usr/bin/env bash
# run.sh: builds the rule-file fuzz target (fuzz_rules.c) with clang + libFuzzer,
# ASan and UBSan, seeds its corpus from the golden rule files, and fuzzes for
# FUZZ_SECONDS (default 600). Exits non-zero when a crash, leak or UB was found;
# the reproducer (crash-*, leak-*, ...) is left in the build dir.
# Knobs (environment): FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz). Extra
# arguments are passed to libFuzzer, e.g. a crash file to replay it.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-600}

if ! command -v clang >/dev/null 2>&1; then
  echo "installing: clang" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang >/dev/null
fi

mkdir -p "$build/corpus"
# -fno-sanitize-recover: any UBSan report stops the run like a crash does.
clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 -std=gnu11 \
  -D_GNU_SOURCE -Isrc -o "$build/fuzz_rules" \
  tests/fuzz/fuzz_rules.c src/rules/lexer.c src/rules/parser.c src/rules/check.c \
  src/event/event.c src/util/util.c -lm -lcrypto

cp -f tests/rules/ok/*.rules tests/rules/fail/*.rules rules/default.rules "$build/corpus/"

log="$build/fuzz.log"
status=0
# The artifact prefix must end in '/': it is prepended to crash-<sha1>.
"$build/fuzz_rules" "$build/corpus" -max_len=4096 -dict=tests/fuzz/rules.dict \
  -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/" \
  "$@" \
  >"$log" 2>&1 || status=$?

# The last progress line (execs, cov, ft, corpus) and the final stats.
grep -E '^#[0-9]+' "$log" | tail -n 1 || true
grep -E '^stat::' "$log" || true
if [ "$status" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
  echo "fuzz_rules: FOUND A PROBLEM (exit $status); report:" >&2
  grep -nE 'ERROR:|runtime error:|SUMMARY:|Test unit written to|#[0-9]+ 0x' "$log" | head -n 60 >&2 || true
  echo "full log: $log" >&2
  exit 1
fi
echo "fuzz_rules: no crash in ${seconds}s (log: $log)"
