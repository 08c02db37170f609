"""Pickle size of fitted models against the size of their parameters.

An MF on ~40k synthetic interactions (1,000 users x 500 items, 16 factors)
for each loss; prints the pickle size, the parameters' size and the other
fitted state (optimizer moments, seen matrix, id maps).

Usage (from the repository root)::

    python benchmarks/pickle_size.py
"""

import pickle
import sys

import numpy as np

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import make_interactions


def main():
    X = make_interactions(1000, 500, density=0.08, random_state=0).interactions
    y = np.random.RandomState(0).uniform(1, 5, len(X))
    print(f"{len(X)} interactions")
    for loss in ("mse", "bce", "bpr"):
        est = MatrixFactorization(loss=loss, n_components=16, max_iter=2, random_state=0)
        est.fit(X, y if loss == "mse" else None)
        params = sum(p.numel() * p.element_size() for p in est.net_.module_.parameters())
        print(f"loss={loss}: pickle {len(pickle.dumps(est)) / 1e6:.3f} MB, "
              f"parameters {params / 1e6:.3f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
