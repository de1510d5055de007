# Helpers shared by the load benchmarks (bench/run.sh, bench/store.sh):
# sourced, not run. The sourcing script sets BENCH_DIR, RESULTS (its results
# directory), WORK (a temporary directory, removed by `cleanup`), CPU_PROXY and
# CPU_LOAD (the CPUs of the proxy under test and of the load), and, for the
# nginx servers, BACKEND_PORT, NGINX_PORT and URL_PATH; it installs the traps
# (`trap cleanup EXIT`). Every process it starts goes into STARTED_PIDS, which
# `cleanup` stops.
# shellcheck shell=bash

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${BENCH_LOG_NAME:-bench}" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

STARTED_PIDS=()
cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

# ---------------------------------------------------------------- helpers --

# utime + stime in clock ticks, summed over the given processes. /proc/PID/stat
# covers every thread of the process, including threads that have exited.
proc_ticks() {
    local total=0 pid stat rest
    local -a f
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || continue
        rest=${stat##*) }    # skip "pid (comm) ": comm may hold spaces
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))   # fields 14 and 15
    done
    echo "$total"
}

# Busy clock ticks of one CPU (everything but idle and iowait), /proc/stat.
cpu_busy() {
    local cpu=$1 name user nice system _idle _iowait irq softirq steal _rest
    while read -r name user nice system _idle _iowait irq softirq steal _rest; do
        if [[ $name == "cpu$cpu" ]]; then
            echo $((user + nice + system + irq + softirq + steal))
            return
        fi
    done </proc/stat
}

# Percentage of all CPUs busy over one second.
system_busy_pct() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," ");
        t=y[2]-x[2]; printf "%d\n", (t > 0 ? 100*(y[1]-x[1])/t : 0)}'
}

# An nginx master and its workers.
nginx_pids() {
    local -a workers
    mapfile -t workers < <(pgrep -P "$1" || true)
    echo "$1" "${workers[@]+"${workers[@]}"}"
}

vmrss_kib() {
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# http_code URL: the status of a GET (with the header WAIT_HTTP_HEADER, if set).
http_code() {
    local -a h=()
    [[ -n ${WAIT_HTTP_HEADER:-} ]] && h=(-H "$WAIT_HTTP_HEADER")
    curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${h[@]+"${h[@]}"}" "$1" 2>/dev/null || true
}

# wait_http URL PID SECONDS: wait for a 200 from URL while PID lives.
# Returns 0 on success, 1 on timeout, 2 if PID died.
wait_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 2
        [[ $(http_code "$url") == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

port_free() {
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# Wait for the machine to be quiet: numbers taken next to a cargo build are
# meaningless. Gives up after QUIET_WAIT seconds and marks the results.
MACHINE_NOTE="quiet"
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) busy quiet=0
    [[ $MACHINE_NOTE == quiet ]] || return 0   # gave up waiting once already
    while ((quiet < QUIET_FOR)); do
        busy=$(system_busy_pct)   # takes 1 s
        if ((busy <= 10)); then
            quiet=$((quiet + 1))
            continue
        fi
        quiet=0
        if ((SECONDS >= deadline)); then
            MACHINE_NOTE="BUSY: the machine was still ${busy}% busy with other processes after waiting ${QUIET_WAIT} s for it to calm down"
            log "warning: machine still ${busy}% busy after ${QUIET_WAIT}s; running anyway without further waits, numbers are suspect"
            ps -eo pid,pcpu,comm --sort=-pcpu | head -6 >&2
            return
        fi
        log "machine ${busy}% busy (other builds?), waiting for ${QUIET_FOR} quiet seconds..."
        sleep 2
    done
    log "machine quiet for ${QUIET_FOR} s"
}

# ---------------------------------------------------------------- servers --

BODY='{"id":"item-0001","name":"bench item","price":12.5,"tags":["load","test"],"in_stock":true,"rev":100}'

write_nginx_common() { # NAME
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $WORK/$1-tmp/body;
    proxy_temp_path $WORK/$1-tmp/proxy;
    fastcgi_temp_path $WORK/$1-tmp/fastcgi;
    uwsgi_temp_path $WORK/$1-tmp/uwsgi;
    scgi_temp_path $WORK/$1-tmp/scgi;
EOF
}

start_nginx() { # NAME CPU -> sets NGINX_MASTER
    mkdir -p "$WORK/$1-tmp"
    taskset -c "$2" nginx -p "$WORK/" -c "$WORK/$1.conf" -e "$WORK/$1-error.log" \
        >"$RESULTS/$1.log" 2>&1 &
    NGINX_MASTER=$!
    STARTED_PIDS+=("$NGINX_MASTER")
}

# haproxy as a reverse proxy, one thread, backend connections reused (the
# counterpart of the nginx proxy: `http-reuse always`, no logging).
start_haproxy() {
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    pidfile $WORK/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    http-reuse always
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT backlog 4096
    default_backend backend
backend backend
    server b1 127.0.0.1:$BACKEND_PORT maxconn 1000
EOF
    taskset -c "$CPU_PROXY" haproxy -db -f "$WORK/haproxy.cfg" >"$RESULTS/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    STARTED_PIDS+=("$HAPROXY_PID")
    if ! wait_http "http://127.0.0.1:$HAPROXY_PORT$URL_PATH" "$HAPROXY_PID" 10; then
        log "haproxy SKIPPED: it did not start: $(tail -n 5 "$RESULTS/haproxy.log")"
        HAPROXY_PID=""
        return 1
    fi
}

start_backend() {
    {
        write_nginx_common backend
        cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
EOF
    } >"$WORK/backend.conf"
    start_nginx backend "$CPU_LOAD"
    BACKEND_PID=$NGINX_MASTER
    wait_http "http://127.0.0.1:$BACKEND_PORT$URL_PATH" "$BACKEND_PID" 10 ||
        die "backend nginx did not start: $(cat "$WORK/backend-error.log" "$RESULTS/backend.log" 2>/dev/null)"
}

start_nginx_proxy() {
    {
        write_nginx_common proxy
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$WORK/proxy.conf"
    start_nginx proxy "$CPU_PROXY"
    PROXY_PID=$NGINX_MASTER
    wait_http "http://127.0.0.1:$NGINX_PORT$URL_PATH" "$PROXY_PID" 10 ||
        die "nginx proxy did not start: $(cat "$WORK/proxy-error.log" "$RESULTS/proxy.log" 2>/dev/null)"
}


# Parse wrk --latency output: requests rps p50_ms p99_ms errors
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return "nan"
        }
        /requests in/           { req = $1 }
        /^Requests\/sec:/       { rps = $2 }
        $1 == "50%"             { p50 = ms($2) }
        $1 == "99%"             { p99 = ms($2) }
        /Socket errors:/        { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx/        { err += $NF }
        END { printf "%d %s %.3f %.3f %d\n", req, rps == "" ? "nan" : rps, p50, p99, err }
    ' "$1"
}


# utime + stime of this shell's reaped children (fields 16 and 17): how much
# CPU the wrk we just waited for used.
children_ticks() {
    local stat rest
    local -a f
    stat=$(<"/proc/$$/stat")
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    echo $((f[13] + f[14]))
}

