#!/usr/bin/env bash
# run.sh: builds the libFuzzer targets with clang, ASan and UBSan and fuzzes each
# for FUZZ_SECONDS (default 600).
#   tests/fuzz/run.sh [TARGET...]     (no TARGET: all of them, one after the other)
# Targets (tests/fuzz/fuzz_TARGET.c):
#   rules   the rule-file front end (rules_load_buffer, dump round trip)
#   verify  svix signature check + secret list parser (accepted => real HMAC)
#   decode  JSON body -> event_t (ingest_decode_event)
#   codec   every msgpack record decoder of the store (allocation bounded by size)
#   wal     the write-ahead log's segment reader (open/recovery, read back, reopen, append)
# Each target starts from its committed seeds (tests/fuzz/corpus/TARGET, the rule
# files for rules) and grows a working corpus in $FUZZ_BUILD_DIR/corpus/TARGET.
# One result line per target:
#   fuzz TARGET: ok, 12345 execs (4115/s), cov 512 ft 1830, corpus 140 in 30 s
# or "fuzz TARGET: FOUND A PROBLEM" with the report and the reproducer (crash-*,
# leak-*, oom-*, timeout-*) left in $FUZZ_BUILD_DIR/TARGET-. Exits 1 when any
# target found something (or did not build), 2 on an unknown target, 77 when
# clang cannot build a libFuzzer binary here (tests/run.sh then skips the step).
# Knobs (environment): FUZZ_SECONDS (0: only run the seeds once), FUZZ_BUILD_DIR
# (default build-fuzz). Extra
# libFuzzer flags in FUZZ_FLAGS, e.g. FUZZ_FLAGS=-jobs=2, or to replay a reproducer:
#   FUZZ_FLAGS=build-fuzz/codec-crash-<sha1> tests/fuzz/run.sh codec
# To refresh the seeds after a long run (keeps only inputs that add coverage):
#   build-fuzz/fuzz_T -merge=1 NEW_DIR tests/fuzz/corpus/T build-fuzz/corpus/T
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-600}
all_targets=(rules verify decode codec wal)

# The sources each target links (besides its fuzz_TARGET.c) and its libraries.
sources_of() {
  case $1 in
  rules) echo "src/rules/lexer.c src/rules/parser.c src/rules/check.c src/event/event.c src/util/util.c -lm -lcrypto" ;;
  verify) echo "src/ingest/verify.c src/util/util.c -lcrypto" ;;
  decode) echo "src/ingest/decode.c src/event/event.c src/util/util.c -ljansson -lm -lcrypto" ;;
  codec) echo "src/store/codec.c src/event/event.c src/util/util.c -lmsgpackc -lm -lcrypto" ;;
  wal) echo "src/wal/wal.c src/wal/segment.c src/util/util.c -lcrypto -lpthread" ;;
  *) return 1 ;;
  esac
}

# libFuzzer flags of each target: inputs longer than these say nothing new.
flags_of() {
  case $1 in
  rules) echo "-max_len=4096" ;;
  verify) echo "-max_len=1024" ;;
  decode) echo "-max_len=8192" ;;
  codec) echo "-max_len=2048" ;;
  wal) echo "-max_len=2048" ;;
  esac
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  sources_of "$t" >/dev/null || { echo "run.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done

if ! command -v clang >/dev/null 2>&1; then
  echo "installing: clang" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang >/dev/null
fi

mkdir -p "$build"
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d == 0 && n; }' |
  clang -fsanitize=fuzzer,address,undefined -x c - -o "$build/probe" >"$build/probe.log" 2>&1; then
  echo "fuzz: skipped, clang cannot build a libFuzzer target (see $build/probe.log)" >&2
  exit 77
fi

# One target: build, fuzz, print the result line. Returns non-zero on a finding.
fuzz_one() {
  local t=$1 bin="$build/fuzz_$1" log="$build/$1.log" corpus="$build/corpus/$1"
  mkdir -p "$corpus"
  # -fno-sanitize-recover: any UBSan report stops the run like a crash does.
  # shellcheck disable=SC2046 # the source list is split on purpose
  if ! clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 -std=gnu11 \
    -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc -o "$bin" "tests/fuzz/fuzz_$t.c" $(sources_of "$t") \
    >"$log" 2>&1; then
    echo "fuzz $t: FOUND A PROBLEM (does not build)"
    cat "$log" >&2
    return 1
  fi
  local seeds=()
  if [ "$t" = rules ]; then
    cp -f tests/rules/ok/*.rules tests/rules/fail/*.rules rules/default.rules "$corpus/"
  else
    seeds=("tests/fuzz/corpus/$t")
  fi
  local dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  local status=0 how="-max_total_time=$seconds"
  [ "$seconds" -gt 0 ] || how="-runs=0"
  # The artifact prefix is prepended to crash-<sha1>. The leak check is at exit
  # of each input (LSan), -timeout makes a pathologically slow input a finding.
  # shellcheck disable=SC2046,SC2086
  "$bin" "$corpus" "${seeds[@]}" "${dict[@]}" $(flags_of "$t") -timeout=20 \
    "$how" -print_final_stats=1 -artifact_prefix="$build/$t-" \
    ${FUZZ_FLAGS:-} >>"$log" 2>&1 || status=$?

  # The last progress line: "#1234 ... cov: 512 ft: 1830 corp: 140/9Kb ... exec/s: 4115 ..."
  local last execs cov ft corp rate
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  local stats="${execs:-?} execs (${rate:-?}/s), cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} in ${seconds} s"
  if [ "$status" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|^fuzz_[a-z]+: ' "$log"; then
    echo "fuzz $t: FOUND A PROBLEM (exit $status), $stats"
    grep -nE '^fuzz_[a-z]+: |ERROR:|runtime error:|SUMMARY:|Test unit written to|#[0-9]+ 0x' "$log" | head -n 60 >&2 || true
    echo "full log: $log" >&2
    return 1
  fi
  echo "fuzz $t: ok, $stats"
}

found=0
for t in "${targets[@]}"; do
  fuzz_one "$t" || found=1
done
exit "$found"
