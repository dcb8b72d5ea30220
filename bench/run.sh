#!/usr/bin/env bash
# run.sh: veille's benchmark, end to end on this machine's loopback only.
#   1. throughput + latency of `veille serve` under veille-loadgen, with the default
#      rule catalog, then (1b) the same load with no rules, and the rules engine's
#      own cost per event (veille-rules-bench, including a user holding 100,000 events)
#   2. the same load against the minimal Express + svix receiver, and the ratio
#   3. peak RSS and store size after MEM_EVENTS session events over MEM_USERS users
#   4. `veille history` time for one user with HOT_EVENTS events (median of N runs)
#   1f. the default load with --map-resident off (the store's pages stay mapped)
#   1e. ingestion with a dead webhook receiver and a dead syslog collector, against
#      the same load with no sink, under a rule that raises an alert on every event
# Every load is bounded in count and time; every server started here is stopped on exit.
# Knobs (environment): BENCH_QUICK=1 (small counts, for a smoke test), BENCH_EVENTS,
# BENCH_CONNECTIONS, BENCH_MEM_EVENTS, BENCH_MEM_USERS, BENCH_HOT_EVENTS,
# BENCH_HISTORY_RUNS, BENCH_SKIP_EXPRESS=1, BENCH_BUILD_DIR, BENCH_DATA_DIR,
# BENCH_KEEP_DATA=1, BENCH_STRICT=1 (exit 1 when a target is missed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    EVENTS=${BENCH_EVENTS:-20000}
    MEM_EVENTS=${BENCH_MEM_EVENTS:-100000}
    HOT_EVENTS=${BENCH_HOT_EVENTS:-10000}
    HISTORY_RUNS=${BENCH_HISTORY_RUNS:-5}
else
    EVENTS=${BENCH_EVENTS:-200000}
    MEM_EVENTS=${BENCH_MEM_EVENTS:-1000000}
    HOT_EVENTS=${BENCH_HOT_EVENTS:-10000}
    HISTORY_RUNS=${BENCH_HISTORY_RUNS:-11}
fi
CONNS=${BENCH_CONNECTIONS:-64}
MEM_USERS=${BENCH_MEM_USERS:-50000}
LOAD_CAP_S=300          # loadgen --duration: no single load runs longer than this
STRICT=${BENCH_STRICT:-0}

# Targets (README): printed beside the figures.
T_RATE=30000 T_P99_MS=10 T_RATIO=5 T_RSS_MIB=64 T_HISTORY_MS=10 T_RULES_SHARE=80 T_SINK_SHARE=90

log() { printf '\n== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# ---- cleanup: only the processes this script started, by pid -------------------
PIDS=()
WORK=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK && ${BENCH_KEEP_DATA:-0} != 1 ]]; then
        rm -rf "$WORK"
    elif [[ -n $WORK ]]; then
        echo "run.sh: data kept in $WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stop one server: SIGTERM, up to 15 s for a clean exit, then SIGKILL.
stop_server() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: pid $pid ignored SIGTERM for 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# A port nobody listens on (bash's /dev/tcp: no python or ss needed).
free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# In a subshell: a failed exec redirection must not end the script.
healthy() (
    port=$1 line=""
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3>&-
    [[ $line == "HTTP/1."?" 200"* ]]
)

# wait_healthy PORT PID LOG: up to 20 s.
wait_healthy() {
    local port=$1 pid=$2 logf=$3 i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logf" >&2 || true
            die "server (pid $pid) exited before becoming healthy; log: $logf"
        fi
        if healthy "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2 || true
    die "server on port $port not healthy after 20 s"
}

# Field of the loadgen's RESULT line: result FILE KEY
# (0 when the run printed no RESULT line, so the arithmetic below still works.)
result() {
    local v
    v=$(sed -n 's/^RESULT //p' "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p")
    echo "${v:-0}"
}

# loadgen NAME PORT ARGS...: runs one bounded load, keeps its output in $WORK/NAME.out
LOADGEN_FAILED=0
loadgen() {
    local name=$1 port=$2
    shift 2
    local rc=0
    timeout --signal=INT --kill-after=10 $((LOAD_CAP_S + 30)) \
        "$LOADGEN" --url "http://127.0.0.1:$port/webhooks/clerk" --secret "$SECRET" \
        --connections "$CONNS" --duration "$LOAD_CAP_S" --unique-ids --expect-2xx --quiet "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    grep -v '^RESULT ' "$WORK/$name.out" || true
    if [[ -s $WORK/$name.err ]]; then
        sed 's/^/  /' "$WORK/$name.err" >&2
    fi
    if [[ $rc != 0 ]]; then
        echo "run.sh: !!! loadgen '$name' exited $rc (non-2xx answers, lost deliveries or unsent events)" >&2
        LOADGEN_FAILED=1
    fi
    return 0
}

# target LABEL OK(1/0): prints the verdict line; not in a $(...) so TARGET_MISSED sticks.
target() {
    if [[ $2 == 1 ]]; then
        printf '  target %s: ok\n' "$1"
    else
        printf '  target %s: MISSED\n' "$1"
        TARGET_MISSED=1
    fi
}
TARGET_MISSED=0
# share R N: R as a whole percentage of N ("n/a" when N is 0)
share() { awk -v r="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", 100 * r / n; else print "n/a" }'; }
fcmp() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { r = (op == "<") ? (a < b) : (a >= b); print r ? 1 : 0 }'; }

# ---- build ---------------------------------------------------------------------------
log "build ($BUILD, release)"
if [[ ! -f $BUILD/build.ninja ]]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
ninja -C "$BUILD" veille bench/veille-loadgen bench/veille-rules-bench
VEILLE=$BUILD/veille
LOADGEN=$BUILD/bench/veille-loadgen
[[ -x $VEILLE && -x $LOADGEN ]] || die "build did not produce $VEILLE and $LOADGEN"

mkdir -p "${BENCH_DATA_DIR:-$BUILD}"
# Data on the build's disk, not a tmpfs: a group commit's fsync must cost what it costs.
WORK=$(mktemp -d "${BENCH_DATA_DIR:-$BUILD}/bench-run.XXXXXX")
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export VEILLE_WEBHOOK_SECRET=$SECRET
echo "cores: $(nproc)  events: $EVENTS  connections: $CONNS  memory load: $MEM_EVENTS events / $MEM_USERS users"

# start_veille DATA_DIR LOG [RULES [SERVE ARGS...]] -> sets VPID, VPORT. Default: the shipped catalog.
start_veille() {
    VPORT=$(free_port)
    "$VEILLE" serve --listen "127.0.0.1:$VPORT" --data "$1" --rules "${3:-$ROOT/rules/default.rules}" "${@:4}" 2>"$2" &
    VPID=$!
    PIDS+=("$VPID")
    wait_healthy "$VPORT" "$VPID" "$2"
}

WARMUP=$((EVENTS / 20 > 1000 ? EVENTS / 20 : 1000))

# utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
# "LOOP COMMITTER" ticks of a veille server: the main thread runs the event loop,
# the thread named veille-commit writes to LMDB (comm is the name's second field).
thread_ticks() {
    local loop commit
    loop=$(awk '{ print $14 + $15 }' "/proc/$1/task/$1/stat")
    commit=$(for t in /proc/"$1"/task/*; do awk '$2 == "(veille-commit)" { print $14 + $15 }' "$t/stat"; done)
    echo "$loop ${commit:-0}"
}
# user + sys seconds of this shell's reaped children (bash's `times`, second line):
# the load generator's own CPU, read around a loadgen call.
# Not in a $(...): a subshell's `times` would count only its own children.
children_cpu_s() {
    times >"$WORK/times"
    CHILDREN_CPU_S=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%.3f", s }' "$WORK/times")
}
# us per event of a tick count over N events
per_event_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "n/a" }'; }
# WALL_US: the wall time of one run of a command, in us, its stdout discarded.
# EPOCHREALTIME is read by bash itself: no helper process (date) is timed with it.
wall_us() {
    local t0=${EPOCHREALTIME/./} t1
    "$@" >/dev/null
    t1=${EPOCHREALTIME/./}
    WALL_US=$((t1 - t0))
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # status_kib PID FIELD
median_ms() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'; }
metric() { # metric PORT NAME: sum of the series of NAME in /metrics
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 &&
        cat <&3) 2>/dev/null | awk -v n="$2" '$1 ~ "^"n"({|$)" { s += $2 } END { print s + 0 }'
}

# What one fsync costs on the data disk: group commit's floor per batch.
DSYNC_MS=$(dd if=/dev/zero of="$WORK/dsync.test" bs=4k count=200 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") { printf "%.3f", $(i - 1) * 1000 / 200; exit } }')
rm -f "$WORK/dsync.test"
echo "disk: one 4 KiB O_DSYNC write takes ${DSYNC_MS:-?} ms"

# sample_mem PID OUT: every 200 ms, the largest VmRSS and RssAnon seen (KiB) until
# OUT.stop appears or the process ends; VmHWM has no anonymous-only counterpart.
sample_mem() {
    local pid=$1 out=$2 max_rss=0 max_anon=0 rss anon
    while [[ ! -e $out.stop ]] && kill -0 "$pid" 2>/dev/null; do
        read -r rss anon < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } END { print r + 0, a + 0 }' \
            "/proc/$pid/status" 2>/dev/null || echo "0 0")
        ((rss > max_rss)) && max_rss=$rss
        ((anon > max_anon)) && max_anon=$anon
        sleep 0.2
    done
    echo "$max_rss $max_anon" >"$out"
}

# ---- 1. veille throughput ---------------------------------------------------------
log "1. veille serve: $EVENTS session.created events, $CONNS connections"
mkdir -p "$WORK/tp-data"
start_veille "$WORK/tp-data" "$WORK/veille-tp.log"
loadgen veille-warmup "$VPORT" --events "$WARMUP" --run-id warmv >/dev/null
CPU0=$(cpu_ticks "$VPID")
read -r LOOP0 COMMIT0 < <(thread_ticks "$VPID")
children_cpu_s
LG0=$CHILDREN_CPU_S
C_SUM0=$(metric "$VPORT" veille_commit_seconds_sum) C_N0=$(metric "$VPORT" veille_commit_seconds_count)
loadgen veille-tp "$VPORT" --events "$EVENTS" --run-id tpv
CPU1=$(cpu_ticks "$VPID")
read -r LOOP1 COMMIT1 < <(thread_ticks "$VPID")
children_cpu_s
LG1=$CHILDREN_CPU_S
C_SUM1=$(metric "$VPORT" veille_commit_seconds_sum) C_N1=$(metric "$VPORT" veille_commit_seconds_count)
stop_server "$VPID"
V_RATE=$(result "$WORK/veille-tp.out" events_per_s)
V_P50=$(result "$WORK/veille-tp.out" p50_ms)
V_P99=$(result "$WORK/veille-tp.out" p99_ms)
V_MAX=$(result "$WORK/veille-tp.out" max_ms)
V_OK=$(result "$WORK/veille-tp.out" ok_2xx)
V_BAD=$(($(result "$WORK/veille-tp.out" non_2xx) + $(result "$WORK/veille-tp.out" errors)))

# ---- 1b. the same load without rules, and the engine alone --------------------------------
log "1b. veille serve with no rules: same load"
mkdir -p "$WORK/tp0-data"
: >"$WORK/empty.rules"
start_veille "$WORK/tp0-data" "$WORK/veille-tp0.log" "$WORK/empty.rules"
loadgen veille-warmup0 "$VPORT" --events "$WARMUP" --run-id warm0 >/dev/null
loadgen veille-tp0 "$VPORT" --events "$EVENTS" --run-id tp0
stop_server "$VPID"
N_RATE=$(result "$WORK/veille-tp0.out" events_per_s)
N_P99=$(result "$WORK/veille-tp0.out" p99_ms)
RULES_SHARE=$(share "$V_RATE" "$N_RATE")
log "1f. the default load with --map-resident off: the store's pages stay mapped"
mkdir -p "$WORK/tpr-data"
start_veille "$WORK/tpr-data" "$WORK/veille-tpr.log" "$ROOT/rules/default.rules" --map-resident off
loadgen veille-warmupr "$VPORT" --events "$WARMUP" --run-id warmr >/dev/null
loadgen veille-tpr "$VPORT" --events "$EVENTS" --run-id tpr
R_HWM_KIB=$(status_kib "$VPID" VmHWM)
stop_server "$VPID"
R_RATE=$(result "$WORK/veille-tpr.out" events_per_s)
R_P99=$(result "$WORK/veille-tpr.out" p99_ms)
log "1d. one IP per user (no shared NAT addresses): with and without rules"
mkdir -p "$WORK/tpi-data" "$WORK/tpi0-data"
start_veille "$WORK/tpi-data" "$WORK/veille-tpi.log"
loadgen veille-tpi "$VPORT" --events "$EVENTS" --ips 0 --run-id tpi
stop_server "$VPID"
start_veille "$WORK/tpi0-data" "$WORK/veille-tpi0.log" "$WORK/empty.rules"
loadgen veille-tpi0 "$VPORT" --events "$EVENTS" --ips 0 --run-id tpi0
stop_server "$VPID"
I_RATE=$(result "$WORK/veille-tpi.out" events_per_s)
I_P99=$(result "$WORK/veille-tpi.out" p99_ms)
I0_RATE=$(result "$WORK/veille-tpi0.out" events_per_s)
I_SHARE=$(share "$I_RATE" "$I0_RATE")
log "1e. alert sinks: a dead webhook receiver and a dead TCP syslog collector, vs no sink"
# Worst case for the outbox: every event raises an alert (no suppression), and both
# receivers refuse connections, so every alert is queued, tried and rescheduled.
SINK_EVENTS=$((EVENTS / 2))
printf 'rule every_sign_in {\n  severity info\n  on session.created\n  when count(session.created, 1m) >= 1\n}\n' \
    >"$WORK/flood.rules"
VEILLE_ALERT_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export VEILLE_ALERT_WEBHOOK_SECRET
DEAD_HTTP=$(free_port)
DEAD_TCP=$(free_port)
SINK_RATES=() NOSINK_RATES=()
for round in 1 2; do
    mkdir -p "$WORK/ns$round-data" "$WORK/ds$round-data"
    start_veille "$WORK/ns$round-data" "$WORK/veille-ns$round.log" "$WORK/flood.rules"
    loadgen veille-ns$round "$VPORT" --events "$SINK_EVENTS" --run-id ns$round
    stop_server "$VPID"
    NOSINK_RATES+=("$(result "$WORK/veille-ns$round.out" events_per_s)")
    start_veille "$WORK/ds$round-data" "$WORK/veille-ds$round.log" "$WORK/flood.rules" \
        --alert "webhook:http://127.0.0.1:$DEAD_HTTP/hook" --alert "syslog+tcp://127.0.0.1:$DEAD_TCP"
    loadgen veille-ds$round "$VPORT" --events "$SINK_EVENTS" --run-id ds$round
    DS_ALERTS=$(metric "$VPORT" veille_alerts_total)
    DS_QUEUED=$(metric "$VPORT" veille_sink_queue_depth)
    DS_RETRIED=$(metric "$VPORT" veille_sink_retried_total)
    DS_FULL=$(metric "$VPORT" veille_sink_outbox_full_total)
    stop_server "$VPID"
    SINK_RATES+=("$(result "$WORK/veille-ds$round.out" events_per_s)")
    echo "  round $round: no sink ${NOSINK_RATES[-1]} events/s; dead sinks ${SINK_RATES[-1]} events/s" \
        "(p99 $(result "$WORK/veille-ds$round.out" p99_ms) ms; $DS_ALERTS alerts, $DS_QUEUED queued," \
        "$DS_RETRIED failed attempts, $DS_FULL not queued: outbox full)"
done
unset VEILLE_ALERT_WEBHOOK_SECRET
NS_RATE=$(printf '%s\n' "${NOSINK_RATES[@]}" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
DS_RATE=$(printf '%s\n' "${SINK_RATES[@]}" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
SINK_SHARE=$(share "$DS_RATE" "$NS_RATE")

log "1c. rules engine alone: veille-rules-bench"
if ((QUICK)); then RB_HOT=20000; else RB_HOT=100000; fi
(cd "$ROOT" && "$BUILD/bench/veille-rules-bench" --hot "$RB_HOT" --dir "$WORK/rules-bench") | tee "$WORK/rules-bench.out"

# ---- 2. express baseline ------------------------------------------------------------
E_RATE="" RATIO=""
if [[ ${BENCH_SKIP_EXPRESS:-0} != 1 ]] && command -v node >/dev/null && command -v npm >/dev/null; then
    log "2. express + svix baseline: same load"
    EXP=$ROOT/bench/express-receiver
    if [[ ! -d $EXP/node_modules/express || ! -d $EXP/node_modules/svix ]]; then
        (cd "$EXP" && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
    fi
    EPORT=$(free_port)
    (cd "$EXP" && PORT=$EPORT CLERK_WEBHOOK_SECRET=$SECRET exec node server.js) 2>"$WORK/express.log" &
    EPID=$!
    PIDS+=("$EPID")
    wait_healthy "$EPORT" "$EPID" "$WORK/express.log"
    loadgen express-warmup "$EPORT" --events "$WARMUP" --run-id warme >/dev/null
    loadgen express-tp "$EPORT" --events "$EVENTS" --run-id tpe
    stop_server "$EPID"
    E_RATE=$(result "$WORK/express-tp.out" events_per_s)
    E_P50=$(result "$WORK/express-tp.out" p50_ms)
    E_P99=$(result "$WORK/express-tp.out" p99_ms)
    E_MAX=$(result "$WORK/express-tp.out" max_ms)
    RATIO=$(awk -v v="$V_RATE" -v e="$E_RATE" 'BEGIN { if (e > 0) printf "%.1f", v / e; else print "n/a" }')
else
    log "2. express baseline skipped (BENCH_SKIP_EXPRESS=1 or no node/npm)"
fi

# ---- 3. memory after MEM_EVENTS events over MEM_USERS users ---------------------------
log "3. memory: $MEM_EVENTS session events over $MEM_USERS users"
mkdir -p "$WORK/mem-data"
start_veille "$WORK/mem-data" "$WORK/veille-mem.log"
sample_mem "$VPID" "$WORK/mem.sample" &
SPID=$!
PIDS+=("$SPID")
# The largest load: up to 600 s (the loadgen's own maximum) so all of it is sent.
LOAD_CAP_S=600 loadgen mem-load "$VPORT" --events "$MEM_EVENTS" --users "$MEM_USERS" --type mixed --run-id memv
touch "$WORK/mem.sample.stop"
wait "$SPID" || true
read -r _ PEAK_ANON_KIB <"$WORK/mem.sample" || PEAK_ANON_KIB=0
HWM_KIB=$(status_kib "$VPID" VmHWM)
RSS_KIB=$(status_kib "$VPID" VmRSS)
ANON_KIB=$(status_kib "$VPID" RssAnon)
FILE_KIB=$(status_kib "$VPID" RssFile)

# ---- 4. one hot user, then `veille history` -------------------------------------------
log "4. history: $HOT_EVENTS events for user_hot, then veille history --limit $HOT_EVENTS"
loadgen hot-load "$VPORT" --events "$HOT_EVENTS" --user-id user_hot --run-id hotv
stop_server "$VPID"
STORE_KIB=$(du -sk "$WORK/mem-data" | awk '{ print $1 }')
STORE_APPARENT=$(du -sb --apparent-size "$WORK/mem-data" | awk '{ print $1 }')
echo "veille stats:"
"$VEILLE" stats --data "$WORK/mem-data" | sed 's/^/  /' || echo "  (veille stats failed)"

HIST_LINES=$("$VEILLE" history user_hot --data "$WORK/mem-data" --limit "$HOT_EVENTS" | wc -l)
echo "veille history user_hot printed $HIST_LINES lines"
# Four commands, timed in turn so a slow moment of this shared VM hits them alike:
#   all     history --limit HOT_EVENTS: every event of user_hot
#   recent  history with its default limit (the latest 100), what a user types first
#   help    veille --help: exec + loading veille's libraries, no store
#   true    /bin/true: what any exec from this shell costs on this machine
TIMES=() RECENT_TIMES=() START_TIMES=() TRUE_TIMES=()
for ((i = 0; i < HISTORY_RUNS; i++)); do
    wall_us "$VEILLE" history user_hot --data "$WORK/mem-data" --limit "$HOT_EVENTS"
    TIMES+=("$WALL_US")
    wall_us "$VEILLE" history user_hot --data "$WORK/mem-data"
    RECENT_TIMES+=("$WALL_US")
    wall_us "$VEILLE" --help
    START_TIMES+=("$WALL_US")
    wall_us /bin/true
    TRUE_TIMES+=("$WALL_US")
done
START_MED_MS=$(median_ms "${START_TIMES[@]}")
TRUE_MED_MS=$(median_ms "${TRUE_TIMES[@]}")
RECENT_MED_MS=$(median_ms "${RECENT_TIMES[@]}")
HIST_SORTED=$(printf '%s\n' "${TIMES[@]}" | sort -n)
HIST_MED_MS=$(median_ms "${TIMES[@]}")
HIST_MIN_MS=$(echo "$HIST_SORTED" | awk 'NR == 1 { printf "%.2f", $1 / 1000 }')
HIST_MAX_MS=$(echo "$HIST_SORTED" | awk 'END { printf "%.2f", $1 / 1000 }')

# ---- summary ----------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
log "summary ($(nproc) cores; loadgen and server share them)"
printf 'veille throughput   %s events/s  p50 %s ms  p99 %s ms  max %s ms  (%s events, %s connections, %s 2xx, %s failed)\n' \
    "$V_RATE" "$V_P50" "$V_P99" "$V_MAX" "$EVENTS" "$CONNS" "$V_OK" "$V_BAD"
printf '  server CPU %s us per event (user + sys): event loop %s, committer %s; the load generator %s\n' \
    "$(per_event_us $((CPU1 - CPU0)) "$V_OK")" "$(per_event_us $((LOOP1 - LOOP0)) "$V_OK")" \
    "$(per_event_us $((COMMIT1 - COMMIT0)) "$V_OK")" \
    "$(awk -v a="$LG0" -v b="$LG1" -v n="$V_OK" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1e6 / n; else print "n/a" }')"
# What one group commit is made of: its batch, its time, the CPU the committer spent
# in it; the rest of the commit is waiting for the disk (fdatasync + the meta write).
awk -v n="$V_OK" -v c=$((C_N1 - C_N0)) -v s="$(awk -v a="$C_SUM0" -v b="$C_SUM1" 'BEGIN { print b - a }')" \
    -v t=$((COMMIT1 - COMMIT0)) -v hz="$CLK_TCK" -v d="${DSYNC_MS:-0}" 'BEGIN {
    if (c <= 0) exit
    printf "  group commit: %.1f events per commit, %.2f ms each, of which %.2f ms committer CPU and %.2f ms off CPU (disk syncs, or waiting for a core)\n",
        n / c, s * 1000 / c, t / hz * 1000 / c, (s - t / hz) * 1000 / c
    printf "  (one 4 KiB O_DSYNC write on this disk: %s ms; a commit needs two syncs)\n", d }'
target ">= $T_RATE events/s with p99 < $T_P99_MS ms" "$(($(fcmp "$V_RATE" '>=' "$T_RATE") & $(fcmp "$V_P99" '<' "$T_P99_MS")))"
printf 'no rules            %s events/s  p99 %s ms; with the default catalog veille keeps %s%% of that\n' \
    "$N_RATE" "$N_P99" "$RULES_SHARE"
target "with rules >= $T_RULES_SHARE% of the speed without" "$(fcmp "$RULES_SHARE" '>=' "$T_RULES_SHARE")"
printf 'map pages kept      %s events/s (p99 %s ms) with --map-resident off, against %s with the default 24M; peak RSS then %s MiB\n' \
    "$R_RATE" "$R_P99" "$V_RATE" "$(mib "${R_HWM_KIB:-0}")"
printf 'one IP per user     %s events/s (p99 %s ms) with rules, %s without: %s%%\n' "$I_RATE" "$I_P99" "$I0_RATE" "$I_SHARE"
grep -E '^(ordinary|hot|hot,new) ' "$WORK/rules-bench.out" | sed 's/^/  engine alone: /'
printf 'dead alert sinks    %s events/s with a dead webhook + dead TCP syslog, %s with no sink: %s%% (alert on every event, mean of 2 rounds)\n' \
    "$DS_RATE" "$NS_RATE" "$SINK_SHARE"
target "dead sinks >= $T_SINK_SHARE% of the speed with no sink" "$(fcmp "$SINK_SHARE" '>=' "$T_SINK_SHARE")"
if [[ -n $E_RATE ]]; then
    printf 'express + svix      %s events/s  p50 %s ms  p99 %s ms  max %s ms  (no storage at all)\n' \
        "$E_RATE" "$E_P50" "$E_P99" "$E_MAX"
    printf '  veille / express = %sx\n' "$RATIO"
    target ">= ${T_RATIO}x express" "$(fcmp "$RATIO" '>=' "$T_RATIO")"
fi
printf 'peak RSS            %s MiB (VmHWM) after %s events / %s users; now %s MiB = anon %s + file-backed %s\n' \
    "$(mib "$HWM_KIB")" "$MEM_EVENTS" "$MEM_USERS" "$(mib "$RSS_KIB")" "$(mib "$ANON_KIB")" "$(mib "$FILE_KIB")"
printf '  peak anonymous RSS %s MiB (sampled every 200 ms); file-backed pages are the LMDB map, reclaimable by the kernel\n' \
    "$(mib "$PEAK_ANON_KIB")"
target "peak RSS < $T_RSS_MIB MiB" "$(fcmp "$(mib "$HWM_KIB")" '<' "$T_RSS_MIB")"
printf 'store size          %s MiB on disk (%s MiB apparent) for %s events\n' \
    "$(mib "$STORE_KIB")" "$(awk -v b="$STORE_APPARENT" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    "$((MEM_EVENTS + HOT_EVENTS))"
printf 'history             median %s ms (min %s, max %s; %s runs) for %s events of user_hot, process start included\n' \
    "$HIST_MED_MS" "$HIST_MIN_MS" "$HIST_MAX_MS" "$HISTORY_RUNS" "$HOT_EVENTS"
printf '  latest 100 of them (the default --limit): median %s ms\n' "$RECENT_MED_MS"
printf '  process start alone: veille --help %s ms, /bin/true %s ms (medians)\n' "$START_MED_MS" "$TRUE_MED_MS"
target "history of all $HOT_EVENTS events < $T_HISTORY_MS ms" "$(fcmp "$HIST_MED_MS" '<' "$T_HISTORY_MS")"
target "history, default limit < $T_HISTORY_MS ms" "$(fcmp "$RECENT_MED_MS" '<' "$T_HISTORY_MS")"
printf 'BENCH veille_events_per_s=%s veille_p50_ms=%s veille_p99_ms=%s veille_max_ms=%s express_events_per_s=%s ratio=%s peak_rss_mib=%s peak_anon_mib=%s store_mib=%s history_median_ms=%s\n' \
    "$V_RATE" "$V_P50" "$V_P99" "$V_MAX" "${E_RATE:-n/a}" "${RATIO:-n/a}" "$(mib "$HWM_KIB")" "$(mib "$PEAK_ANON_KIB")" \
    "$(mib "$STORE_KIB")" "$HIST_MED_MS"
printf 'BENCH history_recent_median_ms=%s veille_help_median_ms=%s true_median_ms=%s\n' "$RECENT_MED_MS" "$START_MED_MS" "$TRUE_MED_MS"
printf 'BENCH norules_events_per_s=%s rules_share_pct=%s ip_per_user_events_per_s=%s ip_per_user_norules=%s ip_per_user_share_pct=%s\n' \
    "$N_RATE" "$RULES_SHARE" "$I_RATE" "$I0_RATE" "$I_SHARE"
printf 'BENCH nosink_events_per_s=%s dead_sinks_events_per_s=%s dead_sinks_share_pct=%s\n' "$NS_RATE" "$DS_RATE" "$SINK_SHARE"
printf 'BENCH map_resident_off_events_per_s=%s map_resident_off_p99_ms=%s\n' "$R_RATE" "$R_P99"

if [[ $LOADGEN_FAILED == 1 ]]; then
    echo "run.sh: !!! some deliveries were not answered 2xx: see the loadgen lines above" >&2
    exit 1
fi
if [[ $STRICT == 1 && $TARGET_MISSED == 1 ]]; then
    exit 1
fi
exit 0
