"""Task functions of bench/peer_extra.py that peers/tasks.py lacks.

A module of their own (not __main__) so that every system ships them by
reference; bench/run puts bench/ on PYTHONPATH for the peers' worker
processes.
"""


def plus_one(a):
    """Q4: a 1 MB float64 array in, the same plus one out (as bench_plus_one)."""
    return a + 1.0


def add(a, b):
    """Q8's inner node (as bench_add)."""
    return a + b
