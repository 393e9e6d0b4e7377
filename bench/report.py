#!/usr/bin/python3
"""Write docs/PERFORMANCE.md from one bench/run invocation's figures.

    /usr/bin/python3 bench/report.py --results OUT/results.jsonl --meta OUT/meta.json \
        --output docs/PERFORMANCE.md

results.jsonl holds the JSON lines of fleet's bench programs (system "fleet"
and "floor") and of the Python peers (peers/bench.py: dask, joblib, pool,
ipp, floor), all from the same run. Each cell is "best (min-max; n)" over
the trials, best being the highest throughput or the lowest time, latency
or memory, as peers/report.py does. Hand-written notes come verbatim from
bench/notes.md.
"""
import argparse
import json
import os
import platform
from collections import OrderedDict, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))

SYSTEM_ORDER = ["fleet", "floor", "serial", "dask", "joblib", "pool", "ipp"]
SYSTEM_NAME = {
    "fleet": "**fleet**",
    "floor": "(limit: no task system)",
    "serial": "serial, 1 process",
    "dask": "Dask distributed",
    "joblib": "joblib / loky",
    "pool": "multiprocessing.Pool",
    "ipp": "ipyparallel",
}
REFERENCE_CLUSTER = "2 workers x 1 slot"


def fmt(x):
    if isinstance(x, str):
        return x
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def best(values, higher_better):
    return max(values) if higher_better else min(values)


def cell(values, higher_better):
    if not values:
        return "—"
    b = best(values, higher_better)
    if len(values) == 1:
        return f"**{fmt(b)}** (n=1)"
    return f"**{fmt(b)}** ({fmt(min(values))}–{fmt(max(values))}; n={len(values)})"


def ratio_text(fleet, peer, higher_better):
    """How many times better fleet is than the peer (>1: fleet better)."""
    if fleet is None or peer is None or fleet <= 0 or peer <= 0:
        return "—"
    r = fleet / peer if higher_better else peer / fleet
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                # The peers' own floor (bench_floor.py) is Python; fleet-bench-floor's is C++.
                if r["system"] == "floor" and r.get("source") != "bench":
                    r["variant"] += " (Python)"
                rows.append(r)
    return rows


def derive_growth(rows):
    """W3: memory growth = peak - baseline, per measurement (cgroup and tree RSS)."""
    by = defaultdict(dict)
    for r in rows:
        if r["workload"] == "W3" and isinstance(r["value"], (int, float)):
            key = (r["system"], r["variant"], str(r.get("round")), r.get("trial", 0))
            by[key][r["metric"]] = r["value"]
    out = []
    for (system, variant, rnd, trial), m in by.items():
        for peak, base, name in (("cgroup_peak_mb", "cgroup_baseline_mb", "cgroup_growth_mb"),
                                 ("peak_rss_mb", "baseline_rss_mb", "rss_growth_mb")):
            if peak in m and base in m:
                out.append(dict(system=system, workload="W3", variant=variant, metric=name,
                                value=m[peak] - m[base], round=rnd, trial=trial))
    return rows + out


def collect(rows, workloads, skip_metrics=("startup_s",)):
    """(system, variant) -> metric -> [values], in first-seen order, systems sorted."""
    by = OrderedDict()
    for r in rows:
        if r["workload"] not in workloads or r["metric"] in skip_metrics:
            continue
        key = (r["system"], r["variant"])
        by.setdefault(key, defaultdict(list))[r["metric"]].append(r["value"])
    keys = sorted(by, key=lambda k: SYSTEM_ORDER.index(k[0]) if k[0] in SYSTEM_ORDER else 99)
    return OrderedDict((k, by[k]) for k in keys)


def variant_label(key, reference_key=None):
    return key[1] + (" ◆" if reference_key is not None and key == reference_key else "")


def table(rows, workloads, metrics, compare=None, reference=None, rows_filter=None):
    """A Markdown table.

    metrics: [(metric, header, higher_better)].
    compare: [(metric, higher_better, header)], one "fleet advantage" column each: the ratio of
      each peer's best to the reference fleet row's best (columns of absent metrics are dropped).
    reference: function(key) -> bool choosing the fleet reference row; or a function(key of a
      peer row) -> fleet key, for tables whose rows compare with different fleet rows.
    """
    data = collect(rows, workloads)
    if rows_filter:
        data = OrderedDict((k, v) for k, v in data.items() if rows_filter(k))
    used = [m for m in metrics if any(m[0] in v for v in data.values())]
    compares = [c for c in (compare or []) if any(c[0] in v for v in data.values())]
    head = ["system", "variant"] + [h for _, h, _ in used] + [h for _, _, h in compares]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, vals in data.items():
        system, variant = key
        if "unsupported" in vals:
            cells = [f"not measured: {vals['unsupported'][0]}"] + [""] * (len(used) - 1)
        else:
            cells = [cell(vals.get(m, []), hb) for m, _, hb in used]
        ref_key = reference(key) if reference else None
        for metric, hb, _ in compares:
            if system == "fleet" and ref_key == key:
                cmp = "ref"
            elif system in ("fleet", "floor") or ref_key is None or ref_key not in data:
                cmp = "—"
            elif not vals.get(metric) or not data[ref_key].get(metric):
                cmp = "—"
            else:
                cmp = ratio_text(best(data[ref_key][metric], hb), best(vals[metric], hb), hb)
            cells.append(cmp)
        lines.append("| " + " | ".join([SYSTEM_NAME.get(system, system),
                                          variant_label(key, ref_key)] + cells) + " |")
    return "\n".join(lines), data


def fleet_reference(rows, workload, startswith=""):
    """The key of the like-for-like fleet row of a workload: 2 workers x 1 slot, first variant."""
    for r in rows:
        if (r["system"] == "fleet" and r["workload"] == workload and
                r["variant"].endswith(REFERENCE_CLUSTER) and r["variant"].startswith(startswith)
                and r["metric"] != "startup_s"):
            return ("fleet", r["variant"])
    return None


def startup_table(rows):
    by = defaultdict(list)
    for r in rows:
        if r["metric"] == "startup_s":
            by[(r["system"], r["variant"])].append(r["value"])
    lines = ["| system | configuration | startup s |", "|---|---|---|"]
    for key in sorted(by, key=lambda k: (SYSTEM_ORDER.index(k[0]), k[1])):
        lines.append(f"| {SYSTEM_NAME[key[0]]} | {key[1]} | {cell(by[key], False)} |")
    return "\n".join(lines)


def versions():
    v = OrderedDict(python=platform.python_version())
    for mod in ("dask", "distributed", "joblib", "numpy", "ipyparallel", "psutil"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informative only
            pass
    return v


def best_of(data, key, metric, higher_better):
    vals = data.get(key, {}).get(metric)
    return best(vals, higher_better) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    rows = derive_growth(load(args.results))
    meta = {}
    if os.path.exists(args.meta):
        with open(args.meta) as f:
            meta = json.load(f)

    out = ["# fleet performance, side by side with the Python peers\n"]
    out.append("Generated by `bench/report.py` from the figures of one `bench/run` invocation: "
               "fleet (`bench/*.cc`, JSON lines from `build/bin/fleet-bench-*`) and the Python "
               "peers (`peers/bench.py`, copied to `build/peers`) measured one after the other on "
               "the same machine, never against remembered numbers. Rerun with `bench/run`.\n")

    out.append("## Machine and run\n")
    out.append(f"- Date: {meta.get('started', '?')} → {meta.get('finished', '?')} "
               f"(suite {fmt(float(meta.get('suite_seconds', 0)))} s, build excluded)")
    out.append(f"- `nproc`: {meta.get('nproc', '?')}; CPU: {meta.get('cpu', '?')}; memory: "
               f"{meta.get('mem_gib', '?')} GiB; OS: {meta.get('os', '?')}; kernel "
               f"{meta.get('kernel', '?')}")
    if meta.get("loadavg_start"):
        out.append(f"- Load average (1, 5, 15 min) at the start: {meta['loadavg_start']}; at the "
                   f"end: {meta.get('loadavg_end', '?')}. Anything above ~0.5 means other work "
                   "shared the 2 cores with the benchmarks and widened the ranges.")
    dirty = meta.get("fleet_uncommitted_files", 0)
    out.append(f"- fleet: commit `{meta.get('fleet_commit', '?')}`"
               + (f" plus {dirty} uncommitted files in the working tree" if dirty else "")
               + f", built `RelWithDebInfo` in `{os.path.basename(meta.get('build_dir', 'build'))}/`")
    out.append("- Peers (Debian packages, system python3): "
               + ", ".join(f"{k} {v}" for k, v in versions().items()))
    cg = meta.get("cgroup_mode", "none")
    out.append(f"- Memory cgroups: {cg}" + ("" if cg != "none" else
               " (none could be created here: the W3 cgroup columns are empty)"))
    out.append("")

    out.append("## How to read the tables\n")
    out.append("- Each cell: **best** (min–max; n = measurements). Best = highest for tasks/s, "
               "MB/s and GB/s, lowest otherwise. MB = 10^6 bytes, GB = 10^9 bytes.")
    out.append("- fleet runs as real processes on 127.0.0.1: one `fleet-scheduler` and two "
               "`fleet-worker`s, started fresh for each program (as `deploy/quickstart.sh` does). "
               f"The row marked ◆ is the like-for-like one ({REFERENCE_CLUSTER}: the peers use 2 "
               "worker processes running 1 task each); the ratios compare with it. Other fleet "
               "rows (other ways to consume results; 4 slots per worker, a second shape) are for "
               "information.")
    out.append("- **fleet advantage** = how many times better the ◆ fleet row is than that peer "
               "row: peer ÷ fleet for times, latencies and memory, fleet ÷ peer for throughputs. "
               "Above 1: fleet is better; below 1: the peer is.")
    out.append("- Workers are started and warmed (a few no-op tasks) before anything is timed, "
               "for fleet as for the peers; startup is listed separately at the end.")
    out.append("")

    # --- W3 ---------------------------------------------------------------------------
    ref = fleet_reference(rows, "W3")
    out.append("## W3: 150 tasks returning 16 MB each, summed as they complete, 2 workers\n")
    out.append("Each task sleeps 0.1 s and returns a 10000 × 200 float64 array (ideal wall time "
               "150 × 0.1 s / 2 = 7.5 s; 2.4 GB of results in all). fleet submits all 150 and "
               "sums with `fleet::AsCompleted` (or a `fleet::Wait` loop), reading each result "
               "in place in its worker's store with `GetView` (or copying it out with `Get`) "
               "and dropping each `ObjectRef` once summed; the `fleet::MapUnordered` row submits "
               "as it consumes, never more than `max_in_flight` tasks out, and gets copies. "
               "A fleet worker's store pre-faults 256 MiB at start: that is in *before*, not "
               "in the growth, as the peers' interpreters and imports are. **Memory growth** "
               "is the peak less the value just before the tasks were submitted, of the whole "
               "system under test: scheduler, workers and client (Dask's scheduler, nannies and "
               "workers; the pool's workers; ...). *cgroup*: each system ran alone in its own "
               "memory cgroup, sampled every 50 ms (shared memory counted once; page cache "
               "included). *tree RSS*: the RSS of every process of the system summed, sampled "
               "every 50 ms (shared pages counted once per process that maps them: a fleet client "
               "that maps a worker's store counts its pages again).\n")
    out.append(table(
        rows, ["W3"],
        [("wall_s", "wall s", False), ("cgroup_growth_mb", "growth, cgroup MB", False),
         ("cgroup_baseline_mb", "before, cgroup MB", False),
         ("cgroup_peak_mb", "peak, cgroup MB", False),
         ("cgroup_kernel_peak_mb", "kernel peak, cgroup MB", False),
         ("rss_growth_mb", "growth, tree RSS MB", False),
         ("peak_rss_mb", "peak tree RSS MB", False)],
        compare=[("wall_s", False, "fleet advantage (wall)"),
                 ("cgroup_growth_mb", False, "fleet advantage (cgroup growth)"),
                 ("rss_growth_mb", False, "fleet advantage (tree RSS growth)")],
        reference=lambda k: ref)[0])
    out.append("")
    out.append("*kernel peak*: fleet only — the cgroup's own high-water mark "
               "(`memory.max_usage_in_bytes`, v1, reset just before the tasks were submitted), "
               "which also sees what the 50 ms samples miss; compare it with *peak, cgroup*.\n")

    # --- W4 ---------------------------------------------------------------------------
    ref = fleet_reference(rows, "W4")
    out.append("## W4: 95 tasks over one shared 80 MB array (sleep 10 ms + mean of a window), "
               "2 workers\n")
    out.append("Ideal ≈ 95 × (10 ms sleep + ~0.5 ms reading 4 MB) / 2 ≈ 0.5 s plus placing "
               "the data. fleet: the array is written into a same-host worker's store with "
               "`fleet::ArrayBuilder` and sealed (◆; the zero-copy counterpart of the pool's "
               "fork), or `fleet::Put` once from a `fleet::Array<double>`; 95 `slow_mean` tasks "
               "read it in place through `fleet::ArrayView`, on the other worker too (it maps "
               "the holder's store). Making the data is timed for no system; the wall time "
               "includes placing it (Seal, Put, scatter, push or fork).\n")
    out.append(table(rows, ["W4"],
                     [("wall_s", "wall s", False), ("placement_s", "of which data placement s",
                                                     False),
                      ("tasks_on_busiest_worker", "tasks on busiest worker", False)],
                     compare=[("wall_s", False, "fleet advantage (wall)")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- Put/Get --------------------------------------------------------------------------
    ref_in = fleet_reference(rows, "M3", "Put")
    ref_out = fleet_reference(rows, "M3", "task returns")

    def m3_ref(key):
        if key[0] == "fleet":
            return key if key in (ref_in, ref_out) else None
        return ref_out if "return" in key[1] else ref_in

    out.append("## Put/Get: 100 MB in and out (M3), and transfers against the machine's limits\n")
    out.append("In: the client places a 100 MB float64 array and one task sums it (fleet: "
               "`fleet::Put`, then a task taking `fleet::ArrayView<double>`). Out: a task makes a "
               "100 MB array and the client receives it (fleet: `ObjectRef::Get`, which fetches "
               "and decodes into a `fleet::Array`). \"In\" peer rows compare with fleet's Put row, "
               "\"return\" rows with fleet's return row.\n")
    out.append(table(rows, ["M3"],
                     [("seconds", "seconds", False), ("MB_per_s", "MB/s", True),
                      ("put_s", "of which Put / scatter s", False)],
                     compare=[("seconds", False, "fleet advantage (seconds)")],
                     reference=m3_ref)[0])
    out.append("")
    out.append("Bandwidths, GB/s. The limit rows are measured by `fleet-bench-floor` in the same "
               "run (C++; memcpy and the read loop with Google Benchmark, loopback TCP between "
               "two processes with 1 MiB writes); \"of the limit\" divides each fleet figure by "
               "the limit that bounds it: the read loop for in-place reads, memcpy for what "
               "moves through a same-host worker's mapped store, loopback TCP for what "
               "crosses a process boundary over gRPC (the path between hosts, measured here "
               "with workers started with `--local_store=false`).\n")
    data = collect(rows, ["XFER"])
    data = OrderedDict(sorted(data.items(), key=lambda kv: kv[0][0] != "floor"))  # limits first
    limit_read = next((k for k in data if k[0] == "floor" and k[1].startswith("read loop")), None)
    limit_tcp = next((k for k in data if k[0] == "floor" and k[1].startswith("loopback TCP")),
                     None)
    limit_copy = next((k for k in data if k[0] == "floor" and k[1].startswith("memcpy")
                       and "warm" in k[1]), None)
    lines = ["| system | transfer | GB/s | of the limit |", "|---|---|---|---|"]
    for key, vals in data.items():
        system, variant = key
        if "unsupported" in vals:
            lines.append(f"| {SYSTEM_NAME[system]} | {variant} | not measured: "
                         f"{vals['unsupported'][0]} | |")
            continue
        share = "—"
        if system == "fleet" and vals.get("GB_per_s"):
            if variant.startswith("in-place"):
                limit = limit_read
            elif "same" in variant and "host" in variant:
                limit = limit_copy  # through mapped shared memory: a copy at most
            else:
                limit = limit_tcp
            lim = best_of(data, limit, "GB_per_s", True) if limit else None
            if lim:
                share = f"{100 * best(vals['GB_per_s'], True) / lim:.0f} %"
        lines.append(f"| {SYSTEM_NAME[system]} | {variant} | "
                     f"{cell(vals.get('GB_per_s', []), True)} | {share} |")
    out.append("\n".join(lines))
    out.append("")

    # --- M1 / M2 ------------------------------------------------------------------------------
    ref = fleet_reference(rows, "M1")
    out.append("## M1: no-op task throughput, 20,000 tasks submitted at once, then gathered\n")
    out.append(table(rows, ["M1"], [("tasks_per_s", "tasks/s", True)],
                     compare=[("tasks_per_s", True, "fleet advantage")],
                     reference=lambda k: ref)[0])
    out.append("")
    ref = fleet_reference(rows, "M2")
    out.append("## M2: synchronous round trip, 1,000 sequential no-op tasks\n")
    out.append("fleet's round trip crosses two processes and back (client → scheduler → worker "
               "→ scheduler → client, on long-lived gRPC streams); the bare gRPC rows are one "
               "process pair, measured in the same run.\n")
    out.append(table(rows, ["M2"], [("median_us", "median µs", False), ("p99_us", "p99 µs", False)],
                     compare=[("median_us", False, "fleet advantage (median)"),
                              ("p99_us", False, "fleet advantage (p99)")],
                     reference=lambda k: ref)[0])
    out.append("")

    out.append("## Startup (until the workers are ready)\n")
    out.append("fleet: from starting the scheduler until both workers are registered in "
               "`/status`. Peers: creating the cluster or pool and running a few warm-up tasks "
               "(peers/bench_*.py).\n")
    out.append(startup_table(rows))
    out.append("")

    out.append("## What was not measured, and deviations\n")
    notes = []
    for r in rows:
        if r["metric"] == "unsupported":
            notes.append(f"- {SYSTEM_NAME.get(r['system'], r['system'])} {r['workload']} "
                         f"\"{r['variant']}\": {r['value']}.")
    if not meta.get("ipp", True):
        notes.append("- ipyparallel was skipped (`--no-ipp`, or not installed).")
    else:
        notes.append("- ipyparallel M1 is not run: 20,000 tasks take ~100 s on it, beyond "
                     "bench/run's time budget (its M2, M3, W3 and W4 are).")
    notes.append("- M1 runs one trial per peer system (`peer_run.py --m1-trials 1`; peers/common.py "
                 "has 3), so that Dask's ~40 s trial fits the budget; fleet runs 3.")
    notes.append("- Each peer measurement runs once per bench/run (peers/run-all.sh runs 2 rounds); "
                 "trials inside one process are as in peers/common.py.")
    if not meta.get("peers", True):
        notes.append("- The peers were not run (`--no-peers`).")
    for f in meta.get("failures", []):
        notes.append(f"- FAILED: `{f}` (see its log in the run's output directory).")
    out.extend(notes)
    out.append("")

    notes_md = os.path.join(HERE, "notes.md")
    if os.path.exists(notes_md):
        with open(notes_md) as f:
            out.append(f.read().rstrip() + "\n")

    with open(args.output, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
