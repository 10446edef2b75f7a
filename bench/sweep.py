#!/usr/bin/env python3
"""Summarises `bench/run.sh sweep`: per scenario and server, the latency and
delivery at each fixed offered load, the sustainable throughput (the highest
offered load with every frame delivered and p99 under 10 ms), the wasm/native
ratio of it, and the p99 at (about) half of it.

Usage: bench/sweep.py RESULTS_DIR
"""

import json
import pathlib
import sys

SCENARIOS = {"a": "(a) 1000 rooms x 4", "b": "(b) 10 rooms x 100", "c": "(c) 1 room x 1000"}
P99_GOAL_MS = 10.0
MIN_DELIVERY = 0.999


def load(out, name, target, kind):
    path = out / f"sweep-{name}-{target}-{kind}.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    messages = report["messages"]
    latency = report["latency_ms"]
    return {
        # Absent in reports of the generator before it stamped frames with
        # their scheduled send time.
        "from": report.get("latency_from", "send"),
        "delivered": messages["delivered_per_sec"],
        "ratio": messages.get("delivery_ratio") or 0.0,
        "p50": latency.get("p50"),
        "p99": latency.get("p99"),
    }


def sustained(row):
    return (
        row is not None
        and row["p99"] is not None
        and row["p99"] < P99_GOAL_MS
        and row["ratio"] >= MIN_DELIVERY
    )


def latency_origin_note(origins):
    """What the latencies of reports with these `latency_from` values measure."""
    if origins <= {"scheduled-send"}:
        return "Latency runs from each frame's scheduled send time (waiting to send counts)."
    which = "some of these runs" if "scheduled-send" in origins else "these runs"
    return (
        f"Latency of {which} was measured from the moment each frame was sent, not its "
        "scheduled time (the generator before the coordinated-omission fix): time a client "
        "waited to send is not in it, so under overload it reads low."
    )


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def main():
    out = pathlib.Path(sys.argv[1])
    targets = sorted(
        {int(p.name.split("-")[2]) for p in out.glob("sweep-*-*-*.json")}
    )
    if not targets:
        return
    print("### Fixed offered load sweep (load generator and server share the 2 cores)\n")
    print(
        "Open loop: each client sends at a fixed rate. Sustainable = the highest offered load "
        f"with delivery ratio >= {MIN_DELIVERY} and p99 < {P99_GOAL_MS:g} ms.\n"
    )
    print("| scenario | offered deliveries/s | wasm delivered/s | wasm p50 / p99 ms | native delivered/s | native p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    best = {}
    for name, title in SCENARIOS.items():
        for target in targets:
            wasm, native = load(out, name, target, "wasm"), load(out, name, target, "native")
            if wasm is None and native is None:
                continue
            cells = []
            for kind, row in (("wasm", wasm), ("native", native)):
                if row is None:
                    cells += ["n/a", "n/a"]
                    continue
                mark = "" if sustained(row) else " ✗"
                cells += [f"{row['delivered']:,.0f}{mark}", f"{fmt(row['p50'])} / {fmt(row['p99'])}"]
                if sustained(row):
                    best[(name, kind)] = max(best.get((name, kind), 0), target)
            print(f"| {title} | {target:,} | " + " | ".join(cells) + " |")
    print("\n✗: not sustained (frames lost or p99 over the goal).\n")
    origins = {
        row["from"]
        for name in SCENARIOS
        for target in targets
        for kind in ("wasm", "native")
        for row in [load(out, name, target, kind)]
        if row is not None
    }
    print(latency_origin_note(origins) + "\n")
    print("| scenario | wasm sustainable | native sustainable | wasm/native | wasm p99 at half of its sustainable load |")
    print("|---|---|---|---|---|")
    for name, title in SCENARIOS.items():
        wasm_best, native_best = best.get((name, "wasm")), best.get((name, "native"))
        ratio = f"{wasm_best / native_best:.2f}x" if wasm_best and native_best else "n/a"
        half = None
        if wasm_best:
            lower = [t for t in targets if t <= wasm_best / 2]
            if lower:
                half_row = load(out, name, max(lower), "wasm")
                half = f"{fmt(half_row['p99'])} ms at {max(lower):,}/s" if half_row else None
        print(
            f"| {title} | {fmt(wasm_best, 0) if wasm_best else '< ' + format(targets[0], ',')} "
            f"| {fmt(native_best, 0) if native_best else '< ' + format(targets[0], ',')} | {ratio} | {half or 'n/a'} |"
        )
    print(
        "\nOne run per point, so a point can fail while a higher one passes (noise from the "
        "generator sharing the cores); read the sustainable figures as rough, and compare the "
        "two servers point by point.\n"
    )


if __name__ == "__main__":
    main()
