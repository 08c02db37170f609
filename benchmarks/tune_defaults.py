"""Choose defaults on validation data of two datasets (never on a test split).

For each dataset (MovieLens-100K and MovieLens latest-small, read from
``--data-home``) and task, the benchmark protocol's *training* part is split
again into an inner training part and a validation part by the same
protocol, and candidate settings are scored on the validation part only:

* ``ratings``: random 80/20 of the ratings (``train_test_split``), RMSE;
* ``topn``: every rating a positive, ``UserHoldout(0.2)``, NDCG@10 over all
  unseen items;
* ``next``: ``LeaveLastOut``, NDCG@10 of the next item.

The test parts of the benchmark splits are never read. Candidates are
defined in ``CANDIDATES`` (``name -> estimator factory``) and can be
filtered with ``--only``. One torch thread; fixed seeds.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/tune_defaults.py --task ratings
    OMP_NUM_THREADS=1 python benchmarks/tune_defaults.py --task next --datasets latest-small
    OMP_NUM_THREADS=1 python benchmarks/tune_defaults.py --task topn --seeds 0 1 2 \
        --only mf-softmax mf-sampled-k1024 mf-sampled-k2048 mf-sampled-k4096
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    ItemKNN,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys.datasets import fetch_movielens
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import LeaveLastOut, UserHoldout, train_test_split

REPO = Path(__file__).resolve().parents[1]
DATASETS = {"100k": "ML-100K", "latest-small": "ML latest-small"}

CANDIDATES = {
    "ratings": {
        "mf-defaults": lambda: MatrixFactorization(random_state=0),
        "mf-es": lambda: MatrixFactorization(early_stopping=True, max_iter=100,
                                             random_state=0),
        "mf-adam": lambda: MatrixFactorization(solver="adam", random_state=0),
        **{
            f"mf-gibbs-k{dim}-s{sweeps}": (
                lambda dim=dim, sweeps=sweeps: MatrixFactorization(
                    solver="gibbs", n_components=dim, max_iter=sweeps, random_state=0)
            )
            for dim in (8, 10, 16, 24) for sweeps in (100, 150, 250, 400)
        },
        **{
            f"mf-a{alpha}-e{epochs}-d{dim}": (
                lambda alpha=alpha, epochs=epochs, dim=dim: MatrixFactorization(
                    alpha=alpha, max_iter=epochs, n_components=dim, random_state=0)
            )
            for alpha in (0.07, 0.1, 0.12, 0.14, 0.17, 0.2, 0.28) for epochs in (30, 60)
            for dim in (64, 128)
        },
    },
    "topn": {
        "mf-bpr": lambda: MatrixFactorization(loss="bpr", random_state=0),
        "mf-bce": lambda: MatrixFactorization(loss="bce", random_state=0),
        "mf-bpr-es": lambda: MatrixFactorization(loss="bpr", early_stopping=True,
                                                 max_iter=100, random_state=0),
        "mf-bce-es": lambda: MatrixFactorization(loss="bce", early_stopping=True,
                                                 max_iter=100, random_state=0),
        "mf-softmax": lambda: MatrixFactorization(loss="softmax", random_state=0),
        "mf-softmax-es": lambda: MatrixFactorization(loss="softmax", early_stopping=True,
                                                     max_iter=100, random_state=0),
        **{
            f"mf-softmax-b{batch}-a{alpha}-e{epochs}": (
                lambda batch=batch, alpha=alpha, epochs=epochs: MatrixFactorization(
                    loss="softmax", batch_size=batch, alpha=alpha, max_iter=epochs,
                    random_state=0)
            )
            for batch in (1024, 4096, 8192) for alpha in (0.07, 0.1, 0.15)
            for epochs in (20, 30, 40)
        },
        **{
            f"mf-sampled-k{k}": (
                lambda k=k: MatrixFactorization(
                    loss="sampled_softmax", n_negatives=k, random_state=0)
            )
            for k in (512, 1024, 2048, 4096)
        },
        "ease": lambda: EASE(),
        "itemknn": lambda: ItemKNN(),
        "popularity": lambda: Popularity(),
    },
    "next": {
        "attention": lambda: AttentionRecommender(random_state=0),
        "lstm": lambda: LSTMRecommender(random_state=0),
        "attention-es": lambda: AttentionRecommender(early_stopping=True, max_iter=100,
                                                     random_state=0),
        "lstm-es": lambda: LSTMRecommender(early_stopping=True, max_iter=100,
                                           random_state=0),
        "attention-lr5e-3": lambda: AttentionRecommender(learning_rate_init=5e-3,
                                                         random_state=0),
        **{
            f"lstm-{name}": (lambda kw=kw: LSTMRecommender(random_state=0, **kw))
            for name, kw in {
                "e40": dict(max_iter=40), "lr5e-3": dict(learning_rate_init=5e-3),
                "layers1": dict(n_layers=1), "dropout0.5": dict(dropout=0.5),
                "len100": dict(max_len=100), "dim128": dict(embedding_dim=128),
            }.items()
        },
        **{
            f"attention-sampled-k{k}": (
                lambda k=k: AttentionRecommender(
                    loss="sampled_softmax", n_negatives=k, random_state=0)
            )
            for k in (512, 1024, 2048)
        },
        "ease": lambda: EASE(),
        "popularity": lambda: Popularity(),
    },
}


def inner_split(X, task):
    """(inner training part, validation part) of the benchmark's training part."""
    if task == "ratings":
        train, _ = train_test_split(X, test_size=0.2, random_state=0)
        return train_test_split(train, test_size=0.2, random_state=1)
    if task == "topn":
        tr, _ = next(UserHoldout(test_size=0.2, random_state=0).split(X))
        train = X.iloc[tr]
        tr, va = next(UserHoldout(test_size=0.2, random_state=1).split(train))
        return train.iloc[tr], train.iloc[va]
    tr, _ = next(LeaveLastOut().split(X))
    train = X.iloc[tr]
    tr, va = next(LeaveLastOut().split(train))
    return train.iloc[tr], train.iloc[va]


def evaluate(est, train, valid, task):
    start = time.perf_counter()
    if task == "ratings":
        est.fit(train, train["rating"].to_numpy(float))
        fit_s = time.perf_counter() - start
        pred = np.clip(est.predict(valid), 1, 5)
        score = float(np.sqrt(np.mean((pred - valid["rating"].to_numpy(float)) ** 2)))
    else:
        est.fit(train)
        fit_s = time.perf_counter() - start
        score = make_ranking_scorer("ndcg", k=10)(est, valid)
    return score, fit_s, getattr(est, "n_iter_", None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--only", nargs="*", help="candidate names to run")
    parser.add_argument("--data-home", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--output", help="JSON file for the rows")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="fit every candidate with each random_state (default: its own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets:
        X = fetch_movielens(name, data_home=args.data_home, download_if_missing=False)
        train, valid = inner_split(X.interactions, args.task)
        for cand, factory in CANDIDATES[args.task].items():
            if args.only and cand not in args.only:
                continue
            for seed in args.seeds or [None]:
                est = factory()
                if seed is not None and "random_state" in est.get_params():
                    est.set_params(random_state=seed)
                score, fit_s, epochs = evaluate(est, train, valid, args.task)
                metric = "rmse" if args.task == "ratings" else "ndcg@10"
                rows.append(dict(dataset=name, task=args.task, candidate=cand, metric=metric,
                                 validation=score, fit_s=fit_s, epochs=epochs, seed=seed))
                print(f"{DATASETS[name]:16s} {cand:28s} {metric} {score:.4f} "
                      f"fit {fit_s:6.1f}s epochs {epochs}"
                      + ("" if seed is None else f" seed {seed}"), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
