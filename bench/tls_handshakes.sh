#!/usr/bin/env bash
# TLS handshakes per second and server CPU per handshake, full and resumed,
# for the gateway's HTTPS listener (both runtimes) next to nginx with the same
# certificate, versions and cipher suites. See BENCHMARKS.md.
#
#   bench/tls_handshakes.sh [BINARY]
#
# Environment: SECONDS_PER_RUN (10), RUNTIMES ("tokio smol"), VERSIONS
# ("tls1_3 tls1_2"), KEY_TYPE (`ec`: P-256,
# or `rsa`: RSA 2048, whose signature makes full handshakes far dearer),
# MODE (how the gateway gets its certificate: `files`, the default, with
# --tls-cert/--tls-key; `hostnames`, the same certificate as the custom
# hostname `localhost` of the configuration file and no --tls-cert, so every
# handshake takes the ClientHello-first path that picks a hostname's rustls
# configuration; `negotiate`, that hostname with negotiateClientCertificate,
# the client sending none), WITH_NGINX (1; 0 leaves nginx out, whose rows
# do not depend on MODE; not NGINX, which nginx reads for inherited sockets).
# Needs openssl (the client: `openssl s_time`), python3 and nginx.
# Every server runs one worker (gateway --workers 1, nginx worker_processes 1).
# Each run opens connections one after another for SECONDS_PER_RUN: `-new`
# makes a full handshake every time, `-reuse` resumes the first session
# (TLS 1.2: a ticket; TLS 1.3: see resumed_tls13 below). Each connection sends `GET /` and
# reads the small 404, so a TLS 1.3 client has its ticket before it closes.
# CPU is the server's user+system time over the run (from /proc), divided by
# the connections made: on a busy machine wall-clock rates move, CPU per
# handshake much less.
# Every server also gets a `plain` row: the same connect, `GET /`, 404 and
# close over plain HTTP (the gateway's HTTP listener, an nginx plain listener),
# so the handshake alone is a TLS row minus the plain row. A second table puts
# full, resumed and plain side by side with two ratios: full/resumed as
# measured, and (full - plain)/(resumed - plain), the handshakes alone.
# `openssl s_time` sends no SNI, so in the hostnames modes `localhost` is also
# the defaultSslBinding (the TLS 1.3 resumed client sends SNI `localhost`).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
RUNTIMES=${RUNTIMES:-tokio smol}
VERSIONS=${VERSIONS:-tls1_3 tls1_2}
KEY_TYPE=${KEY_TYPE:-ec}
MODE=${MODE:-files}
WITH_NGINX=${WITH_NGINX:-1}
GATEWAY_PORT=18181
NGINX_PORT=18182
GATEWAY_OPS_PORT=18183
GATEWAY_HTTP_PORT=18184
NGINX_PLAIN_PORT=18185
case $MODE in
files | hostnames | negotiate) ;;
*)
    echo "MODE must be files, hostnames or negotiate, not $MODE" >&2
    exit 2
    ;;
esac
# The suites both servers offer (rustls' ring defaults).
if [[ $KEY_TYPE == rsa ]]; then
    TLS12_CIPHERS=ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305
else
    TLS12_CIPHERS=ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305
fi
TLS13_SUITES=TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# One certificate for localhost, signed by a throwaway CA.
newkey() {
    if [[ $KEY_TYPE == rsa ]]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    fi
}
newkey "$WORK/ca.key"
openssl req -x509 -new -key "$WORK/ca.key" -subj "/CN=bench CA" -days 2 -out "$WORK/ca.pem" 2>/dev/null
newkey "$WORK/server.key"
openssl req -new -key "$WORK/server.key" -subj "/CN=localhost" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null

mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<CONF
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
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/server.pem;
        ssl_certificate_key $WORK/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $TLS12_CIPHERS;
        ssl_conf_command Ciphersuites $TLS13_SUITES;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / { return 404; }
    }
    server {
        listen 127.0.0.1:$NGINX_PLAIN_PORT;
        location / { return 404; }
    }
}
CONF
# The gateway's configuration: no APIs (every request is a 404); in the
# hostnames modes the certificate and the hostname `localhost` serving it.
python3 - "$MODE" "$WORK/server.pem" "$WORK/server.key" >"$WORK/gateway.json" <<'PY'
import json, sys
mode, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
doc = {"revision": 1, "apis": [], "backends": [], "namedValues": [], "subscriptions": []}
if mode != "files":
    doc["certificates"] = [{
        "id": "bench",
        "certificatePem": open(cert).read(),
        "privateKeyPem": open(key).read(),
    }]
    doc["hostnames"] = [{
        "hostname": "localhost",
        "certificateId": "bench",
        "defaultSslBinding": True,
        "negotiateClientCertificate": mode == "negotiate",
    }]
print(json.dumps(doc))
PY

cpu_ticks() { # PID...: user+system clock ticks of these processes
    local total=0 p
    for p in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat, after the ")" of the command name.
        read -r -a f <<<"$(sed 's/.*) //' "/proc/$p/stat")"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "port $1 never opened" >&2
    exit 1
}

measure() { # NAME PORT PIDS...
    local name=$1 port=$2
    shift 2
    local version mode before after out conns ticks
    for version in $VERSIONS; do
        for mode in new reuse; do
            if [[ $version == tls1_3 && $mode == reuse ]]; then
                resumed_tls13 "$name" "$port" "$@"
                continue
            fi
            before=$(cpu_ticks "$@")
            out=$(openssl s_time -connect "127.0.0.1:$port" -"$version" -"$mode" \
                -CAfile "$WORK/ca.pem" -www / -time "$SECONDS_PER_RUN" 2>&1 || true)
            after=$(cpu_ticks "$@")
            conns=$(grep -oE '[0-9]+ connections in [0-9.]+ real' <<<"$out" | tail -1)
            if [[ -z $conns ]]; then
                echo "$name $version $mode: no result: $out" >&2
                continue
            fi
            ticks=$((after - before))
            row "$name" "$version" "$([[ $mode == new ]] && echo full || echo resumed)" \
                "${conns%% *}" "${conns%% *}" "$(awk '{print $4}' <<<"$conns")" "$ticks"
        done
    done
}

# The rows' CPU figures, by "NAME|VERSION|KIND", for the ratio table.
declare -A CPU=()
NAMES=()

row() { # NAME VERSION KIND CONNECTIONS CONNECTIONS_TIMED SECONDS TICKS
    local name=$1 version=$2 kind=$3 conns=$4 timed=$5 secs=$6 ticks=$7 label
    label=$kind
    # The TLS 1.3 resumed row says how many connections did resume.
    [[ $version == tls1_3 && $kind == resumed ]] && label="resumed (${RESUMED:-?} of $timed)"
    [[ $kind == plain ]] && label="none (plain HTTP)"
    CPU["$name|$version|$kind"]=$(awk -v c="$conns" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f", (c > 0) ? t / hz / c * 1e6 : 0 }')
    [[ " ${NAMES[*]} " == *" $name "* ]] || NAMES+=("$name")
    awk -v name="$name" -v v="${version/plain/-}" -v k="$label" -v c="$timed" -v s="$secs" -v cpu="${CPU["$name|$version|$kind"]}" \
        'BEGIN { printf "| %s | %s | %s | %.0f | %s |\n", name, v, k, c / s, cpu }'
}

# The same connection, request, answer and close without TLS, from a Python
# client like the TLS 1.3 resumed one: the part of every row that is not the
# handshake.
plain() { # NAME PORT PIDS...
    local name=$1 port=$2 before after out count secs
    shift 2
    before=$(cpu_ticks "$@")
    out=$(python3 - "$port" "$SECONDS_PER_RUN" <<'PY'
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
start, count = time.monotonic(), 0
while time.monotonic() - start < seconds:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    count += 1
print(count, time.monotonic() - start)
PY
    )
    after=$(cpu_ticks "$@")
    read -r count secs <<<"$out"
    row "$name" plain plain "$count" "$count" "$secs" "$((after - before))"
}

# `openssl s_time -reuse` keeps the session before a TLS 1.3 ticket arrives,
# so it never resumes TLS 1.3: those runs use a Python (OpenSSL) client that
# reads each answer, keeps the first connection's session and resumes it on
# every following connection, one after another for SECONDS_PER_RUN.
resumed_tls13() { # NAME PORT PIDS...
    local name=$1 port=$2 before after out ticks
    shift 2
    before=$(cpu_ticks "$@")
    out=$(python3 - "$port" "$WORK/ca.pem" "$SECONDS_PER_RUN" <<'PY'
import socket, ssl, sys, time
port, ca, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
def one(session=None):
    tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                          server_hostname="localhost", session=session)
    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        while tls.recv(4096):
            pass
    except ssl.SSLEOFError:
        pass
    kept, reused = tls.session, tls.session_reused
    tls.close()
    return kept, reused
session, _ = one()
start, count, reused = time.monotonic(), 0, 0
while time.monotonic() - start < seconds:
    reused += one(session)[1]
    count += 1
print(count, time.monotonic() - start, reused)
PY
    )
    after=$(cpu_ticks "$@")
    read -r count secs reused <<<"$out"
    # CPU over every connection, the first (full) one too.
    RESUMED=$reused row "$name" tls1_3 resumed "$((count + 1))" "$count" "$secs" "$((after - before))"
}

ratios() { # the second table, from CPU
    local name version full resumed base
    echo
    echo "| server | version | full µs | resumed µs | plain µs | full/resumed | (full−plain)/(resumed−plain) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for name in "${NAMES[@]}"; do
        base=${CPU["$name|plain|plain"]:-}
        for version in $VERSIONS; do
            full=${CPU["$name|$version|full"]:-}
            resumed=${CPU["$name|$version|resumed"]:-}
            [[ -n $full && -n $resumed && -n $base ]] || continue
            awk -v n="$name" -v v="$version" -v f="$full" -v r="$resumed" -v p="$base" 'BEGIN {
                alone = (r > p) ? sprintf("%.1f×", (f - p) / (r - p)) : "n/a (resumed ≤ plain)";
                printf "| %s | %s | %d | %d | %d | %.1f× | %s |\n", n, v, f, r, p, (r > 0) ? f / r : 0, alone
            }'
        done
    done
}

echo "| server | version | handshake | handshakes/s | server CPU µs/handshake |"
echo "| --- | --- | --- | --- | --- |"
if [[ $WITH_NGINX == 1 ]]; then
    nginx -p "$WORK/" -c "$WORK/nginx.conf" -e "$WORK/error.log" &
    master=$!
    PIDS+=("$master")
    wait_port $NGINX_PORT
    NGINX_PIDS="$master $(pgrep -d ' ' -P "$master")"
    # shellcheck disable=SC2086
    plain nginx $NGINX_PLAIN_PORT $NGINX_PIDS
    # shellcheck disable=SC2086
    measure nginx $NGINX_PORT $NGINX_PIDS
fi

if [[ $MODE == files ]]; then
    CERT_ARGS=(--tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key")
    SUFFIX=
else
    CERT_ARGS=()
    SUFFIX=", $MODE"
fi

for rt in $RUNTIMES; do
    "$BIN" gateway --runtime "$rt" --workers 1 --config "$WORK/gateway.json" \
        --listen 127.0.0.1:$GATEWAY_HTTP_PORT --ops-listen 127.0.0.1:$GATEWAY_OPS_PORT \
        --https-listen 127.0.0.1:$GATEWAY_PORT "${CERT_ARGS[@]}" 2>"$WORK/gateway-$rt.log" &
    pid=$!
    PIDS+=("$pid")
    wait_port $GATEWAY_PORT
    wait_port $GATEWAY_HTTP_PORT
    plain "portcullis ($rt$SUFFIX)" $GATEWAY_HTTP_PORT "$pid"
    measure "portcullis ($rt$SUFFIX)" $GATEWAY_PORT "$pid"
    # The gateway's own count, to check the clients' view of resumption.
    curl -s "http://127.0.0.1:$GATEWAY_OPS_PORT/metrics" | grep '^portcullis_tls_handshake' | sed 's/^/# /' >&2
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done

ratios
