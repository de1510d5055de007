#!/usr/bin/env bash
# Load benchmark: portcullis (on tokio and on smol) vs nginx as a reverse proxy,
# see bench/README.md.
#
#   bench/run.sh            full run (3 x 10 s per target and scenario)
#   bench/run.sh --quick    smoke test (1 x 3 s)
#
# Environment: DURATION (10s), RUNS (3), CONNS (64), THREADS (1), WARMUP (2s),
# IDLE_CONNS (10000, 0 skips the memory step), IDLE_HOLD (6), IDLE_SETTLE (3:
# seconds after the last answer before RSS is sampled), SKIP_BUILD=1,
# SCENARIOS ("keepalive close"),
# TARGETS ("backend nginx haproxy portcullis portcullis-smol portcullis-policy
# portcullis-smol-policy"; portcullis is the gateway on tokio, portcullis-smol
# the same binary with --runtime smol, the -policy targets the same gateways
# with the typical policy set of bench/gateway-policy.json; haproxy is skipped
# when it is not installed),
# PORTCULLIS_BIN ($CARGO_TARGET_DIR or target, then /release/portcullis),
# BEFORE_BIN (another gateway binary, e.g. an older commit's: adds the targets
# portcullis-before, portcullis-smol-before and portcullis-policy-before, run by
# it, interleaved with the others so that before and after share the machine),
# PORTCULLIS_LOG (warn),
# GATEWAY_ARGS (extra gateway flags, e.g. "--metrics false" or "--access-log json"
# to measure what telemetry costs; the access log goes to the gateway's log file),
# QUIET_WAIT (300: seconds to wait for a busy machine to calm down),
# QUIET_FOR (10: consecutive seconds under 10% CPU that count as calm),
# NOISE_PCT (10: % of a CPU used by other processes that makes a run noisy),
# NOISE_RETRIES (2: reruns of a noisy run).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-6}
IDLE_SETTLE=${IDLE_SETTLE:-3}
SKIP_BUILD=${SKIP_BUILD:-0}
SCENARIOS=${SCENARIOS:-keepalive close}
TARGETS_SET=${TARGETS:-}
TARGETS=${TARGETS:-backend nginx haproxy portcullis portcullis-smol portcullis-policy portcullis-smol-policy}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
QUIET_WAIT=${QUIET_WAIT:-300}
NOISE_RETRIES=${NOISE_RETRIES:-2}
QUIET_FOR=${QUIET_FOR:-10}
NOISE_PCT=${NOISE_PCT:-10}
# Per-request logging would be a cost nginx (access_log off) does not pay.
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}

BACKEND_PORT=18000
NGINX_PORT=18001
HAPROXY_PORT=18004
# The gateway on each runtime: both run all along (pinned to the proxy CPU,
# idle while the other targets are measured).
declare -A GATEWAY_RUNTIME=([portcullis]=tokio [portcullis-smol]=smol
    [portcullis-policy]=tokio [portcullis-smol-policy]=smol)
declare -A GATEWAY_PORT=([portcullis]=18002 [portcullis-smol]=18003
    [portcullis-policy]=18005 [portcullis-smol-policy]=18006)
declare -A OPS_PORT=([portcullis]=19090 [portcullis-smol]=19091
    [portcullis-policy]=19092 [portcullis-smol-policy]=19093)
declare -A GATEWAY_CONFIG=([portcullis]=gateway.json [portcullis-smol]=gateway.json
    [portcullis-policy]=gateway-policy.json [portcullis-smol-policy]=gateway-policy.json)
GATEWAYS=(portcullis portcullis-smol portcullis-policy portcullis-smol-policy)
BEFORE_BIN=${BEFORE_BIN:-}
if [[ -n $BEFORE_BIN ]]; then
    GATEWAY_RUNTIME+=([portcullis-before]=tokio [portcullis-smol-before]=smol [portcullis-policy-before]=tokio)
    GATEWAY_PORT+=([portcullis-before]=18007 [portcullis-smol-before]=18008 [portcullis-policy-before]=18009)
    OPS_PORT+=([portcullis-before]=19095 [portcullis-smol-before]=19096 [portcullis-policy-before]=19097)
    GATEWAY_CONFIG+=([portcullis-before]=gateway.json [portcullis-smol-before]=gateway.json
        [portcullis-policy-before]=gateway-policy.json)
    GATEWAYS+=(portcullis-before portcullis-smol-before portcullis-policy-before)
    [[ -z ${TARGETS_SET:-} ]] && TARGETS="$TARGETS portcullis-before portcullis-smol-before portcullis-policy-before"
fi
CPU_PROXY=0   # the proxy under test, alone
CPU_LOAD=1    # wrk and the backend
URL_PATH=/bench/item
# The typical policy set (bench/gateway-policy.json): a subscription key,
# rate-limit-by-key, set-header in and out, rewrite-uri.
POLICY_PATH=/policy/items/42
POLICY_KEY=bench-primary-key-0123456789abcdef

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
        --quick) RUNS=1 DURATION=3s WARMUP=1s ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in nginx wrk taskset curl python3 getconf; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y nginx wrk util-linux curl python3)"
done
[[ $(nproc --all) -ge 2 ]] || die "needs at least 2 CPUs (proxy on CPU $CPU_PROXY, load on CPU $CPU_LOAD)"

CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH_DIR/results/$STAMP
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers (an unprivileged user) traverse it

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Servers need a file descriptor per idle connection (IDLE_CONNS + slack).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < IDLE_CONNS + 512)); then
    log "warning: ulimit -n is $(ulimit -n) (hard limit); fewer than $IDLE_CONNS idle connections will fit"
fi

declare -A GATEWAY_PID=()
declare -A GATEWAY_STATUS=()
for g in "${GATEWAYS[@]}"; do
    GATEWAY_PID[$g]=""
    GATEWAY_STATUS[$g]="not run"
done
build_gateway() {
    if [[ $SKIP_BUILD == 1 ]]; then
        log "SKIP_BUILD=1: using $PORTCULLIS_BIN as is"
        return 0
    fi
    log "building: cargo build --release --bin portcullis (log: $RESULTS/build.log)"
    if (cd "$ROOT" && cargo build --release --bin portcullis) >"$RESULTS/build.log" 2>&1; then
        log "build ok"
    else
        log "PORTCULLIS BUILD FAILED; the portcullis target is skipped. Last lines:"
        tail -n 15 "$RESULTS/build.log" | sed 's/^/    /' >&2
        [[ -x $PORTCULLIS_BIN ]] && log "(an older $PORTCULLIS_BIN exists; SKIP_BUILD=1 would measure it)"
        for g in "${GATEWAYS[@]}"; do
            GATEWAY_STATUS[$g]="skipped: cargo build --release failed"
        done
        return 1
    fi
}

start_gateway() { # TARGET (portcullis or portcullis-smol)
    local target=$1 runtime=${GATEWAY_RUNTIME[$1]} port=${GATEWAY_PORT[$1]} status
    local bin=$PORTCULLIS_BIN
    [[ $target == *-before ]] && bin=$BEFORE_BIN
    if [[ ! -x $bin ]]; then
        GATEWAY_STATUS[$target]="skipped: no binary at $bin"
        log "$target SKIPPED: no binary at $bin"
        return 1
    fi
    local code rc=0 pid path=$URL_PATH
    [[ $target == *-policy* ]] && path=$POLICY_PATH
    taskset -c "$CPU_PROXY" "$bin" gateway \
        --runtime "$runtime" \
        --config "$BENCH_DIR/${GATEWAY_CONFIG[$target]}" \
        --listen "127.0.0.1:$port" \
        --ops-listen "127.0.0.1:${OPS_PORT[$target]}" \
        ${GATEWAY_ARGS:-} \
        >"$RESULTS/gateway-$target.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    WAIT_HTTP_HEADER="Ocp-Apim-Subscription-Key: $POLICY_KEY" \
        wait_http "http://127.0.0.1:$port$path" "$pid" 20 || rc=$?
    if ((rc == 0)); then
        GATEWAY_PID[$target]=$pid
        GATEWAY_STATUS[$target]="ran: $("$bin" --version 2>/dev/null | head -n 1 || echo portcullis), --runtime $runtime"
        log "portcullis gateway on $runtime up (pid $pid)"
        return 0
    fi
    if ((rc == 2)); then
        wait "$pid" && code=0 || code=$?
        status="skipped: the gateway exited (status $code) before serving $path"
    else
        status="skipped: no 200 from http://127.0.0.1:$port$path within 20 s"
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    GATEWAY_STATUS[$target]=$status
    log "$target SKIPPED: ${status#skipped: }. Gateway output ($RESULTS/gateway-$target.log):"
    tail -n 15 "$RESULTS/gateway-$target.log" | sed 's/^/    /' >&2
    return 1
}

# ------------------------------------------------------------------- load --

declare -A URL
target_pids() {
    case $1 in
        backend) nginx_pids "$BACKEND_PID" ;;
        nginx) nginx_pids "$PROXY_PID" ;;
        haproxy) echo "$HAPROXY_PID" ;;
        portcullis*) echo "${GATEWAY_PID[$1]}" ;;
    esac
}

wrk_args() { # SCENARIO TARGET
    local -a a=(-t"$THREADS" -c"$CONNS" --latency)
    [[ $1 == close ]] && a+=(-H "Connection: close")
    [[ $2 == *-policy* ]] && a+=(-H "Ocp-Apim-Subscription-Key: $POLICY_KEY")
    printf '%s\n' "${a[@]}"
}

run_one() { # SCENARIO TARGET RUN
    local scenario=$1 target=$2 run=$3
    local out=$RESULTS/wrk-$scenario-$target-$run.txt
    local -a pids backend_pids args
    read -r -a pids <<<"$(target_pids "$target")"
    read -r -a backend_pids <<<"$(target_pids backend)"
    [[ $target == backend ]] && backend_pids=()
    mapfile -t args < <(wrk_args "$scenario" "$target")
    local t0 t1 k0 k1 w0 w1 c0 c1 l0 l1 a0 a1 ns0 ns1
    t0=$(proc_ticks "${pids[@]}"); k0=$(proc_ticks "${backend_pids[@]+"${backend_pids[@]}"}")
    w0=$(children_ticks); c0=$(cpu_busy "$CPU_PROXY"); l0=$(cpu_busy "$CPU_LOAD"); ns0=$(date +%s%N)
    taskset -c "$CPU_LOAD" wrk "${args[@]}" -d"$DURATION" "${URL[$target]}" >"$out" 2>&1 ||
        log "warning: wrk exited non-zero for $target ($out)"
    ns1=$(date +%s%N); c1=$(cpu_busy "$CPU_PROXY"); l1=$(cpu_busy "$CPU_LOAD"); w1=$(children_ticks)
    t1=$(proc_ticks "${pids[@]}"); k1=$(proc_ticks "${backend_pids[@]+"${backend_pids[@]}"}")
    a0=$((c0 + l0)); a1=$((c1 + l1))
    local requests rps p50 p99 errors
    read -r requests rps p50 p99 errors <<<"$(parse_wrk "$out")"
    # other_pct: CPU time on the machine that was neither the server under
    # test, the backend nor wrk, in % of one CPU. More than a few % means
    # something else ran (a cargo build...) and the run is suspect.
    local line
    line=$(awk -v s="$scenario" -v t="$target" -v r="$run" -v n="$requests" \
        -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errors" \
        -v ticks=$((t1 - t0)) -v hz="$CLK_TCK" \
        -v other=$((a1 - a0 - (t1 - t0) - (k1 - k0) - (w1 - w0))) \
        -v load=$((l1 - l0)) -v wall=$(((ns1 - ns0) / 1000000)) 'BEGIN {
            cpu = (n > 0) ? sprintf("%.2f", ticks * 1e6 / hz / n) : "nan"
            wt = wall / 1000 * hz
            o = (wt > 0) ? 100 * other / wt : 0
            if (o < 0) o = 0
            l = (wt > 0) ? 100 * load / wt : 0
            printf "%s\t%s\t%s\t%d\t%s\t%.3f\t%.3f\t%s\t%d\t%.1f\t%.1f\n",
                s, t, r, n, rps, p50, p99, cpu, e, o, l
        }')
    RUN_LINE=$line
    # shellcheck disable=SC2086
    set -- $line
    log "$(printf '%-9s %-10s run %s: %8s req/s  p50 %6s ms  p99 %6s ms  CPU %6s us/req  errors %s  (other CPU %s%%, cpu%s busy %s%%)' \
        "$1" "$2" "$3" "$5" "$6" "$7" "$8" "$9" "${10}" "$CPU_LOAD" "${11}")"
    RUN_NOISY=0
    if awk -v o="${10}" -v max="$NOISE_PCT" 'BEGIN { exit !(o > max) }'; then
        RUN_NOISY=1
        log "warning: ${10}% of a CPU went to other processes during this run; its numbers are suspect"
    fi
}

warmup() { # SCENARIO TARGET
    local -a args
    mapfile -t args < <(wrk_args "$1" "$2")
    taskset -c "$CPU_LOAD" wrk "${args[@]}" -d"$WARMUP" "${URL[$2]}" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------ idle memory --

idle_step() { # NAME PORT PIDS...
    local name=$1 port=$2
    shift 2
    local out=$RESULTS/idle-$name.txt before during line
    before=$(vmrss_kib "$@")
    python3 "$BENCH_DIR/idle_conns.py" --port "$port" -n "$IDLE_CONNS" \
        --path "$URL_PATH" --hold "$IDLE_HOLD" >"$out" 2>&1 &
    local py=$!
    local deadline=$((SECONDS + 120))
    until grep -q '^READY' "$out" 2>/dev/null; do
        if ! kill -0 "$py" 2>/dev/null || ((SECONDS > deadline)); then
            log "warning: idle_conns.py against $name did not get READY: $(cat "$out")"
            kill "$py" 2>/dev/null || true
            wait "$py" 2>/dev/null || true
            return 0
        fi
        sleep 0.05
    done
    # A connection gives its buffers back (and parks) 1 s after its answer:
    # sample once every connection has been idle for a while.
    sleep "$IDLE_SETTLE"
    during=$(vmrss_kib "$@")
    wait "$py" || log "warning: idle_conns.py exited non-zero ($out)"
    local open_at_ready open_after failed
    line=$(grep '^DONE' "$out" || true)
    open_at_ready=$(sed -n 's/.*open_at_ready=\([0-9]*\).*/\1/p' <<<"$line")
    open_after=$(sed -n 's/.*open_after_hold=\([0-9]*\).*/\1/p' <<<"$line")
    failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$IDLE_CONNS" "${open_at_ready:-0}" \
        "${open_after:-0}" "${failed:-0}" "$IDLE_HOLD" "$before" "$during" >>"$RESULTS/idle.tsv"
    log "idle $name: RSS $((before / 1024)) MiB -> $((during / 1024)) MiB with ${open_at_ready:-0} idle connections (${open_after:-0} still open after ${IDLE_HOLD}s, ${failed:-0} failed)"
}

# ------------------------------------------------------------------- main --

for port in $BACKEND_PORT $NGINX_PORT $HAPROXY_PORT "${GATEWAY_PORT[@]}" "${OPS_PORT[@]}"; do
    port_free "$port" || die "port $port is already in use"
done

want_gateway=0
for g in "${GATEWAYS[@]}"; do
    [[ " $TARGETS " == *" $g "* ]] && want_gateway=1
done
if ((want_gateway)); then
    build_gateway || want_gateway=0
fi

log "results in $RESULTS"
start_backend
start_nginx_proxy
HAPROXY_STATUS="not run"
if [[ " $TARGETS " == *" haproxy "* ]]; then
    if command -v haproxy >/dev/null; then
        start_haproxy && HAPROXY_STATUS="ran: $(haproxy -v 2>/dev/null | head -n 1), nbthread 1"
    else
        HAPROXY_STATUS="skipped: haproxy not installed (apt-get install -y haproxy)"
        log "haproxy SKIPPED: not installed"
    fi
fi
if ((want_gateway)); then
    for g in "${GATEWAYS[@]}"; do
        [[ " $TARGETS " == *" $g "* ]] && { start_gateway "$g" || true; }
    done
fi

URL[backend]=http://127.0.0.1:$BACKEND_PORT$URL_PATH
URL[nginx]=http://127.0.0.1:$NGINX_PORT$URL_PATH
URL[haproxy]=http://127.0.0.1:$HAPROXY_PORT$URL_PATH
for g in "${GATEWAYS[@]}"; do
    URL[$g]=http://127.0.0.1:${GATEWAY_PORT[$g]}$URL_PATH
    [[ $g == *-policy* ]] && URL[$g]=http://127.0.0.1:${GATEWAY_PORT[$g]}$POLICY_PATH
done
active=()
for t in $TARGETS; do
    case $t in
        backend | nginx) active+=("$t") ;;
        haproxy) [[ -n ${HAPROXY_PID:-} ]] && active+=("$t") ;;
        portcullis*) [[ -n ${GATEWAY_PID[$t]:-} ]] && active+=("$t") ;;
        *) die "unknown target $t" ;;
    esac
done

wait_quiet


printf 'scenario\ttarget\trun\trequests\trps\tp50_ms\tp99_ms\tcpu_us_per_req\terrors\tother_cpu_pct\tload_cpu_busy_pct\n' \
    >"$RESULTS/runs.tsv"

for scenario in $SCENARIOS; do
    [[ $scenario == keepalive || $scenario == close ]] || die "unknown scenario $scenario"
    log "scenario $scenario: warm-up ($WARMUP per target)"
    for t in "${active[@]}"; do warmup "$scenario" "$t"; done
    for run in $(seq "$RUNS"); do
        for t in "${active[@]}"; do
            # A run that shared the machine is retried after it calms down;
            # the last attempt is kept either way (and flagged in the report).
            for attempt in $(seq 0 "$NOISE_RETRIES"); do
                run_one "$scenario" "$t" "$run"
                ((RUN_NOISY && attempt < NOISE_RETRIES)) || break
                [[ $MACHINE_NOTE == quiet ]] || break   # no calm to wait for
                log "retrying this run once the machine is quiet"
                wait_quiet
            done
            echo "$RUN_LINE" >>"$RESULTS/runs.tsv"
        done
    done
done

if ((IDLE_CONNS > 0)); then
    printf 'server\trequested\topen_at_ready\topen_after_hold\tfailed\thold_s\trss_before_kib\trss_during_kib\n' \
        >"$RESULTS/idle.tsv"
    sleep 2   # let the load's connections drain
    # shellcheck disable=SC2046
    idle_step nginx "$NGINX_PORT" $(nginx_pids "$PROXY_PID")
    [[ -n ${HAPROXY_PID:-} ]] && idle_step haproxy "$HAPROXY_PORT" "$HAPROXY_PID"
    for g in portcullis portcullis-smol portcullis-before portcullis-smol-before; do
        if [[ -n ${GATEWAY_PID[$g]:-} ]]; then
            idle_step "$g" "${GATEWAY_PORT[$g]}" "${GATEWAY_PID[$g]}"
        fi
    done
fi

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host=$(nproc --all) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*: //')"
    echo "wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print "wrk " $2}')"
    echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
    echo "gateway_status=${GATEWAY_STATUS[portcullis]}"
    echo "gateway_smol_status=${GATEWAY_STATUS[portcullis-smol]}"
    echo "gateway_policy_status=${GATEWAY_STATUS[portcullis-policy]}"
    echo "gateway_smol_policy_status=${GATEWAY_STATUS[portcullis-smol-policy]}"
    echo "haproxy_status=$HAPROXY_STATUS"
    [[ -n $BEFORE_BIN ]] && echo "before_status=${GATEWAY_STATUS[portcullis-before]} ($BEFORE_BIN)"
    echo "duration=$DURATION"
    echo "runs=$RUNS"
    echo "conns=$CONNS"
    echo "threads=$THREADS"
    echo "machine=$MACHINE_NOTE"
    echo "noise_pct=$NOISE_PCT"
} >"$RESULTS/meta.env"

python3 "$BENCH_DIR/report.py" "$RESULTS" | tee "$RESULTS/summary.md"
log "raw results: $RESULTS (summary.md, runs.tsv, wrk-*.txt)"
for g in "${GATEWAYS[@]}"; do
    [[ ${GATEWAY_STATUS[$g]} == ran* ]] || log "note: $g was not measured: ${GATEWAY_STATUS[$g]}"
done
