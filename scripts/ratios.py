#!/usr/bin/env python3
"""scripts/ratios.py UPROC_LOG PEERS_LOG - uproc against the peers, one table.

Reads the RESULT lines of scripts/bench (impl=c) and of ../shared/peers/run.sh
(impl=erlang, go, nginx) from the same pass and prints, per workload, figure
and scheduler count: uproc's median, each peer's, the ratio to the peer the
target names (or the best peer), the target of issue 8 and whether it is met.

Ratios are uproc / peer: below 1 is better for times and sizes, above 1 is
better for rates.  A figure measured several times in a log is its median.
"""
import re
import statistics
import sys

# metric: (lower is better, target peer or "best", target ratio, target text)
TARGETS = {
    ("spawn", "ns_per_spawn"): (True, "best", 0.1, "<= 1/10 best peer"),
    ("spawn", "rss_bytes_per_proc"): (True, None, 4300, "<= 4.3 KB"),
    ("spawn", "teardown_ms"): (True, "best", 0.25, "<= 1/4 best peer"),
    ("spawn", "rss_after_teardown_mb"): (True, None, 64, "<= 64 MiB"),
    ("skynet", "ms"): (True, "go", 0.25, "<= 1/4 Go"),
    ("ring", "ns_per_hop"): (True, "best", 0.2, "<= 1/5 best peer"),
    ("pingpong", "ns_per_round_trip"): (True, "go", 0.2, "<= 1/5 Go"),
    ("fanin", "msgs_per_s"): (False, "go", 2.0, ">= 2x Go"),
    ("http", "requests_per_s"): (False, "nginx", 1.0, ">= nginx"),
    ("http", "p99_ms"): (True, "nginx", 1.0, "<= nginx"),
}
# Rows of uproc's compact processes (spawn -compact=1, stack=compact): the
# issue's second RSS target is Erlang's bytes per process.
TARGETS_COMPACT = {
    ("spawn", "rss_bytes_per_proc"): (True, "erlang", 1.0, "<= Erlang (compact)"),
}
ORDER = ["spawn", "skynet", "ring", "pingpong", "fanin", "http"]
PEERS = ["erlang", "go", "nginx"]


def parse(paths):
    """{(bench, metric, schedulers): {impl: [values]}}"""
    out = {}
    for path in paths:
        for line in open(path, encoding="utf-8", errors="replace"):
            if not line.startswith("RESULT "):
                continue
            kv = re.findall(r"(\S+?)=(\S+)", line)
            keys = [k for k, _ in kv]
            if "unit" not in keys:
                continue
            d = dict(kv)
            metric, value = kv[keys.index("unit") - 1]
            if (d["bench"], metric) not in TARGETS:
                continue
            try:
                v = float(value)
            except ValueError:
                continue
            impl = d["impl"]
            if impl == "c" and d.get("stack") == "compact":
                impl = "c:compact"
            server = d.get("server", "")
            if d["bench"] == "http" and impl != "c":
                impl = impl if impl == "nginx" else impl + ":" + server
            sched = d.get("schedulers", "1")
            out.setdefault((d["bench"], metric, sched), {}).setdefault(impl, []).append(v)
    return out


def fmt(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v/1e6:.2f} M"
    if v >= 1e4:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    data = parse(sys.argv[1:])
    print("| workload | figure | sched | uproc | erlang | go | nginx | ratio | target | met |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = 0
    for key in sorted(data, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1], k[2])):
        bench, metric, sched = key
        row = {impl: statistics.median(vs) for impl, vs in data[key].items()}
        for variant in ("c", "c:compact"):
            if variant == "c:compact" and variant not in row:
                continue
            failed += print_row(bench, metric, sched, row, variant)
    print(f"\n{failed} figure(s) miss their target.")
    return 0


def print_row(bench, metric, sched, row, variant):
    """One table row for uproc's figure `variant`; 1 if it misses its target."""
    c = row.get(variant)
    lower, peer, goal, text = TARGETS[(bench, metric)]
    if variant == "c:compact":
        lower, peer, goal, text = TARGETS_COMPACT.get((bench, metric), (lower, peer, goal, text))
        bench += " (compact)"

    def best(prefix):
        vals = [v for i, v in row.items() if not i.startswith("c") and i.split(":")[0] == prefix]
        if not vals:
            return None
        return min(vals) if lower else max(vals)

    peers = {p: best(p) for p in PEERS}
    if peer is None:
        ref, ratio = None, None
        met = c is not None and (c <= goal if lower else c >= goal)
    else:
        cands = [v for p, v in peers.items() if v is not None and (peer == "best" or p == peer)]
        ref = (min(cands) if lower else max(cands)) if cands else None
        ratio = c / ref if c is not None and ref else None
        met = ratio is not None and (ratio <= goal if lower else ratio >= goal)
    print(f"| {bench} | {metric} | {sched} | {fmt(c)} | {fmt(peers['erlang'])} | "
          f"{fmt(peers['go'])} | {fmt(peers['nginx'])} | "
          f"{'-' if ratio is None else f'{ratio:.3g}'} | {text} | "
          f"{'-' if c is None or (peer and ref is None) else 'yes' if met else 'NO'} |")
    return int(c is not None and (peer is None or ref is not None) and not met)


if __name__ == "__main__":
    sys.exit(main())
