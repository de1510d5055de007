#!/usr/bin/env bash
# What the container costs: CPU per request through the container's published
# port next to the bare binary, in the same run (same backend, same wrk), plus
# the gateway container's idle memory.
#
#   deploy/bench-container.sh
#
# Environment: IMAGE (portcullis:local), BIN (target/release/portcullis, the
# binary the image was built from), DURATION (10s), CONNS (16), RUNS (3).
# Both gateways run one worker pinned to CPU 0; wrk and the sample backend
# run on CPU 1. The published port goes through Docker's userland proxy
# (docker-proxy) when the daemon uses it: its CPU is counted separately.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-portcullis:local}
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
RUNS=${RUNS:-3}
BACKEND_PORT=18400
BARE_PORT=18401
CONTAINER_PORT=18402
CLK_TCK=$(getconf CLK_TCK)
NAME=pcbench-$$

for tool in wrk taskset curl docker; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/portcullis-bench-container.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    docker rm -f -v "$NAME" >/dev/null 2>&1 || true
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

config() { # config BACKEND_HOST
    cat <<JSON
{"revision":1,"apis":[{"id":"bench","displayName":"bench","path":"bench","serviceUrl":"http://$1:$BACKEND_PORT",
"subscriptionRequired":false,"operations":[{"id":"any","method":"GET","urlTemplate":"/*"}]}],
"backends":[],"namedValues":[]}
JSON
}

ticks() { # utime + stime of the processes, clock ticks
    local total=0 pid rest
    local -a f
    for pid in "$@"; do
        rest=$(<"/proc/$pid/stat") || continue
        rest=${rest##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

wait_200() {
    for _ in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]] && return 0
        sleep 0.1
    done
    echo "no 200 from $1" >&2
    return 1
}

# The backend listens on every interface: the container reaches it as
# host.docker.internal (the host's address on the default bridge).
taskset -c 1 "$BIN" sample-backend --listen "0.0.0.0:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
config 127.0.0.1 >"$WORK/bare.json"
config host.docker.internal >"$WORK/container.json"
chmod 644 "$WORK"/*.json

PORTCULLIS_LOG=warn taskset -c 0 "$BIN" gateway --config "$WORK/bare.json" --workers 1 \
    --listen "127.0.0.1:$BARE_PORT" --ops-listen 127.0.0.1:0 >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")

docker run -d --name "$NAME" --read-only --cpuset-cpus 0 \
    --add-host host.docker.internal:host-gateway \
    -e PORTCULLIS_LOG=warn -e PORTCULLIS_WORKERS=1 \
    -e PORTCULLIS_CONFIG=/var/lib/portcullis/gateway.json \
    -v "$WORK/container.json:/var/lib/portcullis/gateway.json:ro" \
    -p "127.0.0.1:$CONTAINER_PORT:8080" "$IMAGE" gateway >/dev/null
CONTAINER_PID=$(docker inspect -f '{{.State.Pid}}' "$NAME")
PROXY_PIDS=$(pgrep -f "docker-proxy .*-host-port $CONTAINER_PORT" || true)

wait_200 "http://127.0.0.1:$BARE_PORT/bench/hello"
wait_200 "http://127.0.0.1:$CONTAINER_PORT/bench/hello"
sleep 2
echo "idle container: $(docker stats --no-stream --format '{{.MemUsage}}' "$NAME") (docker stats), VmRSS $(awk '/^VmRSS/{print $2, $3}' "/proc/$CONTAINER_PID/status")"
echo "idle bare binary: VmRSS $(awk '/^VmRSS/{print $2, $3}' "/proc/$BARE_PID/status")"

measure() { # measure LABEL PORT PID [PROXY_PIDS...]
    local label=$1 port=$2 pid=$3
    shift 3
    local url="http://127.0.0.1:$port/bench/hello"
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    local g0 p0 g1 p1 out reqs
    g0=$(ticks "$pid")
    p0=$(ticks "$@")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "$url")
    g1=$(ticks "$pid")
    p1=$(ticks "$@")
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    awk -v l="$label" -v r="$reqs" -v g=$((g1 - g0)) -v p=$((p1 - p0)) -v hz="$CLK_TCK" \
        -v rps="$(awk '/Requests\/sec/{print $2}' <<<"$out")" 'BEGIN {
        printf "%-10s %9d req %9.0f req/s  gateway %6.1f us/req  docker-proxy %6.1f us/req\n",
            l, r, rps, g * 1e6 / hz / r, p * 1e6 / hz / r }'
}

for run in $(seq "$RUNS"); do
    echo "run $run"
    measure bare "$BARE_PORT" "$BARE_PID"
    # shellcheck disable=SC2086 # one pid per word
    measure container "$CONTAINER_PORT" "$CONTAINER_PID" $PROXY_PIDS
done
