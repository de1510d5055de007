#!/usr/bin/env python3
"""Turn bench/run.sh's raw per-run records into markdown tables.

    report.py RESULTS_DIR

reads RESULTS_DIR/runs.tsv (one line per wrk run), RESULTS_DIR/idle.tsv
(optional, the idle-connection memory step) and RESULTS_DIR/meta.env, and
prints the tables that go into BENCHMARKS.md. Python 3 stdlib only.
"""

import csv
import os
import statistics
import sys

TARGET_LABEL = {
    "backend": "backend direct (nginx `return 200`)",
    "nginx": "nginx proxy (1 worker, upstream keepalive)",
    "haproxy": "haproxy (1 thread, `http-reuse always`)",
    "portcullis": "portcullis gateway on tokio",
    "portcullis-smol": "portcullis gateway on smol (`--runtime smol`)",
    "portcullis-policy": "portcullis on tokio, typical policy set",
    "portcullis-smol-policy": "portcullis on smol, typical policy set",
    "portcullis-before": "before: portcullis on tokio (`BEFORE_BIN`)",
    "portcullis-smol-before": "before: portcullis on smol",
    "portcullis-policy-before": "before: portcullis on tokio, typical policy set",
}
TARGETS = ("backend", "nginx", "haproxy", "portcullis", "portcullis-smol",
           "portcullis-policy", "portcullis-smol-policy", "portcullis-before",
           "portcullis-smol-before", "portcullis-policy-before")
SCENARIO_LABEL = {
    "keepalive": "Keep-alive (each wrk connection reused)",
    "close": "Connection: close (new TCP connection per request)",
}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                if k:
                    meta[k] = v
    return meta


def median(rows, key):
    vals = [float(r[key]) for r in rows if r[key] not in ("", "nan")]
    return statistics.median(vals) if vals else float("nan")


def fmt(x, digits):
    return "n/a" if x != x else f"{x:,.{digits}f}"


def main():
    d = sys.argv[1]
    runs = read_tsv(os.path.join(d, "runs.tsv"))
    idle = read_tsv(os.path.join(d, "idle.tsv"))
    meta = read_meta(os.path.join(d, "meta.env"))
    out = []
    p = out.append

    p(f"Measured {meta.get('date', '?')} on {meta.get('host', '?')}; "
      f"`wrk -t{meta.get('threads', '?')} -c{meta.get('conns', '?')} "
      f"-d{meta.get('duration', '?')} --latency`, "
      f"median of {meta.get('runs', '?')} interleaved runs per target. "
      f"Proxies pinned to CPU 0; wrk and the backend pinned to CPU 1.")
    p("")
    p(f"- {meta.get('cpu', '?')}, kernel {meta.get('kernel', '?')}, "
      f"{meta.get('nginx', '?')}, {meta.get('wrk', '?')}")
    p(f"- portcullis on tokio: {meta.get('gateway_status', '?')}; "
      f"on smol: {meta.get('gateway_smol_status', '?')} "
      f"(git {meta.get('git', '?')})")
    p(f"- haproxy: {meta.get('haproxy_status', 'not run')}")
    if "before_status" in meta:
        p(f"- before: {meta['before_status']}")
    p("")
    if meta.get("machine", "quiet") != "quiet":
        p(f"> **Warning:** {meta['machine']}. Numbers are suspect.")
        p("")

    for scenario in ("keepalive", "close"):
        rows = [r for r in runs if r["scenario"] == scenario]
        if not rows:
            continue
        p(f"### {SCENARIO_LABEL[scenario]}")
        p("")
        p("| target | req/s | p50 (ms) | p99 (ms) | server CPU (µs/req) "
          "| errors | runs |")
        p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        cpu = {}
        for target in TARGETS:
            t = [r for r in rows if r["target"] == target]
            if not t:
                continue
            cpu[target] = median(t, "cpu_us_per_req")
            errors = sum(int(r["errors"]) for r in t)
            p(f"| {TARGET_LABEL[target]} | {fmt(median(t, 'rps'), 0)} "
              f"| {fmt(median(t, 'p50_ms'), 2)} "
              f"| {fmt(median(t, 'p99_ms'), 2)} "
              f"| {fmt(cpu[target], 1)} | {errors} | {len(t)} |")
        p("")
        # Pair runs of the same round (they ran back to back) so that a drift
        # of the machine between rounds cancels.
        by_run = {}
        for r in rows:
            if r["cpu_us_per_req"] not in ("", "nan"):
                by_run.setdefault(r["run"], {})[r["target"]] = \
                    float(r["cpu_us_per_req"])

        def ratio_line(num, den, label):
            if num not in cpu or den not in cpu or not cpu[den] > 0:
                p(f"{label} CPU per request: n/a ({num if num not in cpu else den} not run)")
                return
            ratios = sorted(v[num] / v[den] for v in by_run.values()
                            if num in v and v.get(den, 0) > 0)
            paired = statistics.median(ratios) if ratios else float("nan")
            p(f"{label} CPU per request: **{paired:.2f}×** "
              f"(median of the per-round ratios "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; "
              f"ratio of the medians above: "
              f"{cpu[num] / cpu[den]:.2f}×)")

        for num, den, label in (
            ("haproxy", "nginx", "haproxy / nginx"),
            ("portcullis", "nginx", "portcullis on tokio / nginx"),
            ("portcullis-smol", "nginx", "portcullis on smol / nginx"),
            ("portcullis-smol", "portcullis", "smol / tokio"),
            ("portcullis-policy", "nginx",
             "portcullis on tokio with the typical policy set / nginx (plain)"),
            ("portcullis-smol-policy", "nginx",
             "portcullis on smol with the typical policy set / nginx (plain)"),
            ("portcullis-before", "nginx", "before: portcullis on tokio / nginx"),
            ("portcullis-smol-before", "nginx", "before: portcullis on smol / nginx"),
            ("portcullis-smol-before", "portcullis-before", "before: smol / tokio"),
            ("portcullis-policy-before", "nginx",
             "before: portcullis on tokio with the typical policy set / nginx (plain)"),
        ):
            if num in cpu or num in ("portcullis", "portcullis-smol"):
                ratio_line(num, den, label)
                p("")
        limit = float(meta.get("noise_pct", 10))
        noisy = [r for r in rows if float(r["other_cpu_pct"]) > limit]
        worst = max(float(r["other_cpu_pct"]) for r in rows)
        if noisy:
            p(f"> **Warning:** {len(noisy)} of {len(rows)} run(s) shared the "
              f"machine with other processes (worst: {worst:.1f}% of a CPU "
              f"not used by wrk, the backend or the server under test). "
              f"Rerun on a quiet machine before quoting these numbers.")
            p("")

    if idle:
        p("### Memory with idle keep-alive connections")
        p("")
        p("| server | connections open | RSS before (MiB) "
          "| RSS with connections (MiB) | KiB per connection |")
        p("| --- | ---: | ---: | ---: | ---: |")
        for r in idle:
            before = int(r["rss_before_kib"])
            during = int(r["rss_during_kib"])
            n = int(r["open_at_ready"])
            per = (during - before) / n if n else float("nan")
            held = (f"{n:,} of {int(r['requested']):,} "
                    f"({int(r['open_after_hold']):,} after "
                    f"{r['hold_s']} s)")
            p(f"| {TARGET_LABEL.get(r['server'], r['server'])} | {held} "
              f"| {before / 1024:.1f} | {during / 1024:.1f} "
              f"| {fmt(per, 1)} |")
        p("")
        p("RSS is VmRSS summed over the server's processes (nginx: master + "
          "worker), sampled after the load runs, 3 s after every connection "
          "has had one request answered.")
        p("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
