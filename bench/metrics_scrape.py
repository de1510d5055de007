#!/usr/bin/env python3
"""How big /metrics grows and whether a scrape stalls traffic (issue 20, point 6).

Generates a configuration of APIS APIs x OPS operations, starts nginx as the
backend and the gateway binary given, spreads traffic over every API and
operation with wrk (a Lua script picking paths) for WARM seconds, then, with
wrk still running, scrapes /metrics SCRAPES times while a prober sends one
request after another on its own connection. Prints the page's size, the time
to fetch it, the number of sample lines (series), the gateway's RSS, and the
prober's longest request during the scrapes and outside them.

    python3 bench/metrics_scrape.py --gateway target/release/portcullis \
        [--apis 10000] [--ops 10] [--warm 10] [-- extra gateway args]

Timings are wall-clock: on a busy machine, compare runs made back to back.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, apis, ops, backend_port):
    config = {
        "revision": 1,
        "apis": [
            {
                "id": f"api-{a:05}",
                "displayName": f"API {a}",
                "path": f"a{a}",
                "serviceUrl": f"http://127.0.0.1:{backend_port}",
                "subscriptionRequired": False,
                "operations": [
                    {
                        "id": f"op-{o:02}",
                        "displayName": f"op {o}",
                        "method": "GET",
                        "urlTemplate": f"/o{o}",
                    }
                    for o in range(ops)
                ],
            }
            for a in range(apis)
        ],
        "backends": [],
        "namedValues": [],
    }
    with open(path, "w") as f:
        json.dump(config, f)


def start_nginx(work, port):
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"""daemon off; worker_processes 1; pid {work}/nginx.pid;
error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
    location / {{ return 200 "ok\\n"; }} }} }}
"""
        )
    return subprocess.Popen(["nginx", "-c", conf, "-p", work])


def wait_port(port, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {port} never opened")


def http_get(port, path, timeout=30):
    """One GET on a fresh connection: (status, body bytes, seconds)."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        data += b
    s.close()
    took = time.perf_counter() - t0
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, took


class Prober(threading.Thread):
    """Sequential keep-alive requests; keeps (start, latency) of each."""

    def __init__(self, port, apis, ops):
        super().__init__(daemon=True)
        self.port, self.apis, self.ops = port, apis, ops
        self.samples = []
        self.stop = False

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port), 30)
        while not self.stop:
            path = f"/a{random.randrange(self.apis)}/o{random.randrange(self.ops)}"
            t0 = time.perf_counter()
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf or not buf.endswith(b"ok\n"):
                b = s.recv(65536)
                if not b:
                    return
                buf += b
            self.samples.append((t0, time.perf_counter() - t0))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--apis", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=10)
    ap.add_argument("--warm", type=int, default=10)
    ap.add_argument("--scrapes", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("extra", nargs="*", help="extra gateway arguments (after --)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="metrics-scrape-")
    procs = []
    try:
        backend, gw, ops_port = free_port(), free_port(), free_port()
        write_config(f"{work}/gateway.json", a.apis, a.ops, backend)
        procs.append(start_nginx(work, backend))
        gateway = subprocess.Popen(
            [a.gateway, "gateway", "--config", f"{work}/gateway.json",
             "--listen", f"127.0.0.1:{gw}", "--ops-listen", f"127.0.0.1:{ops_port}",
             *a.extra],
            stdout=subprocess.DEVNULL, stderr=open(f"{work}/gateway.err", "w"))
        procs.append(gateway)
        wait_port(backend)
        wait_port(ops_port)
        while http_get(ops_port, "/readyz")[0] != 200:
            time.sleep(0.2)
        with open(f"{work}/paths.lua", "w") as f:
            f.write(
                f"math.randomseed(os.time())\n"
                f"request = function()\n"
                f"  return wrk.format('GET', '/a' .. math.random(0, {a.apis - 1}) .."
                f" '/o' .. math.random(0, {a.ops - 1}))\nend\n"
            )
        wrk_cmd = ["wrk", "-t1", f"-c{a.connections}", "-s", f"{work}/paths.lua",
                   f"http://127.0.0.1:{gw}"]
        warm = subprocess.run(wrk_cmd[:1] + [f"-d{a.warm}s"] + wrk_cmd[1:],
                              capture_output=True, text=True)
        reqs = [l for l in warm.stdout.splitlines() if "requests in" in l]
        print(f"warm-up: {reqs[0].strip() if reqs else warm.stdout}")

        load = subprocess.Popen(wrk_cmd[:1] + ["-d600s"] + wrk_cmd[1:],
                                stdout=subprocess.DEVNULL)
        procs.append(load)
        prober = Prober(gw, a.apis, a.ops)
        prober.start()
        time.sleep(2)
        windows = []
        for i in range(a.scrapes):
            t0 = time.perf_counter()
            status, body, took = http_get(ops_port, "/metrics", timeout=120)
            windows.append((t0, t0 + took))
            series = sum(1 for l in body.split(b"\n") if l and not l.startswith(b"#"))
            folded = [l for l in body.split(b"\n")
                      if l.startswith(b"portcullis_metrics_series_folded_total ")]
            print(f"scrape {i + 1}: status {status}, {len(body)} bytes, {took:.3f} s, "
                  f"{series} series, rss {rss_kb(gateway.pid) // 1024} MiB"
                  + (f", {folded[0].decode()}" if folded else ""))
            time.sleep(2)
        prober.stop = True
        prober.join(10)
        during = [l for t, l in prober.samples if any(s <= t <= e for s, e in windows)]
        outside = [l for t, l in prober.samples if not any(s - 0.5 <= t <= e + 0.5 for s, e in windows)]
        fmt = lambda xs: (f"{len(xs)} requests, longest {max(xs) * 1000:.1f} ms"
                          if xs else "no requests")
        print(f"prober during scrapes: {fmt(during)}")
        print(f"prober outside scrapes: {fmt(outside)}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
