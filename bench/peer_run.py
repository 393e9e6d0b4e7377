#!/usr/bin/python3
"""Run one measurement of the Python peers (peers/bench.py) from bench/run.

    /usr/bin/python3 bench/peer_run.py --peers DIR [--m1-trials N] -- \
        --system dask --workload M1 --round 1 --out results.jsonl

Everything after `--` goes to peers/bench.py unchanged. The only change to
the peers' own definitions is --m1-trials, which lowers M1_TRIALS (3 in
peers/common.py) so that M1 on Dask (~40 s a trial) fits bench/run's time
budget; bench/run says so in the report.
"""
import argparse
import os
import sys


def main():
    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", required=True, help="a writable copy of the peers directory")
    ap.add_argument("--m1-trials", type=int, default=None, help="override M1_TRIALS")
    args = ap.parse_args(argv)

    peers = os.path.abspath(args.peers)
    sys.path.insert(0, peers)
    os.chdir(peers)
    import common  # noqa: E402  (from the peers directory)
    if args.m1_trials is not None:
        # bench_<system>.py import M1_TRIALS by name, so set it before they load.
        common.M1_TRIALS = args.m1_trials
    import bench  # noqa: E402
    sys.argv = [os.path.join(peers, "bench.py")] + rest
    bench.main()


if __name__ == "__main__":
    main()
