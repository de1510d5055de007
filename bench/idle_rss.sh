#!/usr/bin/env bash
# RSS a gateway holds with 10,000 idle keep-alive connections, sampled at
# READY (every connection has had its answer) and SETTLE seconds later (after
# the connections parked and the allocator could give memory back).
#
#   bench/idle_rss.sh BINARY [VAR=value ...]   (e.g. MIMALLOC_PURGE_DELAY=0,
#                                               LD_PRELOAD=/usr/lib/.../libmimalloc.so.2)
#
# Environment: N (10000), SETTLE (4), RUNTIME (tokio). Needs a backend on
# 127.0.0.1:18000 (bench/gateway.json's serviceUrl): any HTTP server answering
# 200, e.g. bench/run.sh's nginx backend. The gateway runs on CPU 0.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${1:?usage: bench/idle_rss.sh BINARY [VAR=value ...]}
shift
N=${N:-10000}
SETTLE=${SETTLE:-4}
RUNTIME=${RUNTIME:-tokio}
ulimit -n 65536 2>/dev/null || true
out=$(mktemp)
env "$@" PORTCULLIS_LOG=warn taskset -c 0 "$BIN" gateway --runtime "$RUNTIME" \
    --config "$BENCH_DIR/gateway.json" --listen 127.0.0.1:18012 --ops-listen 127.0.0.1:19099 \
    >/dev/null 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null || true; rm -f "$out"' EXIT
sleep 1.5
rss() { awk '/^VmRSS/{print $2}' "/proc/$gw/status"; }
base=$(rss)
python3 "$BENCH_DIR/idle_conns.py" --port 18012 -n "$N" --path /bench/item --hold $((SETTLE + 4)) >"$out" 2>&1 &
py=$!
until grep -q '^READY' "$out" 2>/dev/null; do
    kill -0 "$py" 2>/dev/null || { cat "$out" >&2; exit 1; }
    sleep 0.05
done
ready=$(rss)
sleep "$SETTLE"
settled=$(rss)
wait "$py" || true
echo "baseline ${base} KiB; at READY ${ready} KiB; ${SETTLE} s later ${settled} KiB:" \
    "$(awk -v a="$base" -v b="$settled" -v n="$N" 'BEGIN { printf "%.2f KiB per idle connection", (b - a) / n }')"
