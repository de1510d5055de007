#!/usr/bin/env bash
# Where a proxied request's CPU goes: system calls per request (strace -c) and
# the top of a CPU profile (perf record), for the gateway, and the system calls
# of nginx and haproxy doing the same job next to it. See BENCHMARKS.md
# ("Where the time goes").
#
#   bench/profile.sh [BINARY]       (default target/release/portcullis)
#
# Environment: RUNTIME (tokio), SCENARIOS ("keepalive close"), CONFIG
# (bench/gateway.json; bench/gateway-policy.json profiles the typical policy
# set), DURATION (5: seconds of wrk per step), PERF (1: 0 skips perf),
# PROXIES ("portcullis nginx haproxy": whose system calls are counted).
# Needs nginx, wrk, strace; perf (Debian's linux-perf) for the profile.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN=${1:-$ROOT/target/release/portcullis}
RUNTIME=${RUNTIME:-tokio}
SCENARIOS=${SCENARIOS:-keepalive close}
CONFIG=${CONFIG:-$BENCH_DIR/gateway.json}
DURATION=${DURATION:-5}
PERF=${PERF:-1}
PROXIES=${PROXIES:-portcullis nginx haproxy}
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}

BACKEND_PORT=18000
NGINX_PORT=18001
HAPROXY_PORT=18004
GATEWAY_PORT=18002
CPU_PROXY=0
CPU_LOAD=1
URL_PATH=/bench/item
BENCH_LOG_NAME=profile
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

[[ -x $BIN ]] || die "no gateway binary at $BIN (cargo build --release --bin portcullis)"
for tool in nginx wrk strace taskset; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
RESULTS=$BENCH_DIR/results/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/portcullis-profile.XXXXXX)
chmod 755 "$WORK"
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

path=$URL_PATH
declare -a key_header=()
if grep -q '"subscriptionRequired": true' "$CONFIG"; then
    path=/policy/items/42
    key_header=(-H "Ocp-Apim-Subscription-Key: bench-primary-key-0123456789abcdef")
fi

start_backend
start_nginx_proxy
if command -v haproxy >/dev/null; then start_haproxy || true; fi
taskset -c "$CPU_PROXY" "$BIN" gateway --runtime "$RUNTIME" --config "$CONFIG" \
    --listen "127.0.0.1:$GATEWAY_PORT" --ops-listen 127.0.0.1:19094 \
    >"$RESULTS/gateway.log" 2>&1 &
GATEWAY_PID=$!
STARTED_PIDS+=("$GATEWAY_PID")
WAIT_HTTP_HEADER=${key_header[1]:-} wait_http "http://127.0.0.1:$GATEWAY_PORT$path" "$GATEWAY_PID" 20 ||
    die "the gateway did not answer: $(tail -n 5 "$RESULTS/gateway.log")"

load() { # SCENARIO URL SECONDS -> requests completed
    local -a a=(-t1 -c64 "-d${3}s")
    [[ $1 == close ]] && a+=(-H "Connection: close")
    taskset -c "$CPU_LOAD" wrk "${a[@]}" "${key_header[@]+"${key_header[@]}"}" "$2" |
        awk '/requests in/ { print $1 }'
}

# strace -c over the run, divided by the requests completed.
syscalls() { # NAME SCENARIO URL PIDS...
    local name=$1 scenario=$2 url=$3
    shift 3
    local out=$RESULTS/strace-$name-$scenario.txt requests
    local -a attach=()
    for p in "$@"; do attach+=(-p "$p"); done
    strace -c -f -o "$out" "${attach[@]}" &
    local tracer=$!
    sleep 1
    requests=$(load "$scenario" "$url" "$DURATION")
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    log "$name $scenario: $requests requests under strace"
    awk -v n="$requests" -v who="$name" -v s="$scenario" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; errs = (NF == 6) ? $5 : 0; name = $NF
            printf "%s\t%s\t%s\t%.2f\t%.2f\n", who, s, name, calls / n, errs / n
        }' "$out" | sort -t$'\t' -k4,4nr >>"$RESULTS/syscalls.tsv"
}

printf 'proxy\tscenario\tsyscall\tper_request\terrors_per_request\n' >"$RESULTS/syscalls.tsv"
for scenario in $SCENARIOS; do
    load "$scenario" "http://127.0.0.1:$GATEWAY_PORT$path" 2 >/dev/null   # warm-up
    for proxy in $PROXIES; do
        case $proxy in
            portcullis) syscalls portcullis "$scenario" "http://127.0.0.1:$GATEWAY_PORT$path" "$GATEWAY_PID" ;;
            nginx)
                # shellcheck disable=SC2046
                syscalls nginx "$scenario" "http://127.0.0.1:$NGINX_PORT$URL_PATH" $(pgrep -P "$PROXY_PID") ;;
            haproxy)
                [[ -n ${HAPROXY_PID:-} ]] &&
                    syscalls haproxy "$scenario" "http://127.0.0.1:$HAPROXY_PORT$URL_PATH" "$HAPROXY_PID" ;;
        esac
    done
    if [[ $PERF == 1 ]] && command -v perf >/dev/null; then
        perf record -F 2999 -g -p "$GATEWAY_PID" -o "$RESULTS/perf-$scenario.data" \
            >"$RESULTS/perf-record-$scenario.log" 2>&1 &
        perf_pid=$!
        sleep 0.5
        load "$scenario" "http://127.0.0.1:$GATEWAY_PORT$path" "$DURATION" >/dev/null
        kill -INT "$perf_pid"
        wait "$perf_pid" 2>/dev/null || true
        # Kernel against user space, then the top symbols (self time).
        perf report -i "$RESULTS/perf-$scenario.data" --no-children --sort dso \
            --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 15 \
            >"$RESULTS/perf-dso-$scenario.txt" || true   # head closes the pipe early
        perf report -i "$RESULTS/perf-$scenario.data" --no-children --sort dso,symbol \
            --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40 \
            >"$RESULTS/perf-top-$scenario.txt" || true
        log "perf ($scenario): $RESULTS/perf-top-$scenario.txt"
    fi
done

echo "# system calls per request (strace -c -f; strace slows the server, so idle-and-wake calls are over-represented)"
awk -F'\t' 'NR > 1 && $4 >= 0.01 {
    printf "%-10s %-9s %-16s %6.2f%s\n", $1, $2, $3, $4, ($5 > 0 ? sprintf("  (%.2f failed)", $5) : "")
}' "$RESULTS/syscalls.tsv"
for scenario in $SCENARIOS; do
    [[ -f $RESULTS/perf-dso-$scenario.txt ]] || continue
    echo "# perf, $scenario: share of the gateway's samples by object"
    cat "$RESULTS/perf-dso-$scenario.txt"
    echo "# perf, $scenario: top symbols (self)"
    head -n 25 "$RESULTS/perf-top-$scenario.txt"
done
log "raw results: $RESULTS"
