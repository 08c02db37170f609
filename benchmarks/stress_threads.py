"""Same seed, same model under threads: a stress test (not run in CI).

Two threads fit ``AttentionRecommender(random_state=0)`` and
``MatrixFactorization(random_state=0)`` concurrently, ``--repetitions`` times,
and every parameter tensor is compared bit for bit with the models of
sequential fits. Also run through joblib's threading backend (a
cross-validation-like map over both estimators). Before fits owned their
randomness, the attention model differed from the sequential one in every
concurrent run.

Usage (from the repository root)::

    python benchmarks/stress_threads.py                    # 100 repetitions
    python benchmarks/stress_threads.py --repetitions 10

Exit status 1 when any concurrent fit differs.
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from joblib import Parallel, delayed, parallel_backend
from sklearn.base import clone

from sklearn_recsys import AttentionRecommender, MatrixFactorization
from sklearn_recsys.datasets import make_interactions


def weights(est):
    return [p.detach().clone() for p in est.net_.module_.parameters()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=2)
    args = parser.parse_args(argv)
    X = make_interactions(300, 120, density=0.08, sequential=True, random_state=0).interactions
    models = [
        AttentionRecommender(max_iter=args.max_iter, random_state=0),
        MatrixFactorization(loss="bpr", max_iter=args.max_iter, random_state=0),
    ]
    reference = [weights(clone(m).fit(X)) for m in models]
    start = time.perf_counter()
    mismatches = {"threads": 0, "joblib-threading": 0}
    for rep in range(args.repetitions):
        with ThreadPoolExecutor(2) as pool:
            fits = list(pool.map(lambda m: clone(m).fit(X), models))
        mismatches["threads"] += not all(
            same(weights(f), r) for f, r in zip(fits, reference)
        )
        if rep % 10 == 0:
            with parallel_backend("threading", n_jobs=2):
                fits = Parallel()(delayed(clone(m).fit)(X) for m in models)
            mismatches["joblib-threading"] += not all(
                same(weights(f), r) for f, r in zip(fits, reference)
            )
    joblib_runs = len(range(0, args.repetitions, 10))
    print(
        f"{args.repetitions} concurrent runs (2 threads: AttentionRecommender + "
        f"MatrixFactorization, torch threads {torch.get_num_threads()}), "
        f"{time.perf_counter() - start:.0f} s: {mismatches['threads']} differ from the "
        f"sequential fits; joblib threading backend: {mismatches['joblib-threading']} of "
        f"{joblib_runs} runs differ."
    )
    return int(any(mismatches.values()))


if __name__ == "__main__":
    sys.exit(main())
