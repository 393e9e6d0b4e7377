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
import re
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


def best_value(rows, system, workload, metric, higher_better, pred=lambda v: True):
    """The best figure of `metric` over the rows of one system and workload whose variant
    satisfies `pred`, with that variant; (None, None) when there is none."""
    found = [(r["value"], r["variant"]) for r in rows
             if r["system"] == system and r["workload"] == workload and r["metric"] == metric
             and isinstance(r["value"], (int, float)) and pred(r["variant"])]
    if not found:
        return None, None
    return (max if higher_better else min)(found, key=lambda t: t[0])


def is_reference(variant):
    """fleet's like-for-like shape in the default process isolation."""
    return variant.endswith(REFERENCE_CLUSTER)


def derive_efficiency(rows):
    """W1: the peers' parallel efficiency, serial / (2 workers x wall), against the serial
    Python reference of the same variant measured in the same run (fleet records its own)."""
    serial = defaultdict(list)
    for r in rows:
        if r["system"] == "serial" and r["workload"] == "W1" and r["metric"] == "wall_s":
            serial[r["variant"]].append(r["value"])
    out = []
    for r in rows:
        if (r["workload"] == "W1" and r["metric"] == "wall_s" and r["system"] not in
                ("fleet", "serial") and serial.get(r["variant"]) and r["value"] > 0):
            out.append(dict(r, metric="efficiency_pct",
                            value=100 * min(serial[r["variant"]]) / (2 * r["value"])))
    return rows + out


def verdict(value, bound, higher_better, unit=""):
    """met / missed, and by how much."""
    if value is None or bound is None:
        return "not measured"
    ok = value >= bound if higher_better else value <= bound
    if ok:
        return "**met**"
    gap = bound - value if higher_better else value - bound
    rel = 100 * gap / bound if bound else 0
    return f"**missed** by {fmt(gap)}{unit} ({rel:.0f} % {'short' if higher_better else 'over'})"


def targets_table(rows):
    """Issue 7's targets: fleet's figure from this run, the bound, met or missed."""
    lines = ["| target | fleet's figure (best in this run) | bound | result |",
             "|---|---|---|---|"]

    def add(name, value, where, bound_text, bound, higher_better, unit=""):
        fig = "not measured" if value is None else f"{fmt(value)}{unit} — {where}"
        lines.append(f"| {name} | {fig} | {bound_text} | "
                     f"{verdict(value, bound, higher_better, unit)} |")

    iso = " (process isolation)"
    v, var = best_value(rows, "fleet", "M1", "tasks_per_s", True, is_reference)
    add("no-op tasks, one future each, one client", v, f"M1, {var}{iso}" if var else "",
        "≥ 100,000 tasks/s", 100_000, True, " tasks/s")
    fm, fvar = best_value(rows, "fleet", "MAP", "tasks_per_s", True)
    jm, jvar = best_value(rows, "joblib", "MAP", "tasks_per_s", True,
                          lambda x: "batch_size='auto'" in x)
    add("`fleet::Map` over 1,000,000 no-ops ahead of joblib `batch_size='auto'`", fm,
        f"MAP, {fvar}{iso}" if fvar else "",
        f"> joblib's {fmt(jm)} tasks/s in this run" if jm else "> joblib (not measured)",
        jm, True, " tasks/s")
    m2, m2var = best_value(rows, "fleet", "M2", "median_us", False, is_reference)
    add("synchronous round trip, median", m2, f"M2, {m2var}{iso}" if m2var else "",
        "≤ 600 µs", 600, False, " µs")
    # Like for like: the ping-pong over the transport fleet's round trip used
    # (a scheduler's same-host clients and workers reach it through its unix
    # socket; between hosts, and with --nolocal_socket, over TCP). The other
    # transport's figures go beside them.
    over_unix = bool(m2var) and "unix socket" in m2var

    def pingpong(unix):
        prefix = ("bare gRPC bidi-stream ping-pong over a unix socket" if unix
                  else "bare gRPC bidi-stream ping-pong, ")
        return best_value(rows, "floor", "M2", "median_us", False,
                          lambda x: x.startswith(prefix))[0]

    def fastest_chain(unix):
        # The floor of the path through the scheduler both ways, measured:
        # client → scheduler → worker over gRPC streams, worker → executor
        # over a socketpair, and back the same way, with no task system in
        # them, through the fastest relay. A same-host client's results no
        # longer take it back (the worker pushes them, --deliver_to_owner);
        # a client on another host's still do.
        return best_value(rows, "floor", "M2", "median_us", False,
                          lambda x: x.startswith("bare chain") and
                          ("over unix sockets" in x) == unix)

    def fleet_m2(note_test):
        return best_value(rows, "fleet", "M2", "median_us", False,
                          lambda x: x.startswith("Remote(i).Get()") and note_test(x))[0]

    transport = "unix socket" if over_unix else "TCP"
    g = pingpong(over_unix)
    ratio = m2 / g if m2 and g else None
    where = (f"{fmt(m2)} µs ÷ {fmt(g)} µs (bare gRPC bidi stream over a {transport}, the "
             f"transport of fleet's round trip, C++, same run)" if ratio else "")
    add("round trip within 2.5× of a bare gRPC stream ping-pong", ratio, where,
        "≤ 2.5×, or shown unreachable by the floor", 2.5, False, "×")
    unix_g, tcp_g = pingpong(True), pingpong(False)
    no_push = fleet_m2(lambda x: "--deliver_to_owner=false" in x and "nolocal_socket" not in x)
    no_direct = fleet_m2(lambda x: "--direct_tasks=false" in x)
    tcp = fleet_m2(lambda x: "nolocal_socket" in x)
    chain, chain_var = fastest_chain(False)
    u, _ = best_value(rows, "floor", "M2", "median_us", False,
                      lambda x: x.startswith("Unix socketpair"))
    if m2 and unix_g:
        parts = [f"same host (the row above): the client hands the task to an idle worker over "
                 f"its store's socket and the worker pushes the result back (direct tasks: no "
                 f"gRPC on the path, the scheduler told beside it), {fmt(m2)} µs"]
        if no_direct:
            parts.append(f"the same cluster with `--direct_tasks=false` (client → scheduler → "
                         f"worker over gRPC, the result pushed back) {fmt(no_direct)} µs = "
                         f"{fmt(no_direct / unix_g)}× the unix ping-pong")
        if no_push:
            parts.append(f"with `--deliver_to_owner=false` (neither: the result back through "
                         f"the scheduler, gRPC four times) {fmt(no_push)} µs = "
                         f"{fmt(no_push / unix_g)}× the unix ping-pong")
        if tcp and tcp_g:
            parts.append(f"over TCP without the push, as between hosts, {fmt(tcp)} µs = "
                         f"{fmt(tcp / tcp_g)}× one TCP ping-pong ({fmt(tcp_g)} µs)")
        if chain and tcp_g:
            relay = chain_var.split("; ")[-1].split(", 32 B")[0] if chain_var else ""
            summed = (f"; summed from its parts, 2 × {fmt(tcp_g)} + {fmt(u)} µs = "
                      f"{fmt(2 * tcp_g + u)} µs" if u else "")
            parts.append(f"that path's floor, a bare chain of its four gRPC crossings and a "
                         f"socketpair hop over TCP ({relay}), {fmt(chain)} µs = "
                         f"{chain / tcp_g:.2f}× one TCP ping-pong{summed}")
        parts.append(f"2.5× one unix ping-pong is {fmt(2.5 * unix_g)} µs")
        lines.append("| (context) the round trip's paths, measured in this run | "
                     + "; ".join(parts) + " | — | — |")
    # The issue's wording: "a task reading every element of a 100 MB
    # same-host argument, end to end": the client Puts it, a task sums it in
    # place, the client gets the sum (M3's "Put + task sum" row, same host).
    r, rvar = best_value(rows, "fleet", "M3", "MB_per_s", True,
                         lambda x: x.startswith("Put + task sum") and "gRPC" not in x)
    r = r / 1000 if r else r
    add("a task reading every element of a 100 MB same-host argument, end to end", r,
        f"M3, {rvar}{iso}" if rvar else "", "≥ 2 GB/s", 2.0, True, " GB/s")
    c, cvar = best_value(rows, "fleet", "XFER", "GB_per_s", True,
                         lambda x: x.startswith("worker to worker over gRPC"))
    add("cross-worker transfer (over gRPC, the path between hosts)", c,
        f"{cvar}{iso}" if cvar else "", "≥ 0.65 GB/s", 0.65, True, " GB/s")
    w2, w2var = best_value(rows, "fleet", "W2", "wall_s", False)
    add("W2: 10 × (sleep 1 s + sum of squares) on 8 slots", w2,
        f"{w2var}{iso}" if w2var else "", "≤ 2.02 s", 2.02, False, " s")
    w1, w1var = best_value(rows, "fleet", "W1", "efficiency_pct", True)
    w1_threads, _ = best_value(rows, "fleet", "W1", "threads_efficiency_pct", True)
    w1_context = (f"; the same calls on 2 bare threads of the client: {fmt(w1_threads)} %, "
                  f"the machine's own two-core efficiency in this run" if w1_threads else "")
    add("W1 parallel efficiency (against fleet's own serial C++ time, same run)", w1,
        f"{w1var}{iso}{w1_context}" if w1var else "", "≥ 90 %", 90, True, " %")
    for w in ("W3", "W4"):
        fv, fvar = best_value(rows, "fleet", w, "wall_s", False, is_reference)
        peers = [(best_value(rows, p, w, "wall_s", False)[0], p) for p in
                 ("dask", "joblib", "pool", "ipp")]
        peers = [(x, p) for x, p in peers if x is not None]
        if peers:
            pv, pname = min(peers)
            bound_text = f"< the best peer: {SYSTEM_NAME[pname]} {fmt(pv)} s"
        else:
            pv, bound_text = None, "< every peer (no peer ran)"
        # "ahead": strictly faster than the fastest peer.
        add(f"{w} wall time ahead of every peer", fv, f"{fvar}{iso}" if fvar else "",
            bound_text, pv, False, " s")
    # A cost, not a best case: the mean over M1's trials (each ±0.5 µs: 10 ms clock ticks).
    sched = [r["value"] for r in rows if r["system"] == "fleet" and r["workload"] == "Q9"
             and r["metric"] == "scheduler_us_per_task" and r["variant"].startswith("M1:")
             and is_reference(r["variant"])]
    scvar = next((r["variant"] for r in rows if r["system"] == "fleet" and r["workload"] == "Q9"
                  and r["variant"].startswith("M1:") and is_reference(r["variant"])), None)
    sc = sum(sched) / len(sched) if sched else None
    add("scheduler CPU time per task", sc,
        f"mean of {len(sched)} trials of {scvar}{iso}" if scvar else "", "≤ 10 µs", 10, False,
        " µs")
    return "\n".join(lines)


def median(values):
    v = sorted(values)
    n = len(v)
    return None if n == 0 else (v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2)


def scaling_section(directory):
    """Issue 7's scaling question, from bench/scaling's last run on a many-core machine."""
    path = os.path.join(directory, "scaling.jsonl")
    if not os.path.exists(path):
        return ["## Scaling: not measured — no 16-core machine was available\n",
                "Issue 7 asks for W1 and Q1 (no-op throughput) on a 16-core machine with 1 to "
                "16 slots; `bench/scaling` runs them there, and its figures "
                f"(`{os.path.relpath(path, os.path.dirname(HERE))}`) are missing. No figure is "
                "extrapolated from the 2-core machine.\n"]
    rows = load(path)
    meta = {}
    meta_path = os.path.join(directory, "scaling-meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    by = defaultdict(lambda: defaultdict(list))  # slots -> "workload metric" -> values
    per_trial = defaultdict(dict)  # (slots, trial) -> metric -> value, W1 only
    clients = defaultdict(list)  # (slots, clients) -> tasks/s
    w1_tasks = {}  # slots -> W1's tasks per trial
    for r in rows:
        m = re.search(r"1 worker x (\d+) slot", r.get("cluster", ""))
        if not m:
            continue
        slots = int(m.group(1))
        by[slots][f"{r['workload']} {r['metric']}"].append(r["value"])
        if r["workload"] == "W1":
            per_trial[(slots, r["trial"])][r["metric"]] = r["value"]
            tasks = re.search(r"complex_operation x (\d+)", r["variant"])
            if tasks:
                w1_tasks[slots] = int(tasks.group(1))
        if r["workload"] == "Q2" and r["metric"] == "tasks_per_s":
            c = re.match(r"(\d+) client processes", r["variant"])
            if c:
                clients[(slots, int(c.group(1)))].append(r["value"])
    out = [f"## Scaling: 1 to {max(by)} slots on a {meta.get('nproc', '?')}-core machine\n",
           f"- Measured {meta.get('started', '?')} → {meta.get('finished', '?')} by "
           f"`bench/scaling` on the machine the `device` tool lent: `nproc` "
           f"{meta.get('nproc', '?')}; CPU: {meta.get('cpu', '?')}; memory: "
           f"{meta.get('mem_gib', '?')} GiB; OS: {meta.get('os', '?')}; kernel "
           f"{meta.get('kernel', '?')}; fleet commit `{meta.get('fleet_commit', '?')}`. The "
           "figures are kept in `bench/results/` and re-rendered by every report; they are not "
           "from this report's 2-core run.",
           "- Each slot count has a fresh cluster: one scheduler and one worker with `--slots=N` "
           "(process isolation), on the same machine as the client. W1 runs 2N "
           "`complex_operation` tasks (two waves), after the same calls serially in the client "
           "and on N threads of the client (no fleet: the machine's own parallel efficiency for "
           "the kernel). Efficiency = serial ÷ (N × wall). Medians over the trials; that "
           "machine's core speed also drifts, so the serial reference varies ±30 % between "
           "trials a few seconds apart, and the fleet ÷ threads ratio of each trial (both "
           "N-way, taken back to back) is the steadier reading of fleet's own cost.",
           "- Q1 is M1: 20,000 no-ops submitted at once by one client, then gathered; "
           "speed-up and efficiency against 1 slot. A no-op's cost is the client's, the "
           "scheduler's and the worker's, not the slot's, so slots beyond a few add little.\n",
           "| slots | W1 tasks | serial s | N threads: wall s | threads efficiency | fleet: wall s "
           "| **fleet efficiency** | fleet wall ÷ threads wall | Q1 tasks/s | Q1 speed-up | Q1 "
           "efficiency | scheduler µs/task |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = median(by[min(by)]["M1 tasks_per_s"]) if by else None
    for slots in sorted(by):
        d = by[slots]
        ratios = [t["wall_s"] / t["threads_wall_s"] for (s_, _), t in per_trial.items()
                  if s_ == slots and t.get("threads_wall_s") and "wall_s" in t]

        def med(key, suffix=""):
            v = median(d.get(key, []))
            return "—" if v is None else fmt(v) + suffix
        tput = median(d.get("M1 tasks_per_s", []))
        speedup = tput / base if tput and base else None
        out.append(
            f"| {slots} | {w1_tasks.get(slots, '?')} | {med('W1 serial_s')} | {med('W1 threads_wall_s')} | "
            f"{med('W1 threads_efficiency_pct', ' %')} | {med('W1 wall_s')} | "
            f"**{med('W1 efficiency_pct', ' %')}** | "
            f"{fmt(median(ratios)) + '×' if ratios else '—'} | {med('M1 tasks_per_s')} | "
            f"{fmt(speedup) + '×' if speedup else '—'} | "
            f"{fmt(100 * speedup / slots) + ' %' if speedup else '—'} | "
            f"{med('Q9 scheduler_us_per_task')} |")
    out.append("")
    if clients:
        out.append("Several clients at once (Q2's program) on the most slots: total no-op "
                   "tasks/s from the first submission to the last result, median of the "
                   "trials (range).\n")
        out.append("| slots | clients | tasks/s |")
        out.append("|---|---|---|")
        for (slots, n), v in sorted(clients.items()):
            out.append(f"| {slots} | {n} | {fmt(median(v))} ({fmt(min(v))}–{fmt(max(v))}) |")
        out.append("")
    return out


def latency_section(directory):
    """The round trip and its floor on the many-core machine (bench/scaling latency)."""
    path = os.path.join(directory, "latency.jsonl")
    if not os.path.exists(path):
        return []
    rows = [r for r in load(path) if r["metric"] == "median_us"]
    meta = {}
    meta_path = os.path.join(directory, "latency-meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)

    def values(pattern):
        return [r["value"] for r in rows if re.search(pattern, r["variant"])]

    fleet_rows = {"socket": values(r"^Remote.*unix socket"), "tcp": values(r"^Remote.*over TCP")}
    ping = {"socket": values(r"bidi-stream ping-pong over a unix socket"),
            "tcp": values(r"bidi-stream ping-pong, 32 B")}
    chain = {"socket": values(r"async API, one thread each, both streams over unix"),
             "tcp": values(r"async API, one thread each, 32 B")}
    out = [f"## The round trip on a {meta.get('nproc', '?')}-core machine\n",
           f"- Measured {meta.get('started', '?')} → {meta.get('finished', '?')} by "
           f"`bench/scaling latency` on the machine the `device` tool lent ({meta.get('cpu', '?')}, "
           f"{meta.get('os', '?')}); fleet commit `{meta.get('fleet_commit', '?')}`. Kept in "
           "`bench/results/` and re-rendered by every report: not from this report's 2-core run.",
           "- The same shape as M2 above (2 workers x 1 slot, process isolation, 1,000 "
           "sequential no-ops), on fresh clusters alternating between the scheduler's unix "
           "socket and TCP (`--nolocal_socket`); fleet's figure is the median of those "
           "medians. The floor's rows ran just before, in the same invocation. With cores to "
           "spare, no process waits for another's time slice, which the 2-core machine's "
           "figures above include.\n",
           "| transport | fleet M2 median µs (runs) | bare stream ping-pong µs | bare chain µs "
           "(async API, one thread each) | chain ÷ ping-pong | **fleet ÷ ping-pong** | fleet ÷ "
           "chain |",
           "|---|---|---|---|---|---|---|"]
    for transport, name in (("socket", "unix socket"), ("tcp", "TCP")):
        f, p, c = median(fleet_rows[transport]), median(ping[transport]), median(chain[transport])
        if f is None or p is None:
            continue
        runs = ", ".join(fmt(v) for v in fleet_rows[transport])
        out.append(f"| {name} | {fmt(f)} ({runs}) | {fmt(p)} | {fmt(c) if c else '—'} | "
                   f"{fmt(c / p) + '×' if c else '—'} | **{fmt(f / p)}×** | "
                   f"{fmt(f / c) + '×' if c else '—'} |")
    out.append("")
    return out


def first_fleet(rows, workload):
    for r in rows:
        if r["system"] == "fleet" and r["workload"] == workload and r["metric"] != "startup_s":
            return ("fleet", r["variant"])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--scaling", default=os.path.join(HERE, "results"),
                    help="directory with bench/scaling's scaling.jsonl and scaling-meta.json")
    args = ap.parse_args()

    rows = derive_efficiency(derive_growth(load(args.results)))
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

    out.append("## Targets of issue 7\n")
    out.append("On this machine (its cores above), fleet with 2 workers in the default process "
               "isolation (tasks run in `fleet-executor` processes), 1 slot each unless the "
               "figure says otherwise (W2: 4 slots each, 8 in all). Each figure is the best "
               "measurement of this run (the scheduler's CPU time: the mean of M1's trials); "
               "the sections below give the ranges. The 100 MB argument: the client `Put`s it "
               "and one task sums every element in place (M3), timed from the Put to the sum "
               "back in the client; \"cross-worker\" is worker B "
               "fetching worker A's 1 GB result over gRPC (workers with "
               "`--local_store=false`, the path between hosts; on one host B reads A's store "
               "in place, in the bandwidth table).\n")
    out.append(targets_table(rows))
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
    out.append("- **Isolation**: every fleet row ran in the default process isolation (tasks in "
               "`fleet-executor` processes, `--isolation=process`) unless its variant says "
               "\"thread isolation\" (`--isolation=thread`: tasks on the workers' threads).")
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
    out.append("On one host fleet's round trip goes client → worker → executor → worker → "
               "client over unix sockets (a direct task: the client hands the call to an idle "
               "worker, which pushes the result back; the scheduler is told after the fact). "
               "The variants take the longer paths: through the scheduler over gRPC with the "
               "result pushed back (`--direct_tasks=false`), through the scheduler both ways "
               "(`--deliver_to_owner=false`), and over TCP as between hosts. The bare gRPC rows "
               "are one process pair, measured in the same run.\n")
    out.append(table(rows, ["M2"], [("median_us", "median µs", False), ("p99_us", "p99 µs", False)],
                     compare=[("median_us", False, "fleet advantage (median)"),
                              ("p99_us", False, "fleet advantage (p99)")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- Q2 -------------------------------------------------------------------------------
    out.append("## Q2: no-op throughput, 4 client processes at once\n")
    out.append("4 client processes (`fleet-bench-clients`), each connected and warmed first, "
               "start together; each submits 20,000 no-op tasks at once (one future each, as "
               "M1) and gathers them. Total tasks/s over the wall time from the first "
               "submission of any client to the last result of any. **No peer measures "
               "this** (peers/ has no multi-client benchmark), so there is no ratio column; "
               "the single-client M1 row of this run is repeated for comparison.\n")
    out.append(table(rows, ["Q2"], [("tasks_per_s", "tasks/s", True), ("wall_s", "wall s", False)])[0])
    m1, m1var = best_value(rows, "fleet", "M1", "tasks_per_s", True, is_reference)
    q2, _ = best_value(rows, "fleet", "Q2", "tasks_per_s", True)
    if m1 and q2:
        out.append(f"\nOne client (M1, {m1var}): **{fmt(m1)}** tasks/s; 4 clients together: "
                   f"{q2 / m1:.2f}× that.")
    out.append("")

    # --- Q4 -------------------------------------------------------------------------------
    ref = fleet_reference(rows, "Q4")
    out.append("## Q4: tasks with a 1 MB argument and a 1 MB result\n")
    out.append("200 tasks submitted at once, each with its own 1 MB float64 array passed by "
               "value (fleet: a `fleet::Array<double>` argument, which the client Puts "
               "automatically as it is too large to travel inline) and returning an array of "
               "the same size (each element plus one), fetched and checked by the client. "
               "MB/s counts both directions. Peers (`bench/peer_extra.py`): Dask `client.map` "
               "over the arrays, joblib `Parallel` (1 MB is under its auto-memmap threshold, "
               "so pickled), `Pool.map(chunksize=1)`.\n")
    out.append(table(rows, ["Q4"], [("tasks_per_s", "tasks/s", True), ("MB_per_s", "MB/s", True)],
                     compare=[("tasks_per_s", True, "fleet advantage")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- Q5 -------------------------------------------------------------------------------
    put_ref = next((k for k in collect(rows, ["Q5"]) if k[0] == "fleet" and
                    k[1].startswith("Put")), None)
    get_ref = next((k for k in collect(rows, ["Q5"]) if k[0] == "fleet" and
                    k[1].startswith("Get of own Put")), None)

    def q5_ref(key):
        if key[0] == "fleet":
            return key if key in (put_ref, get_ref) else None
        return put_ref if "scatter" in key[1] else get_ref

    out.append("## Q5: Put and Get calls per second, 100-byte objects\n")
    out.append("fleet: `fleet::Put` of 10,000 distinct 100-byte strings, one call each, then "
               "`ObjectRef::Get` of each; each rate over its own loop. A small fleet object "
               "travels inline: Put hands it to the scheduler without waiting for an answer "
               "and the client keeps the value, so Get of the client's own small Put needs no "
               "round trip. The third fleet row Gets the results of 10,000 finished no-op "
               "tasks (waited for first). Dask: `scatter(hash=False)` and `Future.result()` "
               "of 500 values (one call each; ~ms a call); joblib and Pool have no object "
               "store. Dask's scatter compares with fleet's Put, its result() with fleet's "
               "Get of its own Put.\n")
    out.append(table(rows, ["Q5"], [("calls_per_s", "calls/s", True)],
                     compare=[("calls_per_s", True, "fleet advantage")], reference=q5_ref)[0])
    out.append("")

    # --- Q7: W1, W2 ----------------------------------------------------------------------
    ref = first_fleet(rows, "W1")
    out.append("## Q7 / W1: 10 CPU-bound tasks, 2 workers × 1 slot\n")
    out.append("fleet: 10 `complex_operation` tasks of the seed library (a C++ exp·sinh loop "
               "over 8.5 million elements, ~150 ms each), submitted at once; just before each "
               "trial the same 10 calls run one after another in the client (*serial s*, same "
               "code), and the trial's efficiency divides by that serial time (the speed of a "
               "core on this shared virtual machine drifts by tens of percent within a "
               "minute). "
               "The peers run the Python seed loop (1e6 elements; the serial Python reference, "
               "`serial, 1 process`, from the same run). The work differs (C++ against "
               "Python), so wall times compare only roughly; **parallel efficiency** = serial "
               "÷ (2 slots × wall) compares each system with its own serial time, and the "
               "ratio column compares efficiencies. Issue 7's target: ≥ 90 %. Each fleet "
               "trial also runs the 10 calls on 2 bare threads of the client between the "
               "serial run and the cluster run (*2 bare threads*): no task system, so their "
               "efficiency is what the two cores give in that minute.\n")
    out.append(table(rows, ["W1"], [("wall_s", "wall s", False), ("serial_s", "serial s", False),
                                     ("efficiency_pct", "parallel efficiency %", True),
                                     ("threads_wall_s", "2 bare threads: wall s", False),
                                     ("threads_efficiency_pct", "2 bare threads: efficiency %",
                                      True)],
                     compare=[("efficiency_pct", True, "fleet advantage (efficiency)")],
                     reference=lambda k: ref)[0])
    out.append("")
    ref = first_fleet(rows, "W2")
    out.append("## Q7 / W2: 10 × (sleep 1 s + sum of squares of 1,000 values), 8 slots\n")
    out.append("fleet: 10 `compute_heavy_task` tasks on 2 workers × 4 slots; the peers on 8 "
               "slots as peers/ defines them (Dask 8 × 1 and 2 × 4, joblib `n_jobs=8`, "
               "`Pool(8)`, 8 ipyparallel engines). Ideal: 2.0 s (two waves); target ≤ 2.02 s.\n")
    out.append(table(rows, ["W2"], [("wall_s", "wall s", False)],
                     compare=[("wall_s", False, "fleet advantage (wall)")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- Q8 -------------------------------------------------------------------------------
    ref = first_fleet(rows, "Q8")
    out.append("## Q8: a 100,000-task DAG end to end (binary reduction tree)\n")
    out.append("50,000 leaf tasks (`noop(i)`), then pairwise `bench_add` tasks each taking the "
               "`ObjectRef`s of two tasks below (resolved on the cluster), level by level to "
               "one result: 99,999 tasks, all submitted at once; wall time from the first "
               "submission to the final `Get`, sum checked. Dask is the only peer with task "
               "graphs; at ~500 tasks/s its tree is 1,000 leaves (1,999 tasks, said in its "
               "variant), so compare the rates.\n")
    out.append(table(rows, ["Q8"], [("tasks_per_s", "tasks/s", True), ("wall_s", "wall s", False)],
                     compare=[("tasks_per_s", True, "fleet advantage (tasks/s)")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- MAP ------------------------------------------------------------------------------
    ref = first_fleet(rows, "MAP")
    out.append("## fleet::Map over 1,000,000 no-op items, against the peers' batching maps\n")
    out.append("fleet: `fleet::Map(noop, items)` consumed in input order, each result checked; "
               "every fleet row of this table is a way of calling `fleet::Map` (one task per "
               "item unless the variant says it batches). joblib: `Parallel(n_jobs=2)` with its "
               "default `batch_size='auto'`, which groups items into batches sized to take "
               "~0.2 s; Pool: `map` with its default chunksize (len / (4 × processes)). Both "
               "from `bench/peer_extra.py`, in the same run. The issue's target: fleet ahead of "
               "joblib auto.\n")
    out.append(table(rows, ["MAP"], [("tasks_per_s", "items/s", True), ("wall_s", "wall s", False)],
                     compare=[("tasks_per_s", True, "fleet advantage")],
                     reference=lambda k: ref)[0])
    out.append("")

    # --- Q9 -------------------------------------------------------------------------------
    out.append("## Q9: CPU time per task\n")
    out.append("User + system CPU time from `/proc/PID/stat` (utime + stime, and cutime + "
               "cstime for children that exited) read just before and just after each "
               "measurement, divided by its tasks: the scheduler process; the two workers "
               "with their executor processes; the client with its children (for Q2: the 4 "
               "client processes together). Clock ticks are 10 ms, so these are ±10 ms ÷ tasks (±0.5 µs "
               "for 20,000 tasks). The whole machine has 2 cores: the scheduler, workers and "
               "client share them. Target: scheduler ≤ 10 µs per task.\n")
    out.append(table(rows, ["Q9"], [("scheduler_us_per_task", "scheduler µs/task", False),
                                     ("workers_us_per_task", "workers µs/task", False),
                                     ("client_us_per_task", "client µs/task", False)])[0])
    out.append("")

    # --- scaling --------------------------------------------------------------------------
    out.extend(scaling_section(args.scaling))
    out.extend(latency_section(args.scaling))

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
    notes.append("- Q2 (4 clients): no peer measures it. Dask and ipyparallel are not run on "
                 "`fleet::Map`'s 1,000,000 items (no automatic batching: ~35 min at their rates). "
                 "ipyparallel is not run on Q4, Q5 and Q8 (`bench/peer_extra.py` covers Dask, "
                 "joblib and Pool). Dask's Q8 tree is 1,000 leaves, not 50,000; the peers' Q4 runs 2 trials (fleet 3).")
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
