#!/usr/bin/env python3
"""Turn bench/store.sh's raw records into markdown tables.

    store_report.py RESULTS_DIR

reads RESULTS_DIR/cost.tsv (one line per wrk run of the cost step),
RESULTS_DIR/accuracy.tsv (one line per gateway and round of the accuracy step)
and RESULTS_DIR/meta.env, and prints the tables that go into BENCHMARKS.md.
Python 3 stdlib only.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import read_meta, read_tsv  # noqa: E402  (the load benchmark's readers)

LABEL = {
    "backend": "backend direct (nginx `return 200`)",
    "nginx": "nginx proxy (no limit)",
    "nolimit": "portcullis, no policy",
    "local": "portcullis, `--store local`",
    "exact": "portcullis, Redis, `exact`",
    "approximate": "portcullis, Redis, `approximate`",
}
ORDER = ("backend", "nginx", "nolimit", "local", "exact", "approximate")
GATEWAYS = ("nolimit", "local", "exact", "approximate")


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def median(rows, key):
    vals = [num(r[key]) for r in rows]
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def fmt(x, digits):
    return "n/a" if x != x else f"{x:,.{digits}f}"


def calls(x):
    """Store calls per request: enough digits to tell a sync every 200 ms from none."""
    if x != x:
        return "n/a"
    return f"{x:.3f}" if x == 0 or x >= 0.01 else f"{x:.1e}"


def cost(rows, meta, p):
    p(f"`wrk -t{meta.get('threads', '?')} -c{meta.get('conns', '?')} "
      f"-d{meta.get('duration', '?')} --latency`, keep-alive, median of "
      f"{meta.get('runs', '?')} interleaved rounds. The proxy under test on CPU 0; "
      f"wrk, the backend and redis-server on CPU 1. Gateway policy: "
      f"`<rate-limit-by-key calls=\"1000000000\" renewal-period=\"60\" "
      f"counter-key=\"@(context.Request.IpAddress)\"/>` (never refuses; "
      f"\"no policy\": the same gateway and API without it).")
    p("")
    p("| target | req/s | p50 (ms) | p99 (ms) | gateway CPU (µs/req) "
      "| Redis CPU (µs/req) | gateway + Redis (µs/req) | store calls/req "
      "| Redis commands/req | store call mean (µs) | store errors | errors | runs |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    both = {}
    for t in ORDER:
        tr = [r for r in rows if r["target"] == t]
        if not tr:
            continue
        for r in tr:
            r["both"] = num(r["gateway_cpu_us_per_req"]) + num(r["redis_cpu_us_per_req"])
        gw = median(tr, "gateway_cpu_us_per_req")
        both[t] = statistics.median(r["both"] for r in tr)
        is_gw = t in GATEWAYS
        p(f"| {LABEL[t]} | {fmt(median(tr, 'rps'), 0)} | {fmt(median(tr, 'p50_ms'), 2)} "
          f"| {fmt(median(tr, 'p99_ms'), 2)} | {fmt(gw, 1)} "
          f"| {fmt(median(tr, 'redis_cpu_us_per_req'), 2)} | {fmt(both[t], 1)} "
          f"| {calls(median(tr, 'store_calls_per_req')) if is_gw else '—'} "
          f"| {fmt(median(tr, 'redis_cmds_per_req'), 2)} "
          f"| {fmt(median(tr, 'store_call_mean_us'), 0) if t in ('exact', 'approximate') else '—'} "
          f"| {sum(int(r['store_errors']) for r in tr) if is_gw else '—'} "
          f"| {sum(int(r['errors']) for r in tr)} | {len(tr)} |")
    p("")
    p("\"gateway CPU\" is the server under test (for the nginx rows, nginx's own "
      "CPU); \"Redis CPU\" is redis-server's, over the same run (what the idle "
      "gateways' background work costs it too). Store calls/req: the gateway's "
      "round trips to Redis (`portcullis_store_call_duration_seconds_count`), "
      "whose mean duration (from the same histogram) includes waiting for a "
      "CPU; Redis commands/req: its `total_commands_processed`, which also "
      "counts the commands a script runs (the rate script: EVALSHA, TIME, "
      "HMGET, HSET, PEXPIRE).")
    p("")

    by_run = {}
    for r in rows:
        by_run.setdefault(r["run"], {})[r["target"]] = r

    def ratio(num_t, den_t, key, label):
        vals = []
        for rr in by_run.values():
            if num_t in rr and den_t in rr:
                a = rr[num_t]["both"] if key == "both" else num(rr[num_t][key])
                b = rr[den_t]["both"] if key == "both" else num(rr[den_t][key])
                if b > 0 and a == a:
                    vals.append(a / b)
        if not vals:
            return
        vals.sort()
        p(f"| {label} | **{statistics.median(vals):.2f}×** "
          f"({', '.join(f'{v:.2f}' for v in vals)}) |")

    p("CPU per request, median of the per-round ratios (each round's in brackets):")
    p("")
    p("| | ratio |")
    p("| --- | ---: |")
    ratio("nolimit", "nginx", "gateway_cpu_us_per_req", "no policy: gateway / nginx")
    ratio("local", "nolimit", "gateway_cpu_us_per_req", "local / no policy")
    for g in ("local", "exact", "approximate"):
        ratio(g, "nginx", "gateway_cpu_us_per_req", f"{g}: gateway / nginx")
        ratio(g, "nginx", "both", f"{g}: gateway + Redis / nginx")
    for g in ("exact", "approximate"):
        ratio(g, "local", "both", f"{g} / local (gateway + Redis)")
    p("")
    limit = num(meta.get("noise_pct", 10))
    noisy = [r for r in rows if num(r["other_cpu_pct"]) > limit]
    if noisy:
        worst = max(num(r["other_cpu_pct"]) for r in rows)
        p(f"> **Warning:** {len(noisy)} of {len(rows)} run(s) shared the machine "
          f"with other processes (worst: {worst:.1f}% of a CPU not used by wrk, "
          f"the backend, redis-server or the server under test).")
        p("")


def accuracy(rows, meta, p):
    if not rows:
        return
    period = rows[0]["period_s"]
    interval = num(meta.get("sync_interval_ms", 200)) / 1000
    p(f"Three gateways (CPU 0) on one redis-server, "
      f"`<rate-limit-by-key calls=\"N\" renewal-period=\"{period}\" "
      f"counter-key=\"bench-accuracy\"/>` (one counter for all), three "
      f"`wrk -t1 -c{meta.get('acc_conns', '?')}` (CPU 1, one per gateway) "
      f"started together just after a window bucket boundary and stopped just "
      f"before the window's end (one period less 60 ms); fresh gateways and "
      f"Redis keys for every round. \"admitted\": the gateways' own 2xx counts "
      f"(`portcullis_requests_total`); the rate is each gateway's answers "
      f"(200 and 429) per second over the run.")
    p("")
    p("| mode | limit N | round | admitted (all three) | admitted per gateway "
      "| over N | rate per gateway (req/s) | bound on the overshoot "
      "| store errors |")
    p("| --- | ---: | ---: | ---: | --- | ---: | --- | --- | ---: |")
    rounds = {}
    for r in rows:
        rounds.setdefault((int(r["limit"]), r["mode"], int(r["round"])), []).append(r)
    for (limit, mode, rnd) in sorted(
            rounds, key=lambda k: (k[0], ("local", "approximate", "exact").index(k[1]), k[2])):
        gws = sorted(rounds[(limit, mode, rnd)], key=lambda r: int(r["gateway"]))
        admitted = [int(r["admitted"]) for r in gws]
        rates = []
        for r in gws:
            secs = (num(r["deadline_ms"]) - num(r["start_ms"])) / 1000
            answered = int(r["admitted"]) + int(r["refused"]) + int(r["other"])
            rates.append(answered / secs if secs > 0 else float("nan"))
        total = sum(admitted)
        if mode == "approximate":
            # Before it hears of them, a gateway may admit what each other
            # gateway admitted in one sync interval: at most its rate times
            # the interval, and never more than N (it counts its own calls).
            one = [min(x * interval, limit) for x in rates]
            bound = (f"{sum(one) - min(one):,.0f} (one interval per gateway: "
                     + " / ".join(f"{x:,.0f}" for x in one) + ")")
        elif mode == "exact":
            # Every decision is one atomic script call; only a call that
            # failed (timed out) and so failed open admits past N.
            bound = f"{sum(int(r['store_errors']) for r in gws):,} (store calls that failed open)"
        else:
            bound = f"{(len(gws) - 1) * limit:,} (each counts alone)"
        p(f"| {mode} | {limit:,} | {rnd} | {total:,} "
          f"| {' / '.join(f'{a:,}' for a in admitted)} | {total - limit:+,} "
          f"| {' / '.join(f'{x:,.0f}' for x in rates)} | {bound} "
          f"| {sum(int(r['store_errors']) for r in gws)} |")
    p("")
    p(f"Approximate bound: per other gateway at most what it admits in one sync "
      f"interval ({interval * 1000:.0f} ms): its measured rate times the "
      f"interval, capped at N; the column sums that over the other gateways of "
      f"the worst placed one (all but the slowest). Exact counting admits past N "
      f"only the calls whose store call failed (`--store-on-failure open`, the "
      f"default, admits them; `portcullis_store_errors_total`).")
    p("")


def main():
    d = sys.argv[1]
    meta = read_meta(os.path.join(d, "meta.env"))
    out = []
    p = out.append
    p(f"Measured {meta.get('date', '?')} on {meta.get('host', '?')} "
      f"({meta.get('cpu', '?')}), kernel {meta.get('kernel', '?')}, "
      f"{meta.get('nginx', '?')}, {meta.get('wrk', '?')}, {meta.get('redis', '?')}; "
      f"{meta.get('gateway', '?')} (git {meta.get('git', '?')}); load average at "
      f"the end {meta.get('load_avg', '?')}.")
    p("")
    if meta.get("machine", "quiet") != "quiet":
        p(f"> **Warning:** {meta['machine']}. Absolute numbers are suspect; "
          f"compare the per-round ratios.")
        p("")
    rows = read_tsv(os.path.join(d, "cost.tsv"))
    if rows:
        p("### What a shared limit costs per request")
        p("")
        cost(rows, meta, p)
    acc = read_tsv(os.path.join(d, "accuracy.tsv"))
    if acc:
        p("### How many requests three gateways admit together")
        p("")
        accuracy(acc, meta, p)
    print("\n".join(out))


if __name__ == "__main__":
    main()
