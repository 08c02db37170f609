"""Do two checkouts of the package fit the same models? (refactoring check)

Fits every estimator with a fixed seed on MovieLens-100K (a random 80/20
split of the interactions; implicit models on the ratings >= 4) in each
checkout, in separate processes with one torch thread, and compares their
``predict`` outputs on the test table and their ``recommend`` scores for 200
users. A behaviour-preserving refactoring gives identical arrays.

Usage (from the repository root; the old checkout e.g. from
``git worktree add ../old <commit>``)::

    python benchmarks/compare_checkouts.py ../old .

Exit status 1 when an output differs by more than ``--atol``.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

_FIT = r'''
import sys, numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
import sklearn_recsys as sr
from sklearn_recsys.datasets import fetch_movielens
from sklearn_recsys.model_selection import train_test_split
X = fetch_movielens("100k", data_home=sys.argv[3]).interactions
train, test = train_test_split(X, test_size=0.2, random_state=0)
liked = train[train["rating"] >= 4]
users = np.unique(train["user"])[:200]
E = int(sys.argv[4])
runs = {
    "mf_mse": (sr.MatrixFactorization(max_iter=E, random_state=0), train, "rating"),
    "mf_mse_es": (sr.MatrixFactorization(max_iter=E, early_stopping=True,
                                         random_state=0), train, "rating"),
    "mf_bpr": (sr.MatrixFactorization(loss="bpr", max_iter=E, random_state=0), liked, None),
    "mf_bce": (sr.MatrixFactorization(loss="bce", max_iter=E, random_state=0), liked, None),
    "neumf": (sr.MatrixFactorization(loss="bpr", architecture="neumf", max_iter=2,
                                     random_state=0), liked, None),
    "cnn": (sr.CNNRecommender(max_iter=2, random_state=0), liked, None),
    "lstm": (sr.LSTMRecommender(max_iter=2, random_state=0), train, None),
    "attention": (sr.AttentionRecommender(max_iter=2, early_stopping=True,
                                          random_state=0), train, None),
    "popularity": (sr.Popularity(), train, None),
    "itemknn": (sr.ItemKNN(), liked, None),
    "ease": (sr.EASE(), liked, None),
}
out = {}
for name, (est, data, target) in runs.items():
    est.fit(data, None if target is None else data[target].to_numpy(float))
    out[name + "/recommend_scores"] = est.recommend(users, k=10)[1]
    out[name + "/predict"] = est.predict(test)
np.savez(sys.argv[2], **out)
'''


def fit_outputs(checkout, data_home, epochs, path):
    subprocess.run(
        [sys.executable, "-c", _FIT, str(checkout), str(path), str(data_home), str(epochs)],
        check=True,
    )
    return np.load(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="root of the reference checkout")
    parser.add_argument("new", help="root of the checkout to compare")
    parser.add_argument("--data-home", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the MF fits")
    parser.add_argument("--atol", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not (Path(args.data_home) / "ml-100k").is_dir():
        print(f"MovieLens-100K not found under {args.data_home}: nothing compared.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        old = fit_outputs(args.old, args.data_home, args.epochs, Path(tmp, "old.npz"))
        new = fit_outputs(args.new, args.data_home, args.epochs, Path(tmp, "new.npz"))
        worst = 0.0
        print(f"| output | max abs difference | identical |\n|---|---|---|")
        for key in old.files:
            a, b = old[key], new[key]
            same_shape = a.shape == b.shape
            diff = float(np.max(np.abs(np.nan_to_num(a - b)))) if same_shape and a.size else 0.0
            diff = diff if same_shape else np.inf
            worst = max(worst, diff)
            print(f"| {key} | {diff:.3g} | {same_shape and np.array_equal(a, b)} |")
    return int(worst > args.atol)


if __name__ == "__main__":
    sys.exit(main())
