#!/usr/bin/env python3
"""One round of bench/store.sh's accuracy step: wrk against several gateways at
once, for one rate-limit window.

    store_accuracy.py --period-ms 10000 --cpu 1 --conns 16 --out PREFIX URL...

Rate windows are 12 buckets of period/12, aligned to the Unix epoch on Redis's
clock (exact mode) or starting at a gateway's first counted call (in process).
A run that outlasts the window of its first bucket sees that bucket's calls
slide out and a second batch admitted, so the round starts LEAD_MS after a
bucket boundary B (on this machine's clock, which is Redis's) and every wrk
stops sending at B + period - TAIL_MS (bench/store_count.lua). All wrk
processes are started together, pinned to --cpu.

Prints one tab-separated line per URL, in order:
    index  start_ms  deadline_ms  ok  limited  other
(start_ms: when its wrk was started; ok/limited/other: answers wrk read before
the deadline, by status 200, 429, other). wrk's output goes to PREFIX-<i>.txt.
Python 3 stdlib only.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time

LEAD_MS = 30
TAIL_MS = 30
BUCKETS = 12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--period-ms", type=int, required=True)
    ap.add_argument("--cpu", default="1")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="prefix of the wrk output files")
    ap.add_argument("urls", nargs="+")
    a = ap.parse_args()

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_count.lua")
    bucket = a.period_ms / BUCKETS
    # The next bucket boundary at least 300 ms away (time to spawn everything).
    now = time.time() * 1000
    boundary = math.ceil((now + 300) / bucket) * bucket
    start = boundary + LEAD_MS
    deadline = int(boundary + a.period_ms - TAIL_MS)
    # wrk's -d is whole seconds; it only has to outlast the deadline.
    seconds = math.ceil((deadline - start) / 1000) + 1

    time.sleep(max(0.0, (start - time.time() * 1000) / 1000))
    procs = []
    for i, url in enumerate(a.urls):
        out = open(f"{a.out}-{i}.txt", "w")
        cmd = ["taskset", "-c", a.cpu, "wrk", f"-t{a.threads}", f"-c{a.conns}",
               f"-d{seconds}s", "-s", script, url, "--", str(deadline)]
        started = int(time.time() * 1000)
        procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out, started))
    rc = 0
    for i, (p, out, started) in enumerate(procs):
        p.wait()
        out.close()
        text = open(f"{a.out}-{i}.txt").read()
        m = re.search(r"COUNTS ok=(\d+) limited=(\d+) other=(\d+)", text)
        if p.returncode != 0 or not m:
            print(f"store_accuracy: wrk against {a.urls[i]} failed (exit {p.returncode}); "
                  f"see {a.out}-{i}.txt", file=sys.stderr)
            rc = 1
            m = None
        ok, limited, other = (m.groups() if m else ("0", "0", "0"))
        print(f"{i}\t{started}\t{deadline}\t{ok}\t{limited}\t{other}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
