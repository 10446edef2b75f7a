#!/usr/bin/env python3
"""Summarises bench/run.sh results (bench/results/*.json) as Markdown tables.

Usage: bench/summarize.py RESULTS_DIR

Every figure is a median over the runs found; ratios are wasm / native from
the same runs. In the load runs the load generator and the server shared the
machine's cores; the cold starts and micro benchmarks ran without a load
generator.
"""

import glob
import json
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in bench/
from sweep import latency_origin_note  # noqa: E402  (bench/ is on the path: it is this script's)

OUT = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
SCENARIOS = [("a", "1000 rooms x 4 clients"), ("b", "10 rooms x 100 clients"), ("c", "1 room x 1000 clients")]
SHARED = (
    "(load generator and server on separate cores)"
    if os.environ.get("SERVER_CPUS") or os.environ.get("GENERATOR_CPUS")
    else "(load generator and server share the 2 cores)"
)


def load(pattern):
    reports = []
    for path in sorted(glob.glob(os.path.join(OUT, pattern))):
        try:
            with open(path) as f:
                reports.append(json.load(f))
        except (OSError, ValueError):
            pass
    return reports


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def fanout():
    print(f"### Broadcast fan-out {SHARED}\n")
    print("Delivered frames per second at `--rate 0` (max), and delivery latency at half the")
    print("wasm maximum (both servers at the same offered rate). Medians of the runs.\n")
    print("| scenario | runs | wasm delivered/s | native delivered/s | wasm/native | wasm p50 / p99 ms at half | native p50 / p99 ms at half | delivery ratio wasm / native (half) |")
    print("|---|---|---|---|---|---|---|---|")
    origins = set()
    for name, label in SCENARIOS:
        row = {}
        for kind in ("wasm", "native"):
            best = load(f"{name}-max-{kind}-*.json")
            half = load(f"{name}-half-{kind}-*.json")
            row[kind] = {
                "runs": len(best),
                "max": median([r["messages"]["delivered_per_sec"] for r in best]),
                "p50": median([r["latency_ms"]["p50"] for r in half]),
                "p99": median([r["latency_ms"]["p99"] for r in half]),
                "ratio": median([r["messages"]["delivery_ratio"] for r in half]),
                "rate": median([r["rate_per_client"] for r in half]),
            }
            origins.update(r.get("latency_from", "send") for r in half)
        w, n = row["wasm"], row["native"]
        print(
            f"| ({name}) {label} | {w['runs']} | {fmt(w['max'])} | {fmt(n['max'])} | {ratio(w['max'], n['max'])} "
            f"| {fmt(w['p50'], 2)} / {fmt(w['p99'], 2)} | {fmt(n['p50'], 2)} / {fmt(n['p99'], 2)} "
            f"| {fmt(w['ratio'], 4)} / {fmt(n['ratio'], 4)} |"
        )
    if origins:
        print()
        print(latency_origin_note(origins))
    print()
    if not load("*-max-before-*.json"):
        return
    print("The same scenarios with the `before` server (BEFORE_ROOMHOST) in the same runs:\n")
    print("| scenario | before delivered/s | wasm (after) delivered/s | after/before | before p50 / p99 ms at half | after p50 / p99 ms at half |")
    print("|---|---|---|---|---|---|")
    for name, label in SCENARIOS:
        row = {}
        for kind in ("before", "wasm"):
            best = load(f"{name}-max-{kind}-*.json")
            half = load(f"{name}-half-{kind}-*.json")
            row[kind] = (
                median([r["messages"]["delivered_per_sec"] for r in best]),
                median([r["latency_ms"]["p50"] for r in half]),
                median([r["latency_ms"]["p99"] for r in half]),
            )
        b, w = row["before"], row["wasm"]
        print(
            f"| ({name}) {label} | {fmt(b[0])} | {fmt(w[0])} | {ratio(w[0], b[0])} "
            f"| {fmt(b[1], 2)} / {fmt(b[2], 2)} | {fmt(w[1], 2)} / {fmt(w[2], 2)} |"
        )
    print()


def shapes():
    """1 room x N clients (bench/run.sh shapes): deliveries/s, latency and the
    server's CPU seconds per million deliveries, per server kind found."""
    kinds = [k for k in ("before", "wasm", "wasm_w1", "native", "stateroom") if load(f"shape-*-*-{k}-*.json")]
    if not kinds:
        return
    print(f"### Fan-out shapes: 1 room, 64-byte frames {SHARED}\n")
    print("Server CPU (user + system, /proc/PID/stat, 10 ms ticks) over the measured window, per")
    print("million deliveries; `sys` is the system share of it; wake-ups are write(2) calls per delivery")
    print("(/proc/PID/io `syscw`: tokio's eventfd wake-ups of idle workers; sockets use send(2), which")
    print("it does not count). `+ generator` adds the load generator's CPU over the same window: over")
    print("loopback a segment's receive path runs in the sender's send(2), so the split between the two")
    print("depends on how the server batches; the sum is the machine's cost. Medians of the runs.\n")
    print("| shape | server | runs | delivered/s | p50 / p99 ms | CPU s per 1M deliveries | sys | wake-ups per delivery | + generator, CPU s per 1M |")
    print("|---|---|---|---|---|---|---|---|---|")
    clients = sorted({int(os.path.basename(p).split("-")[1]) for p in glob.glob(os.path.join(OUT, "shape-*.json"))})
    for n in clients:
        for mode in ("fixed", "max"):
            for kind in kinds:
                runs = [r for r in load(f"shape-{n}-{mode}-{kind}-*.json") if "server" in r]
                if not runs:
                    continue
                cpu, sys_share, writes, machine = [], [], [], []
                for r in runs:
                    delivered = r["messages"]["delivered"]
                    busy = r["server"]["cpu_user_secs"] + r["server"]["cpu_system_secs"]
                    if delivered:
                        cpu.append(busy / delivered * 1e6)
                        if r.get("generator_cpu_secs") is not None:
                            machine.append((busy + r["generator_cpu_secs"]) / delivered * 1e6)
                        writes.append(r["server"]["write_calls"] / delivered)
                    if busy:
                        sys_share.append(r["server"]["cpu_system_secs"] / busy)
                label = f"1 x {n:,}, " + ("fixed " + fmt(median([r["rate_per_client"] * n * n for r in runs])) + "/s" if mode == "fixed" else "max rate")
                print(
                    f"| {label} | {kind} | {len(runs)} | {fmt(median([r['messages']['delivered_per_sec'] for r in runs]))} "
                    f"| {fmt(median([r['latency_ms']['p50'] for r in runs]), 2)} / {fmt(median([r['latency_ms']['p99'] for r in runs]), 2)} "
                    f"| {fmt(median(cpu), 2)} | {fmt(median(sys_share) and median(sys_share) * 100)} % "
                    f"| {fmt(median(writes), 2)} | {fmt(median(machine), 2)} |"
                )
    print()


def held(name, title):
    print(f"### {title} {SHARED}\n")
    print("| server | rooms x clients | connections open | RSS before | RSS with clients | growth per connection |")
    print("|---|---|---|---|---|---|")
    for kind in ("before", "wasm", "native"):
        for r in load(f"{name}-{kind}-rss.json") + load(f"{name}-*-{kind}-rss.json"):
            growth = (r["rss_during_kib"] - r["rss_before_kib"]) * 1024
            conns = r["open_at_end"] or r["established"] or 0
            per = growth / conns / 1024 if conns else None
            print(
                f"| {kind} | {r['rooms']:,} x {r['clients_per_room']:,} | {conns:,} "
                f"| {r['rss_before_kib'] / 1024:,.1f} MiB | {r['rss_during_kib'] / 1024:,.1f} MiB | {fmt(per, 1)} KiB |"
            )
    print()


def rooms_per_room():
    idle = {r["kind"]: r for kind in ("wasm", "native") for r in load(f"idle-{kind}-rss.json") + load(f"idle-*-{kind}-rss.json")}
    rooms = {r["kind"]: r for kind in ("wasm", "native") for r in load(f"rooms-{kind}-rss.json")}
    if not idle or not rooms:
        return
    print("Memory per idle room in the server = (RSS growth with the rooms - connections x the")
    print("per-connection growth measured in the idle-connection run) / rooms:\n")
    print("| server | per idle room |")
    print("|---|---|")
    for kind in ("wasm", "native"):
        if kind not in idle or kind not in rooms:
            continue
        i, r = idle[kind], rooms[kind]
        per_conn = (i["rss_during_kib"] - i["rss_before_kib"]) / max(i["open_at_end"] or i["established"], 1)
        conns = r["open_at_end"] or r["established"]
        per_room = ((r["rss_during_kib"] - r["rss_before_kib"]) - per_conn * conns) / r["rooms"]
        print(f"| {kind} | {per_room:,.1f} KiB |")
    print()


def coldstart():
    path = os.path.join(OUT, "coldstart.txt")
    if not os.path.exists(path):
        return
    times = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                try:
                    times.setdefault(parts[0], []).append(float(parts[1]))
                except ValueError:
                    pass
    print("### Cold start: exec to listening (no load generator running)\n")
    print("| server | runs | median ms | min ms | max ms |")
    print("|---|---|---|---|---|")
    labels = {"nocache": "roomhost serve --no-cache", "cache": "roomhost serve, warm compile cache", "native": "roomhost-baseline (native)"}
    for key in ("nocache", "cache", "native"):
        values = times.get(key, [])
        if values:
            print(f"| {labels[key]} | {len(values)} | {statistics.median(values):,.1f} | {min(values):,.1f} | {max(values):,.1f} |")
    print()


def micro():
    path = os.path.join(OUT, "micro.txt")
    if os.path.exists(path):
        print(f"### Micro benchmarks (no load generator running)\n")
        print("```")
        with open(path) as f:
            print(f.read().strip())
        print("```\n")


if __name__ == "__main__":
    micro()
    fanout()
    shapes()
    held("idle", "Idle connections")
    held("rooms", "Rooms held")
    rooms_per_room()
    coldstart()
