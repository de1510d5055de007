#!/usr/bin/env bash
# Reloads with many APIs: one gateway (file mode) with APIS x OPS operations
# (10,000 x 10) in front of nginx `return 200`; see bench/README.md.
#
#   bench/many_apis.sh
#
# 1. wrk for DURATION spread over every operation (bench/many_apis.lua), no reload;
# 2. the same with one reload in the middle (the file rewritten with revision+1,
#    or `kill -HUP` with RELOAD=hup): p99, max (the longest pause) of each;
# 3. RELOADS reloads one after another (each waited for on /metrics): RSS after
#    1, 10 and RELOADS of them.
#
# Environment: APIS (10000), OPS (10), DURATION (10s), CONNS (32), THREADS (1),
# RELOADS (100), RELOAD (file or hup), RUNTIME (tokio or smol),
# PORTCULLIS_BIN ($CARGO_TARGET_DIR or target, then /release/portcullis),
# GATEWAY_ARGS (extra gateway flags).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

APIS=${APIS:-10000}
OPS=${OPS:-10}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
RELOADS=${RELOADS:-100}
RELOAD=${RELOAD:-file}
RUNTIME=${RUNTIME:-tokio}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}
export APIS OPS

BACKEND_PORT=18000
GATEWAY_PORT=18002
OPS_PORT=19090
CPU_PROXY=0
CPU_LOAD=1
URL_PATH=/
BENCH_LOG_NAME=many_apis

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in nginx wrk taskset curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $PORTCULLIS_BIN ]] || die "no gateway binary at $PORTCULLIS_BIN (cargo build --release --bin portcullis)"
for port in $BACKEND_PORT $GATEWAY_PORT $OPS_PORT; do
    port_free "$port" || die "port $port is in use"
done

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH_DIR/results/many-apis-$STAMP
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/portcullis-many.XXXXXX)
trap cleanup EXIT

CONFIG=$WORK/gateway.json
REVISION=1
gen() { # REVISION [OUT]
    python3 "$BENCH_DIR/many_apis.py" "${2:-$CONFIG}" "$1" "$APIS" "$OPS" "http://127.0.0.1:$BACKEND_PORT"
}

revision_in_force() {
    curl -s --max-time 30 "http://127.0.0.1:$OPS_PORT/metrics" 2>/dev/null |
        awk '$1 == "portcullis_config_revision" { print $2 }'
}

# reload_to REV: puts revision REV in the file (prepared in $WORK/next.json) and
# pokes the gateway the way RELOAD says.
reload_to() {
    mv "$WORK/next.json" "$CONFIG"
    if [[ $RELOAD == hup ]]; then kill -HUP "$GATEWAY_PID"; fi
    REVISION=$1
}

wait_revision() { # REV SECONDS
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        kill -0 "$GATEWAY_PID" 2>/dev/null || die "the gateway exited (see $RESULTS/gateway.log)"
        [[ $(revision_in_force) == "$1" ]] && return 0
        sleep 0.05
    done
    die "revision $1 not in force after $2 s"
}

log "generating $APIS x $OPS operations"
gen 1
start_backend
BACKEND_PIDS=$(nginx_pids "$BACKEND_PID")

start=$(date +%s.%N)
taskset -c "$CPU_PROXY" "$PORTCULLIS_BIN" gateway --runtime "$RUNTIME" \
    --config "$CONFIG" --listen "127.0.0.1:$GATEWAY_PORT" \
    --ops-listen "127.0.0.1:$OPS_PORT" ${GATEWAY_ARGS:-} \
    >"$RESULTS/gateway.log" 2>&1 &
GATEWAY_PID=$!
STARTED_PIDS+=("$GATEWAY_PID")
wait_http "http://127.0.0.1:$GATEWAY_PORT/a0/o0/item" "$GATEWAY_PID" 60 ||
    die "the gateway did not start (see $RESULTS/gateway.log)"
startup=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
rss_start=$(vmrss_kib "$GATEWAY_PID")
log "gateway up in ${startup} s, RSS $((rss_start / 1024)) MiB"

run_wrk() { # NAME [reload]
    local out=$RESULTS/wrk-$1.txt half=$((DURATION / 2))
    taskset -c "$CPU_LOAD" wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency \
        -s "$BENCH_DIR/many_apis.lua" "http://127.0.0.1:$GATEWAY_PORT" >"$out" 2>&1 &
    local wrk_pid=$!
    if [[ ${2:-} == reload ]]; then
        gen $((REVISION + 1)) "$WORK/next.json"
        sleep "$half"
        reload_to $((REVISION + 1))
        wait_revision "$REVISION" 120
    fi
    wait "$wrk_pid"
    # requests rps p50 p99 errors, then max
    local max
    max=$(awk '$1 == "Latency" { print $4 }' "$out")
    echo "$(parse_wrk "$out") $max"
}

log "warm-up"
run_wrk warmup >/dev/null
log "wrk ${DURATION} s, no reload"
read -r s_req s_rps s_p50 s_p99 s_err s_max <<<"$(run_wrk steady)"
log "wrk ${DURATION} s, one reload ($RELOAD) after $((DURATION / 2)) s"
read -r r_req r_rps r_p50 r_p99 r_err r_max <<<"$(run_wrk reload reload)"
rss_after_1=$(vmrss_kib "$GATEWAY_PID")

declare -A RSS=([1]=$rss_after_1)
log "reloading $RELOADS times"
for i in $(seq 2 "$RELOADS"); do
    gen $((REVISION + 1)) "$WORK/next.json"
    reload_to $((REVISION + 1))
    wait_revision "$REVISION" 120
    # A few requests between reloads, as traffic would.
    curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/a$((i * 97 % APIS))/o1/item" || true
    case $i in 10 | 50 | "$RELOADS") sleep 2; RSS[$i]=$(vmrss_kib "$GATEWAY_PID") ;; esac
    ((i % 10 == 0)) && log "  $i reloads, RSS $(($(vmrss_kib "$GATEWAY_PID") / 1024)) MiB"
done
kill -0 "$GATEWAY_PID" 2>/dev/null || die "the gateway exited"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
{
    echo "# many_apis: $APIS APIs x $OPS operations, $RUNTIME, reload by $RELOAD"
    echo "binary: $PORTCULLIS_BIN ($("$PORTCULLIS_BIN" --version 2>/dev/null | head -n 1))"
    echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "start-up: ${startup} s, RSS $(mib "$rss_start") MiB"
    echo "wrk -t$THREADS -c$CONNS ${DURATION}s, no reload:  $s_rps req/s, p50 $s_p50 ms, p99 $s_p99 ms, max $s_max, errors $s_err"
    echo "wrk -t$THREADS -c$CONNS ${DURATION}s, one reload: $r_rps req/s, p50 $r_p50 ms, p99 $r_p99 ms, max $r_max, errors $r_err"
    for n in $(printf '%s\n' "${!RSS[@]}" | sort -n); do
        echo "RSS after $n reloads: $(mib "${RSS[$n]}") MiB"
    done
} | tee "$RESULTS/summary.txt"
