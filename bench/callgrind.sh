#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: stable on a busy
# machine, unlike wall-clock or CPU time. See BENCHMARKS.md.
#
#   bench/callgrind.sh [BINARY]        both runtimes, keep-alive
#   CONNECTION=close bench/callgrind.sh [BINARY]   a new connection per request
#
# Environment: REQUESTS (2000), WARMUP_REQUESTS (200), RUNTIMES ("tokio smol"),
# CONNECTION (keep-alive, or close: each request on a connection of its own,
# `Connection: close`, so accepting and closing are counted too).
# Needs nginx (the backend) and valgrind. The gateway runs under callgrind,
# uninstrumented; after the warm-up, instrumentation is switched on, REQUESTS
# requests are sent one after another on one keep-alive connection, and the
# counts are dumped: instructions / REQUESTS is the figure (everything the
# process did meanwhile, the runtime's idle work included).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
REQUESTS=${REQUESTS:-2000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-200}
RUNTIMES=${RUNTIMES:-tokio smol}
BACKEND_PORT=18100
GATEWAY_PORT=18102
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/tmp"
cat >"$WORK/backend.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / { default_type application/json; return 200 '{"id":1,"name":"bench item","tags":["a","b"],"price":12.5,"stock":100,"ok":true}'; }
    }
}
CONF
nginx -p "$WORK/" -c "$WORK/backend.conf" -e "$WORK/error.log" &
PIDS+=($!)
sed "s/127.0.0.1:18000/127.0.0.1:$BACKEND_PORT/" "$BENCH_DIR/gateway.json" >"$WORK/gateway.json"

CONNECTION=${CONNECTION:-keep-alive}
client() { # PORT COUNT: COUNT GETs, on one keep-alive connection or one each
    python3 - "$1" "$2" "$CONNECTION" <<'PY'
import http.client, sys
port, count, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(count):
    if mode == "close":
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/bench/item", headers={"Connection": "close"})
    else:
        c.request("GET", "/bench/item")
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    if mode == "close":
        c.close()
PY
}

wait_up() {
    for _ in $(seq 1 600); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/bench/item', timeout=2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

wait_up "$BACKEND_PORT"
for rt in $RUNTIMES; do
    out="$WORK/cg.$rt"
    PORTCULLIS_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out" "$BIN" gateway --runtime "$rt" \
        --config "$WORK/gateway.json" --listen "127.0.0.1:$GATEWAY_PORT" \
        --ops-listen "127.0.0.1:18109" >"$WORK/gw-$rt.log" 2>&1 &
    pid=$!
    wait_up "$GATEWAY_PORT" || { cat "$WORK/gw-$rt.log"; exit 1; }
    client "$GATEWAY_PORT" "$WARMUP_REQUESTS"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    client "$GATEWAY_PORT" "$REQUESTS"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    total=0
    for f in "$out"*; do
        # The dump's "totals:" line: its instructions.
        n=$(grep -m1 '^totals:' "$f" 2>/dev/null | awk '{print $2}')
        total=$((total + ${n:-0}))
    done
    [[ -n ${KEEP_DIR:-} ]] && cp "$out"* "$KEEP_DIR/"
    echo "$rt: $((total / REQUESTS)) instructions per request ($REQUESTS requests, $CONNECTION)"
done
