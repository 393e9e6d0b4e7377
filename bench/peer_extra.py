#!/usr/bin/python3
"""The questions of issue 7 that peers/bench.py does not measure, on the peers
that can do them, with the peers' own setup (cluster and pool sizes, warm-up,
Recorder) so that the figures sit beside fleet's in bench/report.py.

    /usr/bin/python3 bench/peer_extra.py --peers DIR --system joblib --workload MAP \
        --out results.jsonl [--quick]

Workloads (fleet's program in brackets):
  MAP  1,000,000 no-op items through the system's own batching map
       [fleet-bench-map]: joblib Parallel(batch_size='auto') and
       Pool.map(default chunksize). Dask and ipyparallel have no automatic
       batching (~500 and ~200 tasks/s here: 30-80 min): not run.
  Q4   200 tasks at once, each with its own 1 MB float64 argument and a 1 MB
       result [fleet-bench-big-args]: dask (client.map, the arrays travel in
       the graph), joblib (1 MB is below max_nbytes='1M', so pickled), pool
       (map chunksize=1).
  Q5   Put and Get of 500 100-byte objects, one call each
       [fleet-bench-put-get, which does 10,000]: Dask's scatter(hash=False)
       and Future.result() (~2-10 ms a call here); joblib and Pool have no
       object store.
  Q8   a binary reduction tree [fleet-bench-dag] on Dask, the only peer with
       task graphs: 1,000 leaves (1,999 tasks; at ~200-500 tasks/s the
       100,000 tasks of fleet's tree would take 3-8 min), said in the variant.
PYTHONPATH must hold the peers directory (tasks.py, common.py) and bench/
(peer_tasks.py).
"""
import argparse
import os
import sys
import time

import numpy as np

MAP_ITEMS = 1_000_000
Q4_TASKS, Q4_ELEMS, Q4_TRIALS = 200, 125_000, 2
Q5_OBJECTS, Q5_TRIALS = 500, 2
Q8_LEAVES, Q8_TRIALS = 1_000, 2


def joblib_par(n_jobs=2, **kw):
    from joblib import Parallel
    return Parallel(n_jobs=n_jobs, backend="loky", **kw)


# --- MAP -----------------------------------------------------------------------

def map_joblib(rec, n):
    from joblib import delayed
    import tasks
    joblib_par()(delayed(tasks.noop)(i) for i in range(8))  # warm the loky pool
    t0 = now()
    res = joblib_par()(delayed(tasks.noop)(i) for i in range(n))
    dt = now() - t0
    assert res == list(range(n)), "joblib MAP: wrong results"
    rec("Parallel(batch_size='auto'), 1,000,000 items" if n == MAP_ITEMS else
        f"Parallel(batch_size='auto'), {n:,} items", "tasks_per_s", n / dt, items=n)


def map_pool(rec, n):
    import multiprocessing as mp
    import tasks
    with mp.Pool(2) as p:
        p.map(tasks.noop, range(8), chunksize=1)
        t0 = now()
        res = p.map(tasks.noop, range(n))
        dt = now() - t0
    assert res == list(range(n)), "Pool MAP: wrong results"
    rec(f"map default chunksize, {n:,} items", "tasks_per_s", n / dt, items=n)


# --- Q4 ---------------------------------------------------------------------------

def q4_arrays(n):
    return [np.arange(Q4_ELEMS, dtype=np.float64) + i for i in range(n)]


def q4_check(args, results):
    for a, r in zip(args, results):
        assert r.shape == a.shape and np.array_equal(r, a + 1.0), "Q4: wrong result"


def q4(rec, run, n, trials, label):
    for trial in range(trials):
        args = q4_arrays(n)  # made before the clock, as fleet fills its buffer per task
        t0 = now()
        results = run(args)
        dt = now() - t0
        q4_check(args, results)
        rec(label, "tasks_per_s", n / dt, trial)
        rec(label, "MB_per_s", 2 * n * Q4_ELEMS * 8 / 1e6 / dt, trial)


def q4_dask(rec, n, trials):
    import bench_dask
    import peer_tasks
    with bench_dask.cluster(rec) as c:
        def run(args):
            return c.gather(c.map(peer_tasks.plus_one, args, pure=False))
        q4(rec, run, n, trials, "client.map(1 MB arrays) + gather")


def q4_joblib(rec, n, trials):
    from joblib import delayed
    import peer_tasks
    import tasks
    joblib_par()(delayed(tasks.noop)(i) for i in range(8))
    q4(rec, lambda args: joblib_par()(delayed(peer_tasks.plus_one)(a) for a in args), n, trials,
       "Parallel (1 MB arrays pickled: below max_nbytes)")


def q4_pool(rec, n, trials):
    import multiprocessing as mp
    import peer_tasks
    with mp.Pool(2) as p:
        p.map(peer_tasks.plus_one, [np.zeros(1)] * 8, chunksize=1)
        q4(rec, lambda args: p.map(peer_tasks.plus_one, args, chunksize=1), n, trials,
           "map chunksize=1 (pickled)")


# --- Q5 ---------------------------------------------------------------------------

def q5_dask(rec, n, trials):
    import bench_dask
    values = [(str(i) + "." * 100)[:100] for i in range(n)]
    with bench_dask.cluster(rec) as c:
        for trial in range(trials):
            t0 = now()
            futures = [c.scatter(v, hash=False) for v in values]
            put_s = now() - t0
            t0 = now()
            got = [f.result() for f in futures]
            get_s = now() - t0
            assert got == values, "Q5: wrong values"
            rec(f"scatter(hash=False), 100 B values, {n:,} calls", "calls_per_s", n / put_s,
                trial)
            rec(f"Future.result() of scattered 100 B values, {n:,} calls", "calls_per_s",
                n / get_s, trial)
            del futures, got
            bench_dask.wait_idle(c)


def q5_none(rec, system):
    rec("Put / Get of small objects", "unsupported",
        f"{system} has no object store (arguments travel with each call)")


# --- Q8 ---------------------------------------------------------------------------

def q8_dask(rec, leaves, trials):
    import bench_dask
    import peer_tasks
    import tasks
    want = leaves * (leaves - 1) // 2
    label = f"binary reduction tree, {leaves:,} leaves, {2 * leaves - 1:,} tasks (smaller than fleet's)"
    with bench_dask.cluster(rec) as c:
        for trial in range(trials):
            t0 = now()
            level = c.map(tasks.noop, range(leaves), pure=False)
            nxt = []
            while len(level) > 1:
                nxt = [c.submit(peer_tasks.add, level[i], level[i + 1], pure=False)
                       for i in range(0, len(level) - 1, 2)]
                if len(level) % 2:
                    nxt.append(level[-1])
                level = nxt
            total = level[0].result()
            dt = now() - t0
            assert total == want, f"Q8: sum {total}, expected {want}"
            rec(label, "tasks_per_s", (2 * leaves - 1) / dt, trial)
            rec(label, "wall_s", dt, trial)
            del level, nxt  # every future, so that wait_idle sees the scheduler empty
            bench_dask.wait_idle(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", required=True, help="the peers directory (common.py, tasks.py)")
    ap.add_argument("--system", required=True, choices=["dask", "joblib", "pool"])
    ap.add_argument("--workload", required=True, choices=["MAP", "Q4", "Q5", "Q8"])
    ap.add_argument("--round", default="1")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes: a correctness smoke")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.peers))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import Recorder, ensure_tasks_importable  # noqa: E402
    ensure_tasks_importable()
    rec = Recorder(args.out, args.system, args.workload, args.round)
    q = args.quick
    s, w = args.system, args.workload
    if w == "MAP":
        n = 1_000 if q else MAP_ITEMS
        if s == "joblib":
            map_joblib(rec, n)
        elif s == "pool":
            map_pool(rec, n)
        else:
            rec("map over 1,000,000 items", "unsupported",
                "no automatic batching; at ~500 tasks/s 1,000,000 tasks take ~35 min")
    elif w == "Q4":
        {"dask": q4_dask, "joblib": q4_joblib, "pool": q4_pool}[s](
            rec, 4 if q else Q4_TASKS, 1 if q else Q4_TRIALS)
    elif w == "Q5":
        if s == "dask":
            q5_dask(rec, 20 if q else Q5_OBJECTS, 1 if q else Q5_TRIALS)
        else:
            q5_none(rec, s)
    elif w == "Q8":
        if s == "dask":
            q8_dask(rec, 20 if q else Q8_LEAVES, 1 if q else Q8_TRIALS)
        else:
            rec("binary reduction tree", "unsupported", f"{s} has no task graphs")


now = time.perf_counter  # as peers/common.py

if __name__ == "__main__":
    main()
