"""joblib's side of fleet-bench-map: N no-op inputs through
Parallel(n_jobs=2, batch_size='auto'), inputs/s, best of --trials.

    /usr/bin/python3 bench/map_joblib.py [--inputs 1000000] [--trials 3] [--n_jobs 2]
"""
import argparse
import time

from joblib import Parallel, delayed


def noop(i):
    return i


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--n_jobs", type=int, default=2)
    args = parser.parse_args()
    with Parallel(n_jobs=args.n_jobs, batch_size="auto") as parallel:
        parallel(delayed(noop)(i) for i in range(1000))  # start the workers
        for trial in range(args.trials):
            start = time.perf_counter()
            out = parallel(delayed(noop)(i) for i in range(args.inputs))
            seconds = time.perf_counter() - start
            assert out == list(range(args.inputs))
            print(f"joblib trial {trial}: {args.inputs} inputs in {seconds:.3f} s "
                  f"({args.inputs / seconds:.0f}/s)", flush=True)


if __name__ == "__main__":
    main()
