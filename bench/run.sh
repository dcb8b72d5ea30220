#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup is a trap; the start_KIND servers are called as "start_$kind"
# run.sh: veille's benchmark, side by side in one run, on this machine's loopback only.
# Every scenario is the same shape (scenario(): start a server, warm it up, offer it a
# pre-signed load from veille-loadgen, collect its figures from the outside, stop it)
# and writes its results under the results dir; one summary table ends the run:
#   veille serve (default catalog): shared-IP load and one IP per user, 16/64/256
#     connections, and the shared-IP load with no rules at 64
#   express + svix in memory (bench/express-receiver), 16/64/256
#   express + svix + PostgreSQL, the course's receiver (bench/pg-receiver) on a
#     throwaway cluster with default durable settings, 16/64/256
#   bare libh2o answering 200 (veille-h2o-ceiling): the stack's ceiling, 16/64/256
#   a burst: BURST deliveries at 256 connections, all 2xx within Svix's 15 s, no 503
#   memory: MEM_EVENTS events over MEM_USERS users, then `veille history` of a hot user
# Figures come from outside the servers: the loadgen's answers, /metrics (veille),
# /proc/PID/{status,io,task/*/stat}. Every load is bounded in count and time; every
# server started here is stopped on exit, by pid.
# Knobs (environment): BENCH_QUICK=1 (a minute or two, to check the script),
# BENCH_EVENTS, BENCH_BURST, BENCH_MEM_EVENTS, BENCH_MEM_USERS, BENCH_HOT_EVENTS,
# BENCH_HISTORY_RUNS, BENCH_CONNS ("16 64 256"), BENCH_BUILD_DIR, BENCH_RESULTS_DIR,
# BENCH_KEEP_DATA=1 (keep the stores and the cluster), BENCH_SKIP_NODE=1 (no express
# and no PostgreSQL peers), BENCH_BACKLOG_METRIC (regex of veille's unapplied-records
# metric, waited to 0 after each load), BENCH_STRICT=1 (exit 1 when a target is missed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    EVENTS=${BENCH_EVENTS:-3000}
    BURST=${BENCH_BURST:-5000}
    MEM_EVENTS=${BENCH_MEM_EVENTS:-50000}
    HOT_EVENTS=${BENCH_HOT_EVENTS:-2000}
    HISTORY_RUNS=${BENCH_HISTORY_RUNS:-3}
else
    EVENTS=${BENCH_EVENTS:-50000}
    BURST=${BENCH_BURST:-20000}
    MEM_EVENTS=${BENCH_MEM_EVENTS:-1000000}
    HOT_EVENTS=${BENCH_HOT_EVENTS:-10000}
    HISTORY_RUNS=${BENCH_HISTORY_RUNS:-11}
fi
read -r -a CONNS <<<"${BENCH_CONNS:-16 64 256}"
MEM_USERS=${BENCH_MEM_USERS:-50000}
WARMUP=$((EVENTS / 20 > 500 ? EVENTS / 20 : 500))
LOAD_CAP_S=120 # loadgen --duration of a pre-signed load (it allows 240: Svix's 300 s tolerance)
SVIX_TIMEOUT_S=15
BACKLOG_RE=${BENCH_BACKLOG_METRIC:-'^veille_[a-z_]*backlog_records$'}
STRICT=${BENCH_STRICT:-0}
# Targets of issue 11 (this 2-core box, shared-IP load, 64 connections).
T_EXPRESS_X=4 T_PG_X=10 T_P99_MS=5 T_PRIVATE_MIB=64

log() { printf '\n== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# ---- cleanup: only the processes this script started, by pid -----------------------
PIDS=()
DATA=""    # stores and the cluster: removed at exit unless BENCH_KEEP_DATA=1
PG_CLUSTER=""  # its data directory, set once the cluster is started
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $PG_CLUSTER && -f $PG_CLUSTER/postmaster.pid ]]; then
        as_pg pg_ctl -D "$PG_CLUSTER" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n $DATA && ${BENCH_KEEP_DATA:-0} != 1 ]]; then
        rm -rf "$DATA"
    elif [[ -n $DATA ]]; then
        echo "run.sh: data kept in $DATA"
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

# A port nobody listens on (bash's /dev/tcp: no python or ss needed), below the
# ephemeral range: a port the kernel gave to some client socket cannot be bound.
free_port() {
    local p i lo
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    for ((i = 0; i < 100; i++)); do
        p=$((10000 + RANDOM % (lo - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# http_get PORT PATH: the whole answer, headers included (in a subshell: a failed
# exec redirection must not end the script).
http_get() (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    timeout 5 cat <&3
)

# wait_up PORT PID LOG: up to 20 s for any HTTP answer on /healthz.
wait_up() {
    local port=$1 pid=$2 logf=$3 i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logf" >&2 || true
            die "server (pid $pid) exited before answering; log: $logf"
        fi
        if http_get "$port" /healthz 2>/dev/null | head -n 1 | grep -q '^HTTP/1\.. 200'; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2 || true
    die "server on port $port not answering /healthz after 20 s"
}

# metric_sum PORT REGEX: the sum of the /metrics series whose name matches REGEX,
# "none" when no series does (a server that does not export it).
metric_sum() {
    http_get "$1" /metrics 2>/dev/null | awk -v re="$2" '
        /^#/ { next }
        { name = $1; sub(/\{.*/, "", name); if (name ~ re) { s += $NF; found = 1 } }
        END { if (found) printf "%.0f\n", s; else print "none" }'
}

# ---- what the kernel says about a set of processes ----------------------------------
CLK_TCK=$(getconf CLK_TCK)
# cpu_snapshot PID...: "TID NAME TICKS" per thread (utime + stime). The name is the
# thread's comm with spaces as '_' (node's "V8 DefaultWorke"); fields are counted
# after the last ')' since a comm may hold anything.
cpu_snapshot() {
    local p t s comm rest
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            s=$(cat "$t/stat" 2>/dev/null) || continue
            comm=${s#*\(}
            comm=${comm%)*}
            rest=${s##*) }
            # shellcheck disable=SC2086  # split on purpose: the stat fields
            set -- $rest
            echo "${t##*/} ${comm// /_} $((${12} + ${13}))"
        done
    done
}
# cpu_per_event BEFORE AFTER N: "name us, ..." per thread name, costliest first, over N
# events; threads born in between count whole, threads that died in between are lost.
cpu_per_event() {
    awk -v hz="$CLK_TCK" -v n="$3" '
        NR == FNR { before[$1] = $3; next }
        { d = $3 - (($1 in before) ? before[$1] : 0); by[$2] += d; total += d }
        END {
            if (n <= 0) { print "n/a"; exit }
            out = sprintf("%.0f", total / hz * 1e6 / n)
            # costliest first, names with no tick left out
            for (k = 0; k < 64; k++) {
                best = ""; for (m in by) if (by[m] > 0 && (best == "" || by[m] > by[best])) best = m
                if (best == "") break
                out = out sprintf(" %s:%.0f", best, by[best] / hz * 1e6 / n); delete by[best]
            }
            print out
        }' "$1" "$2"
}
# write_bytes PID...: bytes the processes caused to be written to storage (/proc/PID/io).
write_bytes() {
    local p sum=0 b
    for p in "$@"; do
        b=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$p/io" 2>/dev/null) || b=0
        sum=$((sum + ${b:-0}))
    done
    echo "$sum"
}
# private_kib PID...: RssAnon summed, plus the largest RssShmem (PostgreSQL's backends
# all map the one shared buffer pool: summing it would count it once per backend).
private_kib() {
    local p
    for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done |
        awk '$1 == "RssAnon:" { a += $2 } $1 == "RssShmem:" && $2 > s { s = $2 } END { print a + s }'
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # status_kib PID FIELD
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- build ---------------------------------------------------------------------------
log "build ($BUILD, release)"
if [[ ! -f $BUILD/build.ninja ]]; then
    meson setup "$BUILD" "$ROOT" --buildtype=release >/dev/null
fi
nice ninja -C "$BUILD" veille bench/veille-loadgen bench/veille-h2o-ceiling
VEILLE=$BUILD/veille
LOADGEN=$BUILD/bench/veille-loadgen
CEILING=$BUILD/bench/veille-h2o-ceiling
[[ -x $VEILLE && -x $LOADGEN && -x $CEILING ]] || die "build did not produce $VEILLE, $LOADGEN and $CEILING"

RESULTS=${BENCH_RESULTS_DIR:-$BUILD/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
# Data on the build's disk, not a tmpfs: an fsync must cost what it costs.
DATA=$RESULTS/data
mkdir -p "$DATA"
chmod 755 "$RESULTS" "$DATA" # PostgreSQL's own user must reach its cluster under it
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
export VEILLE_WEBHOOK_SECRET=$SECRET
echo "results: $RESULTS"
echo "cores: $(nproc)  events per load: $EVENTS (after $WARMUP warm-up)  connections: ${CONNS[*]}  burst: $BURST" \
    " memory load: $MEM_EVENTS events / $MEM_USERS users"
DSYNC_MS=$(dd if=/dev/zero of="$DATA/dsync.test" bs=4k count=200 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") { printf "%.3f", $(i - 1) * 1000 / 200; exit } }')
rm -f "$DATA/dsync.test"
echo "disk: one 4 KiB O_DSYNC write takes ${DSYNC_MS:-?} ms"

# ---- the peers' installs: npm packages into their bench/ folders, PostgreSQL ---------
HAVE_NODE=0 HAVE_PG=0
if [[ ${BENCH_SKIP_NODE:-0} != 1 ]] && command -v node >/dev/null && command -v npm >/dev/null; then
    HAVE_NODE=1
    for d in express-receiver pg-receiver; do
        if [[ ! -d $ROOT/bench/$d/node_modules/express || ! -d $ROOT/bench/$d/node_modules/svix ||
            ($d == pg-receiver && ! -d $ROOT/bench/$d/node_modules/pg) ]]; then
            echo "installing bench/$d's npm packages"
            (cd "$ROOT/bench/$d" && npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null)
        fi
    done
    pg_bin() { printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
    PG_BIN=$(pg_bin)
    if [[ -z $PG_BIN || ! -x $PG_BIN/initdb ]]; then
        echo "installing postgresql (Debian)"
        sudo_cmd=""
        [[ $(id -u) == 0 ]] || sudo_cmd=sudo
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
        PG_BIN=$(pg_bin)
    fi
    [[ -n $PG_BIN && -x $PG_BIN/initdb ]] && HAVE_PG=1
fi

# PostgreSQL refuses to run as root: then its tools run as the postgres user.
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$PG_BIN/$1" "${@:2}"
    else
        "$PG_BIN/$1" "${@:2}"
    fi
}
# A throwaway cluster under the results dir, on a unix socket only, with the default
# durable settings (fsync, synchronous_commit on, full_page_writes): nothing tuned.
start_cluster() {
    local root=$DATA/pg
    mkdir -p "$root"
    [[ $(id -u) == 0 ]] && chown postgres: "$root"
    as_pg initdb -D "$root/data" -U bench -A trust --no-sync >"$RESULTS/pg-initdb.log" 2>&1 ||
        die "initdb failed: see $RESULTS/pg-initdb.log"
    PG_CLUSTER=$root/data
    as_pg pg_ctl -D "$PG_CLUSTER" -l "$root/postgres.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$root'" start >/dev/null ||
        die "the PostgreSQL cluster did not start: see $root/postgres.log"
    export PGHOST=$root PGUSER=bench
    psql -qAt -d postgres -c 'SHOW synchronous_commit' | sed 's/^/  PostgreSQL synchronous_commit: /'
}

# ---- the servers: start_KIND NAME LOG sets SPID, SPORT and SERVER_PIDS -----------------
# veille: the shipped catalog unless VEILLE_RULES says otherwise; extra flags in VEILLE_ARGS.
start_veille() {
    mkdir -p "$DATA/$1"
    SPORT=$(free_port)
    # shellcheck disable=SC2086  # VEILLE_ARGS: words on purpose
    "$VEILLE" serve --listen "127.0.0.1:$SPORT" --data "$DATA/$1" --rules "${VEILLE_RULES:-$ROOT/rules/default.rules}" \
        ${VEILLE_ARGS:-} 2>"$2" &
    SPID=$!
}
start_express() {
    SPORT=$(free_port)
    (cd "$ROOT/bench/express-receiver" && PORT=$SPORT CLERK_WEBHOOK_SECRET=$SECRET exec node server.js) 2>"$2" &
    SPID=$!
}
# one database per scenario: every load starts from empty tables, as veille's does
start_pg() {
    local db=${1//-/_}
    psql -qAt -d postgres -c "CREATE DATABASE $db" >/dev/null
    SPORT=$(free_port)
    (cd "$ROOT/bench/pg-receiver" && PORT=$SPORT CLERK_WEBHOOK_SECRET=$SECRET PGDATABASE=$db exec node server.js) 2>"$2" &
    SPID=$!
}
start_h2o() {
    SPORT=$(free_port)
    "$CEILING" "$SPORT" 2>"$2" &
    SPID=$!
}
# The processes whose CPU, writes and memory are the server's: for the PostgreSQL
# receiver, node and every process of the cluster.
server_pids() {
    echo "$SPID"
    if [[ $1 == pg && -f $PG_CLUSTER/postmaster.pid ]]; then
        local pm
        pm=$(head -n 1 "$PG_CLUSTER/postmaster.pid")
        echo "$pm"
        pgrep -P "$pm" || true
    fi
}

# wait_applied PORT: after a load, until veille's unapplied backlog is 0 (write-ahead
# log acknowledgements); at most 120 s. Sets DRAIN_S; BACKLOG_SEEN=0 when veille
# exports no such metric (it acknowledges after applying: nothing to wait for).
wait_applied() {
    local t0=${EPOCHREALTIME/./} b i
    BACKLOG_SEEN=1
    for ((i = 0; i < 1200; i++)); do
        b=$(metric_sum "$1" "$BACKLOG_RE")
        [[ $b == none ]] && BACKLOG_SEEN=0
        [[ $b == none || $b == 0 ]] && break
        sleep 0.1
    done
    DRAIN_S=$(awk -v a="$t0" -v b="${EPOCHREALTIME/./}" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
    [[ $BACKLOG_SEEN == 0 ]] && DRAIN_S=0
    return 0
}

# user + sys seconds of this shell's reaped children (bash's `times`, second line):
# the load generator's own CPU, read around a loadgen call. Not in a $(...): a
# subshell's `times` would count only its own children.
children_cpu_s() {
    times >"$RESULTS/.times"
    CHILDREN_CPU_S=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%.3f", s }' "$RESULTS/.times")
}

# loadgen OUT PORT CONNS EVENTS ARGS...: one bounded load, its output in OUT.load/.err.
loadgen() {
    local out=$1 port=$2 conns=$3 events=$4
    shift 4
    local rc=0
    timeout --signal=INT --kill-after=10 $((LOAD_CAP_S + 60)) \
        "$LOADGEN" --url "http://127.0.0.1:$port/webhooks/clerk" --secret "$SECRET" --connections "$conns" \
        --events "$events" --duration "$LOAD_CAP_S" --timeout "$SVIX_TIMEOUT_S" --expect-2xx --quiet "$@" \
        >"$out.load" 2>"$out.err" || rc=$?
    LOADGEN_RC=$rc
}
result() { # result FILE KEY: a field of the loadgen's RESULT line (0 when absent)
    local v
    v=$(sed -n 's/^RESULT //p' "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p")
    echo "${v:-0}"
}

# scenario NAME KIND CONNS EVENTS [LOADGEN ARGS...]: start a KIND server, warm it up,
# offer it EVENTS pre-signed deliveries over CONNS connections, wait until veille has
# applied them, collect, stop. Writes RESULTS/NAME.{log,load,err,result}; a .result is
# key=value lines, read by the summary. KEEP_RUNNING=1 leaves the server up (SPID, SPORT);
# NO_WARMUP=1 offers the load to a cold server; PRESIGN=0 signs while sending.
FAILED=() SCENARIOS=()
scenario() {
    local name=$1 kind=$2 conns=$3 events=$4
    shift 4
    SCENARIOS+=("$name")
    local out=$RESULTS/$name
    printf '  %-22s %-8s %4s conns  %7s events ... ' "$name" "$kind" "$conns" "$events"
    "start_$kind" "$name" "$out.log"
    PIDS+=("$SPID")
    wait_up "$SPORT" "$SPID" "$out.log"
    if [[ ${NO_WARMUP:-0} != 1 ]]; then
        loadgen "$out.warmup" "$SPORT" "$conns" "$WARMUP" --presign --run-id warm "$@"
        if [[ $kind == veille ]]; then wait_applied "$SPORT"; fi
    fi
    local -a pids
    local wb0 wb1 lg0 lg1 t0 t1 load1
    read -r load1 _ </proc/loadavg # other work on this shared machine, for reading the figures
    mapfile -t pids < <(server_pids "$kind")
    cpu_snapshot "${pids[@]}" >"$out.cpu0"
    wb0=$(write_bytes "${pids[@]}")
    children_cpu_s
    lg0=$CHILDREN_CPU_S
    t0=${EPOCHREALTIME/./}
    local -a sign=(--presign) # PRESIGN=0: signed on the fly
    [[ ${PRESIGN:-1} == 1 ]] || sign=()
    loadgen "$out" "$SPORT" "$conns" "$events" "${sign[@]}" --run-id load "$@"
    DRAIN_S=0 BACKLOG_SEEN=0
    if [[ $kind == veille ]]; then wait_applied "$SPORT"; fi
    t1=${EPOCHREALTIME/./}
    children_cpu_s
    lg1=$CHILDREN_CPU_S
    mapfile -t pids < <(server_pids "$kind")
    cpu_snapshot "${pids[@]}" >"$out.cpu1"
    wb1=$(write_bytes "${pids[@]}")
    local ok
    ok=$(result "$out.load" ok_2xx)
    {
        echo "name=$name"
        echo "kind=$kind"
        echo "conns=$conns"
        echo "events=$events"
        echo "ok=$ok"
        for k in events_per_s p50_ms p99_ms max_ms non_2xx errors timeouts unsent status_503 stored accepted duplicate ignored other; do
            echo "$k=$(result "$out.load" "$k")"
        done
        echo "loadgen_rc=$LOADGEN_RC"
        echo "drain_s=$DRAIN_S"
        echo "backlog_metric=$BACKLOG_SEEN"
        # sustained: acknowledged and applied, over the load plus the wait for the apply
        awk -v n="$ok" -v r="$(result "$out.load" events_per_s)" -v d="$DRAIN_S" \
            'BEGIN { printf "sustained_per_s=%.0f\n", (r > 0) ? n / (n / r + d) : 0 }'
        echo "cpu_us=$(cpu_per_event "$out.cpu0" "$out.cpu1" "$ok")"
        awk -v a="$lg0" -v b="$lg1" -v n="$ok" 'BEGIN { printf "loadgen_cpu_us=%.0f\n", (n > 0) ? (b - a) * 1e6 / n : 0 }'
        awk -v a="$wb0" -v b="$wb1" -v n="$ok" 'BEGIN { printf "pages_per_event=%.2f\nwrite_bytes_per_event=%.0f\n", (n > 0) ? (b - a) / 4096 / n : 0, (n > 0) ? (b - a) / n : 0 }'
        echo "private_kib=$(private_kib "${pids[@]}")"
        echo "loadavg=$load1"
        echo "wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
    } >"$out.result"
    if [[ ${KEEP_RUNNING:-0} != 1 ]]; then
        stop_server "$SPID"
    fi
    printf '%s events/s, p99 %s ms%s\n' "$(result "$out.load" events_per_s)" "$(result "$out.load" p99_ms)" \
        "$([[ $LOADGEN_RC == 0 ]] || echo "  !!! loadgen exit $LOADGEN_RC: $(grep -m1 '!!!' "$out.err" || true)")"
    if [[ $LOADGEN_RC != 0 && $kind == veille ]]; then
        FAILED+=("$name")
    fi
    return 0
}
get() { sed -n "s/^$2=//p" "$RESULTS/$1.result" 2>/dev/null | head -n 1; } # get NAME KEY

# ---- the scenarios ---------------------------------------------------------------------
if [[ $HAVE_PG == 1 ]]; then
    log "PostgreSQL: a throwaway cluster under $DATA/pg"
    start_cluster
fi
log "throughput: the same pre-signed load ($EVENTS session.created deliveries, 50000 users) against each server"
for c in "${CONNS[@]}"; do
    scenario "veille-shared-$c" veille "$c" "$EVENTS"
    scenario "veille-ipuser-$c" veille "$c" "$EVENTS" --ips 0
    if [[ $HAVE_NODE == 1 ]]; then
        scenario "express-$c" express "$c" "$EVENTS"
    fi
    if [[ $HAVE_PG == 1 ]]; then
        scenario "pg-$c" pg "$c" "$EVENTS"
    fi
    scenario "h2o-$c" h2o "$c" "$EVENTS"
done
: >"$DATA/empty.rules"
VEILLE_RULES=$DATA/empty.rules scenario veille-norules-64 veille 64 "$EVENTS"

log "burst: $BURST deliveries at once over 256 connections to a fresh veille (Svix gives up after ${SVIX_TIMEOUT_S} s)"
NO_WARMUP=1 scenario veille-burst veille 256 "$BURST"

log "memory: $MEM_EVENTS session events over $MEM_USERS users, then $HOT_EVENTS for one user and veille history"
# Signed on the fly: a million pre-signed requests would be a GiB of the loadgen's memory,
# and the load may outlast the signatures' 300 s; throughput is not what this measures.
LOAD_CAP_S=600 NO_WARMUP=1 KEEP_RUNNING=1 PRESIGN=0 \
    scenario veille-memory veille 64 "$MEM_EVENTS" --users "$MEM_USERS" --type mixed
MEM_PID=$SPID MEM_PORT=$SPORT
MEM_HWM_KIB=$(status_kib "$MEM_PID" VmHWM)
MEM_RSS_KIB=$(status_kib "$MEM_PID" VmRSS)
MEM_FILE_KIB=$(status_kib "$MEM_PID" RssFile)
MEM_PRIVATE_KIB=$(private_kib "$MEM_PID")
loadgen "$RESULTS/hot" "$MEM_PORT" 64 "$HOT_EVENTS" --user-id user_hot --run-id hot
wait_applied "$MEM_PORT"
stop_server "$MEM_PID"
STORE_KIB=$(du -sk "$DATA/veille-memory" | awk '{ print $1 }')
"$VEILLE" stats --data "$DATA/veille-memory" >"$RESULTS/memory-stats.txt" 2>&1 || true

# wall_us CMD...: one run's wall time in us (EPOCHREALTIME: no helper process timed), stdout discarded
wall_us() {
    local t0=${EPOCHREALTIME/./} t1
    "$@" >/dev/null
    t1=${EPOCHREALTIME/./}
    WALL_US=$((t1 - t0))
}
median_ms() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'; }
HIST_LINES=$("$VEILLE" history user_hot --data "$DATA/veille-memory" --limit "$HOT_EVENTS" | wc -l)
ALL=() RECENT=() START=()
for ((i = 0; i < HISTORY_RUNS; i++)); do
    wall_us "$VEILLE" history user_hot --data "$DATA/veille-memory" --limit "$HOT_EVENTS"
    ALL+=("$WALL_US")
    wall_us "$VEILLE" history user_hot --data "$DATA/veille-memory"
    RECENT+=("$WALL_US")
    wall_us "$VEILLE" --help
    START+=("$WALL_US")
done
HIST_ALL_MS=$(median_ms "${ALL[@]}") HIST_RECENT_MS=$(median_ms "${RECENT[@]}") HELP_MS=$(median_ms "${START[@]}")

# ---- summary ----------------------------------------------------------------------------
summary() {
    local n
    printf '%s cores, the load generator on the same cores; %s deliveries per load after %s of warm-up; disk sync %s ms\n' \
        "$(nproc)" "$EVENTS" "$WARMUP" "${DSYNC_MS:-?}"
    printf 'load: the 1-minute load average when the scenario started (above %s, other work shared the cores)\n' "$(nproc)"
    printf '\n%-20s %5s %9s %9s %8s %8s %8s %7s %8s %5s  %s\n' scenario conns 'ev/s' sustained 'p50 ms' 'p99 ms' 'max ms' pages/ev 'priv MiB' \
        load 'CPU us/event: total, then by thread (loadgen separately)'
    for n in "${SCENARIOS[@]}"; do
        printf '%-20s %5s %9s %9s %8s %8s %8s %7s %8s %5s  %s; loadgen %s\n' "$n" "$(get "$n" conns)" "$(get "$n" events_per_s)" \
            "$(get "$n" sustained_per_s)" "$(get "$n" p50_ms)" "$(get "$n" p99_ms)" "$(get "$n" max_ms)" \
            "$(get "$n" pages_per_event)" "$(mib "$(get "$n" private_kib)")" "$(get "$n" loadavg)" "$(get "$n" cpu_us)" \
            "$(get "$n" loadgen_cpu_us)"
    done
    printf '\nveille (shared-IP load, sustained) against each peer at the same connections:\n'
    local c v peer r
    for c in "${CONNS[@]}"; do
        v=$(get "veille-shared-$c" sustained_per_s)
        printf '  %3s conns:' "$c"
        for peer in express pg h2o; do
            r=$(get "$peer-$c" events_per_s)
            [[ -n $r ]] || continue
            awk -v v="$v" -v r="$r" -v p="$peer" 'BEGIN { printf "  /%s %s", p, (r > 0) ? sprintf("%.2fx", v / r) : "n/a" }'
        done
        printf '   (one IP per user: %s ev/s sustained)\n' "$(get "veille-ipuser-$c" sustained_per_s)"
    done
    printf '\nburst: %s deliveries at 256 connections: %s 2xx, %s non-2xx (%s x 503), %s lost, max %s ms, p99 %s ms\n' \
        "$BURST" "$(get veille-burst ok)" "$(get veille-burst non_2xx)" "$(get veille-burst status_503)" \
        "$(get veille-burst errors)" "$(get veille-burst max_ms)" "$(get veille-burst p99_ms)"
    printf 'memory after %s events / %s users (+%s for user_hot): private (RssAnon+RssShmem) %s MiB; RSS %s MiB of which file-backed %s (the LMDB map: page cache); peak RSS %s MiB; store %s MiB\n' \
        "$MEM_EVENTS" "$MEM_USERS" "$HOT_EVENTS" "$(mib "$MEM_PRIVATE_KIB")" "$(mib "$MEM_RSS_KIB")" "$(mib "$MEM_FILE_KIB")" \
        "$(mib "$MEM_HWM_KIB")" "$(mib "$STORE_KIB")"
    printf '  the memory load itself: %s events/s, p99 %s ms, %s pages written per event\n' \
        "$(get veille-memory events_per_s)" "$(get veille-memory p99_ms)" "$(get veille-memory pages_per_event)"
    printf 'history of user_hot (%s lines): all %s events %s ms, the latest 100 %s ms; veille --help alone %s ms (medians of %s)\n' \
        "$HIST_LINES" "$HOT_EVENTS" "$HIST_ALL_MS" "$HIST_RECENT_MS" "$HELP_MS" "$HISTORY_RUNS"

    printf '\ntargets (issue 11; 64 connections, shared-IP load):\n'
    local v64 e64 p64 p99
    v64=$(get veille-shared-64 sustained_per_s) e64=$(get express-64 events_per_s) p64=$(get pg-64 events_per_s)
    p99=$(get veille-shared-64 p99_ms)
    target "sustained >= ${T_EXPRESS_X}x express in memory ($v64 vs ${e64:-n/a})" "$(fcmp "$v64" ">=" "$(awk -v e="${e64:-0}" -v x="$T_EXPRESS_X" 'BEGIN { print e * x }')")" "$e64"
    target "sustained >= ${T_PG_X}x express + PostgreSQL ($v64 vs ${p64:-n/a})" "$(fcmp "$v64" ">=" "$(awk -v e="${p64:-0}" -v x="$T_PG_X" 'BEGIN { print e * x }')")" "$p64"
    target "acknowledgement p99 < $T_P99_MS ms ($p99 ms)" "$(fcmp "$p99" "<" "$T_P99_MS")" x
    target "private memory < $T_PRIVATE_MIB MiB after $MEM_EVENTS events ($(mib "$MEM_PRIVATE_KIB") MiB)" \
        "$(fcmp "$(mib "$MEM_PRIVATE_KIB")" "<" "$T_PRIVATE_MIB")" x
    target "burst: all $BURST answered 2xx within ${SVIX_TIMEOUT_S} s, no 503" \
        "$(awk -v ok="$(get veille-burst ok)" -v n="$BURST" -v m="$(get veille-burst max_ms)" -v t="$SVIX_TIMEOUT_S" \
            'BEGIN { print (ok == n && m < t * 1000) ? 1 : 0 }')" x
}
TARGET_MISSED=0
fcmp() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { r = (op == "<") ? (a < b) : (a >= b); print r ? 1 : 0 }'; }
target() { # target LABEL OK PEER_FIGURE: "n/a" when the peer did not run
    if [[ -z $3 ]]; then
        printf '  %-80s n/a\n' "$1"
    elif [[ $2 == 1 ]]; then
        printf '  %-80s ok\n' "$1"
    else
        printf '  %-80s MISSED\n' "$1"
        TARGET_MISSED=1
    fi
}
log "summary (also in $RESULTS/summary.txt)"
summary | tee "$RESULTS/summary.txt"
{
    printf 'BENCH'
    for k in sustained_per_s events_per_s p50_ms p99_ms pages_per_event; do
        printf ' veille_64_%s=%s' "$k" "$(get veille-shared-64 "$k")"
    done
    printf ' express_64_events_per_s=%s pg_64_events_per_s=%s h2o_64_events_per_s=%s' \
        "$(get express-64 events_per_s)" "$(get pg-64 events_per_s)" "$(get h2o-64 events_per_s)"
    printf ' memory_private_mib=%s history_all_ms=%s history_recent_ms=%s\n' "$(mib "$MEM_PRIVATE_KIB")" "$HIST_ALL_MS" "$HIST_RECENT_MS"
} | tee -a "$RESULTS/summary.txt"

if ((${#FAILED[@]} > 0)); then
    echo "run.sh: !!! veille did not answer every delivery 2xx in: ${FAILED[*]} (see RESULTS/NAME.err)" >&2
    exit 1
fi
if [[ $STRICT == 1 && $TARGET_MISSED == 1 ]]; then
    exit 1
fi
exit 0
