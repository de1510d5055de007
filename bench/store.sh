#!/usr/bin/env bash
# What shared limits cost, and how accurate they are (see bench/README.md,
# "Shared limits: bench/store.sh").
#
#   bench/store.sh            full run (~6 minutes, plus the release build)
#   bench/store.sh --quick    smoke test (~1 minute)
#
# 1. cost: one gateway with `rate-limit-by-key calls="1000000000"` keyed by the
#    client address (never refuses: every request pays the decision), its
#    counters in process (`--store local`) or in Redis (`--store redis://...`,
#    exact and approximate counting), next to nginx as a reverse proxy (no
#    limit) and the gateway without the policy, keep-alive, interleaved rounds.
#    Gateway CPU and Redis CPU per request.
# 2. accuracy: three gateways on one Redis, one limit of N calls (each of
#    ACC_LIMITS) per ACC_PERIOD seconds on one fixed counter key, three wrk
#    (one per gateway) started together for one window; 200s and 429s counted
#    per gateway.
#
# Environment: DURATION (10s), RUNS (3), CONNS (64), THREADS (1), WARMUP (2s),
# PARTS ("cost accuracy"),
# TARGETS ("nginx nolimit local exact approximate"; nolimit: the gateway without
# the policy; also "backend": the backend alone),
# ACC_MODES ("local approximate exact"), ACC_LIMITS ("2000 20000"), ACC_PERIOD
# (10, in seconds), ACC_ROUNDS (2), ACC_CONNS (16: wrk connections per gateway),
# SYNC_INTERVAL_MS (unset: the gateway's default, 200), STORE_TIMEOUT_MS (unset:
# the gateway's default, 100; a call that takes longer fails open), SKIP_BUILD=1,
# PORTCULLIS_BIN ($CARGO_TARGET_DIR or target, then /release/portcullis),
# PORTCULLIS_LOG (warn), REDIS_SERVER (redis-server),
# QUIET_WAIT (120), QUIET_FOR (10), NOISE_PCT (10), NOISE_RETRIES (2): as in
# bench/run.sh.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BENCH_LOG_NAME=store

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
PARTS=${PARTS:-cost accuracy}
TARGETS=${TARGETS:-nginx nolimit local exact approximate}
ACC_MODES=${ACC_MODES:-local approximate exact}
ACC_LIMITS=${ACC_LIMITS:-2000 20000}
ACC_PERIOD=${ACC_PERIOD:-10}
ACC_ROUNDS=${ACC_ROUNDS:-2}
ACC_CONNS=${ACC_CONNS:-16}
SYNC_INTERVAL_MS=${SYNC_INTERVAL_MS:-}
STORE_TIMEOUT_MS=${STORE_TIMEOUT_MS:-}
SKIP_BUILD=${SKIP_BUILD:-0}
PORTCULLIS_BIN=${PORTCULLIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
QUIET_WAIT=${QUIET_WAIT:-120}
QUIET_FOR=${QUIET_FOR:-10}
NOISE_PCT=${NOISE_PCT:-10}
NOISE_RETRIES=${NOISE_RETRIES:-2}
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}
# The flags below say where the state lives; none of it from the environment.
unset PORTCULLIS_STORE PORTCULLIS_STORE_COUNTING PORTCULLIS_STORE_ON_FAILURE \
    PORTCULLIS_STORE_TIMEOUT_MS PORTCULLIS_STORE_SYNC_INTERVAL_MS PORTCULLIS_STORE_KEY_PREFIX

# Ports apart from bench/run.sh's (18000-18003), callgrind.sh's (18100-18102)
# and tls_handshakes.sh's (18181-18185).
BACKEND_PORT=18200
NGINX_PORT=18201
declare -A COST_PORT=([local]=18202 [exact]=18203 [approximate]=18204 [nolimit]=18205)
declare -A COST_OPS=([local]=19202 [exact]=19203 [approximate]=19204 [nolimit]=19205)
ACC_PORTS=(18211 18212 18213)
ACC_OPS=(19211 19212 19213)
CPU_PROXY=0   # the proxy (or the three gateways) under test
CPU_LOAD=1    # wrk, the backend and redis-server
URL_PATH=/bench/item

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
        --quick) RUNS=1 DURATION=3s WARMUP=1s ACC_ROUNDS=1 ACC_PERIOD=3 ACC_LIMITS=2000 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

for tool in nginx wrk taskset curl python3 getconf "$REDIS_SERVER" redis-cli; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install -y nginx wrk redis-server util-linux curl python3)"
done
[[ $(nproc --all) -ge 2 ]] || die "needs at least 2 CPUs (proxy on CPU $CPU_PROXY, load on CPU $CPU_LOAD)"
for t in $TARGETS; do
    [[ $t =~ ^(backend|nginx|nolimit|local|exact|approximate)$ ]] || die "unknown target $t"
done
for m in $ACC_MODES; do
    [[ $m =~ ^(local|exact|approximate)$ ]] || die "unknown accuracy mode $m"
done

CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH_DIR/results/store-$STAMP
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/portcullis-store-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers (an unprivileged user) traverse it
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Stops one process this script started (and forgets it, so that `cleanup`
# never signals a process id the system may have given to another process).
stop_started() { # PID
    local pid=$1 i kept=()
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${STARTED_PIDS[@]}"; do [[ $i == "$pid" ]] || kept+=("$i"); done
    STARTED_PIDS=("${kept[@]+"${kept[@]}"}")
}

# ------------------------------------------------------------------ redis --

start_redis() {
    REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/redis"
    taskset -c "$CPU_LOAD" "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save '' --appendonly no --dir "$WORK/redis" --logfile "$RESULTS/redis.log" &
    REDIS_PID=$!
    STARTED_PIDS+=("$REDIS_PID")
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
        kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: $(tail -n 5 "$RESULTS/redis.log")"
        sleep 0.1
    done
    [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || die "redis-server does not answer on $REDIS_PORT"
    log "redis-server $("$REDIS_SERVER" --version | awk '{print $3}') on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID, CPU $CPU_LOAD)"
}

redis_commands() {
    redis-cli -p "$REDIS_PORT" info stats | awk -F: '/^total_commands_processed:/ { print $2 + 0 }'
}

# --------------------------------------------------------------- gateways --

# A configuration: bench/gateway.json's API (backend on BACKEND_PORT) with
# POLICY_XML as its policy.
write_config() { # FILE POLICY_XML
    python3 - "$BENCH_DIR/gateway.json" "$1" "$2" "$BACKEND_PORT" <<'EOF'
import json, sys
src, dst, policy, port = sys.argv[1:]
c = json.load(open(src))
api = c["apis"][0]
api["serviceUrl"] = f"http://127.0.0.1:{port}"
api["policy"] = ("<policies><inbound><base />" + policy + "</inbound>"
                 "<backend><base /></backend><outbound><base /></outbound>"
                 "<on-error><base /></on-error></policies>")
json.dump(c, open(dst, "w"), indent=2)
EOF
}

# The store flags of a mode, one per line.
store_flags() { # MODE KEY_PREFIX
    case $1 in
        local) printf '%s\n' --store local ;;
        exact | approximate)
            printf '%s\n' --store "redis://127.0.0.1:$REDIS_PORT" --store-counting "$1" \
                --store-key-prefix "$2"
            [[ $1 == approximate && -n $SYNC_INTERVAL_MS ]] &&
                printf '%s\n' --store-sync-interval-ms "$SYNC_INTERVAL_MS"
            [[ -n $STORE_TIMEOUT_MS ]] && printf '%s\n' --store-timeout-ms "$STORE_TIMEOUT_MS"
            ;;
    esac
    return 0
}

# Starts a gateway pinned to CPU_PROXY and waits for its /readyz (not the API:
# a request there would count against the limit). Sets GW_PID.
start_gateway() { # NAME PORT OPS_PORT CONFIG MODE KEY_PREFIX
    local name=$1 port=$2 ops=$3 config=$4 pid rc=0
    local -a flags
    mapfile -t flags < <(store_flags "$5" "$6")
    taskset -c "$CPU_PROXY" "$PORTCULLIS_BIN" gateway --runtime tokio --config "$config" \
        --listen "127.0.0.1:$port" --ops-listen "127.0.0.1:$ops" --shutdown-grace 1 \
        "${flags[@]}" >"$RESULTS/gateway-$name.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait_http "http://127.0.0.1:$ops/readyz" "$pid" 20 || rc=$?
    if ((rc != 0)); then
        log "gateway $name did not become ready ($( ((rc == 2)) && echo exited || echo timeout)):"
        tail -n 15 "$RESULTS/gateway-$name.log" | sed 's/^/    /' >&2
        stop_started "$pid"
        return 1
    fi
    GW_PID=$pid
}

# From a gateway's /metrics: "2xx 4xx other store_calls store_seconds store_errors".
gateway_metrics() { # OPS_PORT
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" | awk '
        /^portcullis_requests_total\{/ {
            if ($0 ~ /status_class="2xx"/) ok += $NF
            else if ($0 ~ /status_class="4xx"/) refused += $NF
            else other += $NF
        }
        /^portcullis_store_call_duration_seconds_count/ { calls = $NF }
        /^portcullis_store_call_duration_seconds_sum/ { secs = $NF }
        /^portcullis_store_errors_total\{/ { errors += $NF }
        END { printf "%d %d %d %d %.6f %d\n", ok, refused, other, calls, secs, errors }'
}

build_gateway() {
    if [[ $SKIP_BUILD == 1 ]]; then
        log "SKIP_BUILD=1: using $PORTCULLIS_BIN as is"
        return 0
    fi
    log "building: cargo build --release --bin portcullis (log: $RESULTS/build.log)"
    (cd "$ROOT" && cargo build --release --bin portcullis) >"$RESULTS/build.log" 2>&1 || {
        tail -n 15 "$RESULTS/build.log" | sed 's/^/    /' >&2
        die "cargo build --release failed"
    }
}

# ------------------------------------------------------------- 1. cost --

declare -A URL PIDS_OF
URL[backend]=http://127.0.0.1:$BACKEND_PORT$URL_PATH
URL[nginx]=http://127.0.0.1:$NGINX_PORT$URL_PATH
for m in nolimit local exact approximate; do URL[$m]=http://127.0.0.1:${COST_PORT[$m]}$URL_PATH; done

cost_run() { # TARGET RUN
    local target=$1 run=$2 out=$RESULTS/wrk-cost-$1-$2.txt
    local -a pids backend_pids
    read -r -a pids <<<"${PIDS_OF[$target]}"
    read -r -a backend_pids <<<"${PIDS_OF[backend]}"
    [[ $target == backend ]] && backend_pids=()
    local m0=(0 0 0 0 0 0) m1=(0 0 0 0 0 0) q0 q1
    if [[ -n ${COST_OPS[$target]:-} ]]; then read -r -a m0 <<<"$(gateway_metrics "${COST_OPS[$target]}")"; fi
    q0=$(redis_commands)
    local t0 t1 r0 r1 k0 k1 w0 w1 c0 c1 l0 l1 ns0 ns1
    t0=$(proc_ticks "${pids[@]}"); r0=$(proc_ticks "$REDIS_PID")
    k0=$(proc_ticks "${backend_pids[@]+"${backend_pids[@]}"}")
    w0=$(children_ticks); c0=$(cpu_busy "$CPU_PROXY"); l0=$(cpu_busy "$CPU_LOAD"); ns0=$(date +%s%N)
    taskset -c "$CPU_LOAD" wrk -t"$THREADS" -c"$CONNS" --latency -d"$DURATION" "${URL[$target]}" \
        >"$out" 2>&1 || log "warning: wrk exited non-zero for $target ($out)"
    ns1=$(date +%s%N); c1=$(cpu_busy "$CPU_PROXY"); l1=$(cpu_busy "$CPU_LOAD"); w1=$(children_ticks)
    t1=$(proc_ticks "${pids[@]}"); r1=$(proc_ticks "$REDIS_PID")
    k1=$(proc_ticks "${backend_pids[@]+"${backend_pids[@]}"}")
    q1=$(redis_commands)
    if [[ -n ${COST_OPS[$target]:-} ]]; then read -r -a m1 <<<"$(gateway_metrics "${COST_OPS[$target]}")"; fi
    local requests rps p50 p99 errors
    read -r requests rps p50 p99 errors <<<"$(parse_wrk "$out")"
    RUN_LINE=$(awk -v t="$target" -v r="$run" -v n="$requests" -v rps="$rps" -v p50="$p50" \
        -v p99="$p99" -v e="$errors" -v hz="$CLK_TCK" -v gw=$((t1 - t0)) -v rd=$((r1 - r0)) \
        -v cmds=$((q1 - q0 - 1)) -v calls=$((m1[3] - m0[3])) -v secs="${m1[4]} ${m0[4]}" \
        -v serr=$((m1[5] - m0[5])) \
        -v other=$((c1 + l1 - c0 - l0 - (t1 - t0) - (r1 - r0) - (k1 - k0) - (w1 - w0))) \
        -v load=$((l1 - l0)) -v wall=$(((ns1 - ns0) / 1000000)) 'BEGIN {
            split(secs, s, " ")
            per = (n > 0) ? 1e6 / hz / n : 0
            wt = wall / 1000 * hz
            o = (wt > 0) ? 100 * other / wt : 0
            if (o < 0) o = 0
            mean = (calls > 0) ? sprintf("%.1f", (s[1] - s[2]) * 1e6 / calls) : "nan"
            printf "%s\t%s\t%d\t%s\t%.3f\t%.3f\t%.2f\t%.2f\t%.5f\t%.6f\t%s\t%d\t%d\t%.1f\t%.1f\n",
                t, r, n, rps, p50, p99, gw * per, rd * per,
                (n > 0 ? cmds / n : 0), (n > 0 ? calls / n : 0), mean, serr, e, o,
                (wt > 0 ? 100 * load / wt : 0)
        }')
    local -a f
    IFS=$'\t' read -r -a f <<<"$RUN_LINE"
    log "$(printf '%-11s run %s: %8s req/s  p50 %6s ms  p99 %6s ms  gateway %6s us/req  redis %5s us/req  (%s store calls/req, store errors %s, errors %s, other CPU %s%%)' \
        "${f[0]}" "${f[1]}" "${f[3]}" "${f[4]}" "${f[5]}" "${f[6]}" "${f[7]}" "${f[9]}" "${f[11]}" "${f[12]}" "${f[13]}")"
    RUN_NOISY=0
    if awk -v o="${f[13]}" -v max="$NOISE_PCT" 'BEGIN { exit !(o > max) }'; then
        RUN_NOISY=1
        log "warning: ${f[13]}% of a CPU went to other processes during this run; its numbers are suspect"
    fi
}

part_cost() {
    local -a active=()
    local t config=$WORK/cost.json
    write_config "$config" '<rate-limit-by-key calls="1000000000" renewal-period="60" counter-key="@(context.Request.IpAddress)" />'
    write_config "$WORK/nolimit.json" ''
    cp "$config" "$RESULTS/cost-gateway.json"
    PIDS_OF[backend]=$(nginx_pids "$BACKEND_PID")
    for t in $TARGETS; do
        case $t in
            backend) active+=(backend) ;;
            nginx)
                start_nginx_proxy
                PIDS_OF[nginx]=$(nginx_pids "$PROXY_PID")
                active+=(nginx)
                ;;
            *)
                local c=$config mode=$t
                [[ $t == nolimit ]] && c=$WORK/nolimit.json mode=local
                if start_gateway "cost-$t" "${COST_PORT[$t]}" "${COST_OPS[$t]}" "$c" "$mode" "bench:cost:$t:$STAMP:"; then
                    PIDS_OF[$t]=$GW_PID
                    active+=("$t")
                    [[ $(http_code "${URL[$t]}") == 200 ]] || die "gateway $t does not answer 200 on ${URL[$t]}"
                else
                    log "the $t gateway is left out"
                fi
                ;;
        esac
    done
    printf 'target\trun\trequests\trps\tp50_ms\tp99_ms\tgateway_cpu_us_per_req\tredis_cpu_us_per_req\tredis_cmds_per_req\tstore_calls_per_req\tstore_call_mean_us\tstore_errors\terrors\tother_cpu_pct\tload_cpu_busy_pct\n' \
        >"$RESULTS/cost.tsv"
    wait_quiet
    log "cost: warm-up ($WARMUP per target)"
    for t in "${active[@]}"; do
        taskset -c "$CPU_LOAD" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${URL[$t]}" >/dev/null 2>&1 || true
    done
    local run attempt
    for run in $(seq "$RUNS"); do
        for t in "${active[@]}"; do
            for attempt in $(seq 0 "$NOISE_RETRIES"); do
                cost_run "$t" "$run"
                ((RUN_NOISY && attempt < NOISE_RETRIES)) || break
                [[ $MACHINE_NOTE == quiet ]] || break
                log "retrying this run once the machine is quiet"
                wait_quiet
            done
            echo "$RUN_LINE" >>"$RESULTS/cost.tsv"
        done
    done
    # The accuracy step runs its own gateways on the same CPU.
    for t in "${active[@]}"; do
        case $t in
            nginx) stop_started "$PROXY_PID" ;;
            nolimit | local | exact | approximate) stop_started "${PIDS_OF[$t]}" ;;
        esac
    done
}

# --------------------------------------------------------- 2. accuracy --

part_accuracy() {
    local config mode round limit i prefix
    for limit in $ACC_LIMITS; do
        config=$WORK/accuracy-$limit.json
        write_config "$config" "<rate-limit-by-key calls=\"$limit\" renewal-period=\"$ACC_PERIOD\" counter-key=\"bench-accuracy\" />"
        cp "$config" "$RESULTS/accuracy-gateway-$limit.json"
    done
    printf 'mode\tround\tgateway\tlimit\tperiod_s\tsync_interval_ms\tstart_ms\tdeadline_ms\tadmitted\trefused\tother\tclient_ok\tclient_429\tclient_other\tstore_errors\n' \
        >"$RESULTS/accuracy.tsv"
    wait_quiet
    for round in $(seq "$ACC_ROUNDS"); do
        for limit in $ACC_LIMITS; do
            for mode in $ACC_MODES; do
                accuracy_round "$mode" "$round" "$limit"
            done
        done
    done
}

accuracy_round() { # MODE ROUND LIMIT
    local mode=$1 round=$2 limit=$3 name=$1-$3-$2 i
    # Fresh gateways and fresh Redis keys: nothing counted before.
    local prefix="bench:acc:$STAMP:$name:"
    local -a gw=() m0=() lines=() urls=()
    for i in 0 1 2; do
        start_gateway "acc-$name-$i" "${ACC_PORTS[$i]}" "${ACC_OPS[$i]}" "$WORK/accuracy-$limit.json" "$mode" "$prefix" ||
            die "accuracy: gateway $i ($mode) did not start"
        gw+=("$GW_PID")
        m0+=("$(gateway_metrics "${ACC_OPS[$i]}")")
        urls+=("http://127.0.0.1:${ACC_PORTS[$i]}$URL_PATH")
    done
    python3 "$BENCH_DIR/store_accuracy.py" --period-ms $((ACC_PERIOD * 1000)) --cpu "$CPU_LOAD" \
        --conns "$ACC_CONNS" --out "$RESULTS/wrk-acc-$name" "${urls[@]}" >"$WORK/acc.tsv" ||
        die "accuracy: a wrk failed ($RESULTS/wrk-acc-$name-*.txt)"
    mapfile -t lines <"$WORK/acc.tsv"
    ((${#lines[@]} == 3)) || die "accuracy: expected 3 wrk results, got ${#lines[@]} ($RESULTS/wrk-acc-$name-*.txt)"
    local total=0 per=() a b c
    for i in 0 1 2; do
        read -r -a a <<<"${m0[$i]}"
        read -r -a b <<<"$(gateway_metrics "${ACC_OPS[$i]}")"
        IFS=$'\t' read -r -a c <<<"${lines[$i]}"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\n' "$mode" "$round" "$i" \
            "$limit" "$ACC_PERIOD" "${SYNC_INTERVAL_MS:-default}" "${c[1]}" "${c[2]}" \
            $((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2])) "${c[3]}" "${c[4]}" "${c[5]}" \
            $((b[5] - a[5])) >>"$RESULTS/accuracy.tsv"
        total=$((total + b[0] - a[0]))
        per+=($((b[0] - a[0])))
    done
    log "accuracy $mode, limit $limit, round $round: admitted $total (${per[*]})"
    for i in 0 1 2; do stop_started "${gw[$i]}"; done
}

# ------------------------------------------------------------------- main --

for port in $BACKEND_PORT $NGINX_PORT "${COST_PORT[@]}" "${COST_OPS[@]}" "${ACC_PORTS[@]}" "${ACC_OPS[@]}"; do
    port_free "$port" || die "port $port is already in use"
done
build_gateway
[[ -x $PORTCULLIS_BIN ]] || die "no gateway binary at $PORTCULLIS_BIN"
log "results in $RESULTS"
start_backend
start_redis

[[ " $PARTS " == *" cost "* ]] && part_cost
[[ " $PARTS " == *" accuracy "* ]] && part_accuracy

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host=$(nproc --all) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*: //')"
    echo "wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print "wrk " $2}')"
    echo "redis=redis-server $("$REDIS_SERVER" --version | awk '{print $3}' | sed 's/v=//')"
    echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
    echo "gateway=$("$PORTCULLIS_BIN" --version 2>/dev/null | head -n 1)"
    echo "duration=$DURATION"
    echo "runs=$RUNS"
    echo "conns=$CONNS"
    echo "threads=$THREADS"
    echo "acc_conns=$ACC_CONNS"
    echo "sync_interval_ms=${SYNC_INTERVAL_MS:-200}"
    echo "store_timeout_ms=${STORE_TIMEOUT_MS:-100}"
    echo "machine=$MACHINE_NOTE"
    echo "noise_pct=$NOISE_PCT"
    echo "load_avg=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/meta.env"

python3 "$BENCH_DIR/store_report.py" "$RESULTS" | tee "$RESULTS/summary.md"
log "raw results: $RESULTS (summary.md, cost.tsv, accuracy.tsv, wrk-*.txt)"
