"""Peers side by side on MovieLens-100K and MovieLens latest-small:
sklearn_recsys against Surprise, implicit and LightFM on the same split
objects and the same metric code.

Data sets (``--dataset {100k,latest-small,both}``, default ``both``), read
from ``--data-home`` and never downloaded: ``fetch_movielens("100k")``
(ratings 1-5) and ``fetch_movielens("latest-small")`` (half stars 0.5-5; the
local copy is the 2016-10 snapshot, 100,004 ratings by 671 users on 9,066
movies, sparser per item than ML-100K). Both go through exactly the same
code below; the only per-data-set constant is the rating scale, and every
per-data-set choice of a peer (Surprise "tuned" setting, implicit ALS
``alpha``) is made on an inner validation split of that data set's training
part, never on its test split.

Sections, on each data set:

1. **Ratings** -- ``train_test_split(ratings, strategy="random",
   test_size=0.2, random_state=0)`` (as ``bench_mf.py``); test RMSE of
   predictions clipped to the data set's rating scale ([1, 5] for ML-100K,
   [0.5, 5] for latest-small) for ``MatrixFactorization(random_state=0)``
   (package defaults) against Surprise ``SVD`` (its defaults, and a
   "tuned-ish" setting picked on a validation split carved from the training
   ratings) and ``SVDpp`` (defaults), and a plain explicit ALS (ALS-WR with
   biases, in numpy, its factors and penalty picked on the same validation
   split: ``explicit_als_fit_rmse``). Surprise's ``Reader`` gets the same
   scale and clips to it, so the RMSEs are comparable.
2. **Top-N** -- every rating is a positive; ``UserHoldout(test_size=0.2,
   random_state=0)``; all items not seen in training are ranked; NDCG@10,
   Recall@10 and HR@10 from ``make_ranking_scorer`` for every model. Ours:
   ``MatrixFactorization(loss="bpr")``/``(loss="bce")``/``(loss="softmax")``
   with package defaults (softmax is the recommended implicit configuration)
   and ``EASE()``, plus MF with ``bench_mf.py``'s settings (chosen there on a
   validation split of ML-100K's training data, and used unchanged on
   latest-small; also added for the ratings).
   Peers: implicit ``AlternatingLeastSquares`` (factors 64,
   regularization 0.05, 15 iterations, ``alpha`` picked from 1/5/10/20/40 on
   an inner per-user holdout of the training positives) and
   ``BayesianPersonalizedRanking`` (factors 64, lr 0.01, reg 0.01, 100
   iterations), LightFM ``loss="warp"`` (64 components, 30 epochs). A peer is
   wrapped in a small adapter exposing ``recommend(users, k,
   exclude_seen=True)`` (implicit: its own ``recommend(...,
   filter_already_liked_items=True)``; LightFM: all items scored, training
   items masked) together with the id index and seen matrix the scorer
   reads, so ``make_ranking_scorer`` -- the code that scores our models --
   scores the peers as well.

Fit times are wall-clock and process CPU time with one thread everywhere
(``torch.set_num_threads(1)``, implicit ``num_threads=1``, LightFM
``num_threads=1``; run with ``OMP_NUM_THREADS=1``). Seeds are fixed (0).
The peers are optional (``pip install -c constraints.txt
scikit-surprise implicit lightfm``, the ``bench`` extra); a peer that cannot
be imported gets a row saying why.

Usage (from the repository root; times measured on a 2-CPU Intel Xeon VM,
one thread, the other CPU busy with another job, LightFM included)::

    OMP_NUM_THREADS=1 python benchmarks/bench_peers.py           # ~4.5 min
    OMP_NUM_THREADS=1 python benchmarks/bench_peers.py --dataset 100k   # ~80 s
    OMP_NUM_THREADS=1 python benchmarks/bench_peers.py --quick   # ~40 s

(both data sets: 261 s in all, 100 s for ML-100K and 161 s for latest-small,
where EASE, SVD++ and the sampled-negative MF fits take longer; ``--quick``:
about 40 s.)

Results: markdown tables on stdout and ``benchmarks/results/peers.json``,
whose ``"datasets"`` maps each data set run (``"100k"``, ``"latest-small"``)
to its sizes, protocol, ``ratings`` and ``topn`` rows and verdict. The file
holds only the data sets of the last run: rerun with the default ``both``
before ``make_readme_tables.py`` (its top-level summary needs ML-100K).
"""

import argparse
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from _harness import (
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    load_movielens,
    print_table,
    set_threads,
    write_json,
)
from bench_mf import EXPLICIT as MF_EXPLICIT_TUNED
from bench_mf import IMPLICIT as MF_IMPLICIT_TUNED
from sklearn_recsys import EASE, MatrixFactorization
from sklearn_recsys._input import IdIndex
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserHoldout, train_test_split

SCORERS = {
    "ndcg@10": make_ranking_scorer("ndcg", k=10),
    "recall@10": make_ranking_scorer("recall", k=10),
    "hr@10": make_ranking_scorer("hit_rate", k=10),
}

SVD_TUNED_GRID = [
    dict(n_factors=100, n_epochs=30, lr_all=0.01, reg_all=0.1),
    dict(n_factors=100, n_epochs=40, lr_all=0.005, reg_all=0.05),
    dict(n_factors=50, n_epochs=30, lr_all=0.01, reg_all=0.05),
]
ALS_ALPHAS = [1.0, 5.0, 10.0, 20.0, 40.0]
ALS = dict(factors=64, regularization=0.05, iterations=15)
BPR = dict(factors=64, learning_rate=0.01, regularization=0.01, iterations=100)
WARP = dict(no_components=64, loss="warp", epochs=30)

# The MovieLens variants this script runs on, with each one's rating scale
# (predictions are clipped to it for the RMSE, and Surprise's Reader uses it).
DATASETS = {
    "100k": {"name": "MovieLens-100K", "short": "ML-100K", "rating_range": (1.0, 5.0)},
    "latest-small": {"name": "MovieLens latest-small", "short": "ML latest-small",
                     "rating_range": (0.5, 5.0)},
}


# -- data ----------------------------------------------------------------------


def explicit_split(ml):
    df = ml.interactions[["user", "item", "rating"]]
    return train_test_split(df, strategy="random", test_size=0.2, random_state=0)


def implicit_split(ml, random_state=0):
    X = ml.interactions[["user", "item"]]
    train, test = next(UserHoldout(test_size=0.2, random_state=random_state).split(X))
    return X.iloc[train], X.iloc[test]


def rmse(pred, y, rating_range):
    pred = np.clip(np.asarray(pred, dtype=float), *rating_range)
    return float(np.sqrt(np.mean((pred - np.asarray(y, dtype=float)) ** 2)))


# -- the adapter that lets make_ranking_scorer score a peer ------------------------


class PeerRecommender:
    """Minimal stand-in for a fitted sklearn_recsys recommender.

    Holds the id indexes and the seen-item matrix of the training table (what
    ``make_ranking_scorer`` reads) and a ``topk(user_codes, k)`` function
    returning item codes and scores with training items already excluded.
    """

    user_col, item_col = "user", "item"

    def __init__(self, train):
        self._user_index, u = IdIndex.from_values(train["user"].to_numpy())
        self._item_index, i = IdIndex.from_values(train["item"].to_numpy())
        shape = (len(self._user_index), len(self._item_index))
        seen = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
        seen.sum_duplicates()
        seen.data[:] = 1.0
        self.user_items = seen  # csr_matrix, the format implicit wants
        self._seen = sp.csr_array(seen)
        self.topk = None

    def recommend(self, users, k=10, *, exclude_seen=True):
        if not exclude_seen:
            raise ValueError("peers are only evaluated with exclude_seen=True")
        codes = self._user_index.transform(np.asarray(users))
        if (codes < 0).any():
            raise ValueError("unknown test user (UserHoldout keeps every user in train)")
        item_codes, scores = self.topk(codes, k)
        item_codes = np.asarray(item_codes, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        missing = item_codes < 0
        ids = self._item_index.inverse_transform(np.where(missing, 0, item_codes))
        scores[missing] = -np.inf
        return ids, scores


def masked_topk(score_fn, seen, codes, k):
    """Top-k of ``score_fn(codes)`` (dense (n, n_items)) with seen items at -inf."""
    S = np.asarray(score_fn(codes), dtype=np.float64)
    rows = sp.csr_matrix(seen[codes])
    r, c = rows.nonzero()
    S[r, c] = -np.inf
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, part, 1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, 1)
    return top, np.take_along_axis(S, top, 1)


def score_all(est, test):
    return {name: float(scorer(est, test)) for name, scorer in SCORERS.items()}


# -- 1. ratings ----------------------------------------------------------------------


def surprise_fit_rmse(algo_cls, params, train, test, rating_range):
    from surprise import Dataset, Reader

    reader = Reader(rating_scale=rating_range)
    trainset = Dataset.load_from_df(train[["user", "item", "rating"]], reader)
    trainset = trainset.build_full_trainset()
    algo = algo_cls(random_state=0, **params)
    with Timer() as t:
        algo.fit(trainset)
    testset = list(zip(test["user"], test["item"], test["rating"].astype(float)))
    preds = algo.test(testset)
    return rmse([p.est for p in preds], test["rating"], rating_range), t


# a plain explicit ALS (ALS-WR), its factors and penalty picked on the same
# inner validation split as Surprise's tuned SVD
ALS_EXPLICIT_GRID = [dict(factors=f, regularization=r) for f in (10, 50)
                     for r in (0.05, 0.1, 0.2, 0.3, 0.5)]
ALS_EXPLICIT_ITERATIONS = 15


def explicit_als_fit_rmse(params, train, test, rating_range, iterations):
    """ALS-WR (Zhou et al. 2008) with user and item biases, in numpy: each
    half-step solves every user's (item's) ``[p_u, b_u]`` by ridge regression
    on ``[q_i, 1]`` with the penalty ``regularization * n_u`` (weighted-lambda
    regularisation), ratings centred on their mean; ``iterations`` sweeps
    from N(0, 0.1) factors (seed 0). Returns the test RMSE and the timer."""
    users = pd.Index(train["user"].unique())
    items = pd.Index(train["item"].unique())
    u = users.get_indexer(train["user"])
    i = items.get_indexer(train["item"])
    mu = float(train["rating"].mean())
    r = train["rating"].to_numpy(float) - mu
    by_user = sp.csr_array((r, (u, i)), shape=(len(users), len(items)))
    by_item = sp.csr_array((r, (i, u)), shape=(len(items), len(users)))
    k, lam = params["factors"], params["regularization"]
    rng = np.random.default_rng(0)
    p = np.hstack([rng.normal(0, 0.1, (len(users), k)), np.zeros((len(users), 1))])
    q = np.hstack([rng.normal(0, 0.1, (len(items), k)), np.zeros((len(items), 1))])

    def half(R, other):
        """Rows' [factors, bias] given the other side's [factors, bias]."""
        out = np.zeros((R.shape[0], k + 1))
        for row in range(R.shape[0]):
            lo, hi = R.indptr[row], R.indptr[row + 1]
            cols = R.indices[lo:hi]
            if len(cols) == 0:
                continue
            X = np.hstack([other[cols, :k], np.ones((len(cols), 1))])
            y = R.data[lo:hi] - other[cols, k]
            A = X.T @ X + lam * len(cols) * np.eye(k + 1)
            out[row] = np.linalg.solve(A, X.T @ y)
        return out

    with Timer() as t:
        for _ in range(iterations):
            p = half(by_user, q)
            q = half(by_item, p)
    tu = users.get_indexer(test["user"])
    ti = items.get_indexer(test["item"])
    pred = np.full(len(test), mu)
    known_u, known_i = tu >= 0, ti >= 0
    both = known_u & known_i
    pred[known_u] += p[tu[known_u], k]
    pred[known_i] += q[ti[known_i], k]
    pred[both] += np.einsum("nk,nk->n", p[tu[both], :k], q[ti[both], :k])
    return rmse(pred, test["rating"], rating_range), t


def _tuned_note(dataset):
    """Where bench_mf.py's settings were chosen, for a dataset other than ML-100K."""
    return "" if dataset == "100k" else " (chosen by bench_mf.py on ML-100K validation)"


def run_ratings(ml, args, dataset):
    rating_range = DATASETS[dataset]["rating_range"]
    train, test = explicit_split(ml)
    lo, hi = train["rating"].min(), train["rating"].max()
    if lo < rating_range[0] or hi > rating_range[1]:
        raise ValueError(f"ratings span [{lo}, {hi}], outside the declared scale "
                         f"{rating_range}")
    rows = []

    est = MatrixFactorization(random_state=0)
    if args.quick:
        est.set_params(max_iter=5)
    with Timer() as t:
        est.fit(train[["user", "item"]], train["rating"].to_numpy(dtype=np.float64))
    r = rmse(est.predict(test[["user", "item"]]), test["rating"], rating_range)
    rows.append(dict(model="sklearn_recsys MatrixFactorization (defaults, loss='mse')",
                     settings=_params(est, ["solver", "n_components", "max_iter"])
                     + f"; fitted: {est.user_embeddings_.shape[1]} components, "
                       f"{est.n_iter_} {'sweeps' if est._uses_gibbs() else 'epochs'}",
                     rmse=r, fit_s=t.elapsed, fit_cpu_s=t.cpu))
    print(f"  MF mse: RMSE {r:.4f} ({t.elapsed:.1f} s)", flush=True)

    # bench_mf.py's setting, chosen on a validation split of the training data
    cfg = dict(MF_EXPLICIT_TUNED, max_iter=5 if args.quick else MF_EXPLICIT_TUNED["max_iter"])
    est = MatrixFactorization(loss="mse", random_state=0, **cfg)
    with Timer() as t:
        est.fit(train[["user", "item"]], train["rating"].to_numpy(dtype=np.float64))
    r = rmse(est.predict(test[["user", "item"]]), test["rating"], rating_range)
    rows.append(dict(model="sklearn_recsys MatrixFactorization (bench_mf.py tuned, "
                           "loss='mse')", settings=_describe(cfg) + _tuned_note(dataset),
                     rmse=r,
                     fit_s=t.elapsed, fit_cpu_s=t.cpu))
    print(f"  MF mse tuned: RMSE {r:.4f} ({t.elapsed:.1f} s)", flush=True)

    iterations = 3 if args.quick else ALS_EXPLICIT_ITERATIONS
    inner_tr, inner_va = train_test_split(train, strategy="random", test_size=0.2,
                                          random_state=1)
    val = []
    for params in ALS_EXPLICIT_GRID[:1] if args.quick else ALS_EXPLICIT_GRID:
        v, _ = explicit_als_fit_rmse(params, inner_tr, inner_va, rating_range, iterations)
        val.append(dict(params=params, val_rmse=v))
        print(f"  ALS-WR val {params}: {v:.4f}", flush=True)
    best = min(val, key=lambda d: d["val_rmse"])["params"]
    r, t = explicit_als_fit_rmse(best, train, test, rating_range, iterations)
    rows.append(dict(model="ALS-WR with biases (numpy, tuned on validation)",
                     settings=_describe(dict(best, iterations=iterations)), rmse=r,
                     fit_s=t.elapsed, fit_cpu_s=t.cpu, validation=val))
    print(f"  ALS-WR tuned: RMSE {r:.4f} ({t.elapsed:.1f} s)", flush=True)

    try:
        import surprise
        from surprise import SVD, SVDpp
    except ImportError as exc:
        rows.append(dict(model="Surprise SVD / SVD++", settings="not run",
                         status=f"skipped: cannot import surprise ({exc})"))
        return dict(rows=rows, n_train=len(train), n_test=len(test))

    version = surprise.__version__
    r, t = surprise_fit_rmse(SVD, {}, train, test, rating_range)
    rows.append(dict(model=f"Surprise {version} SVD (defaults)",
                     settings="n_factors=100, n_epochs=20, lr_all=0.005, reg_all=0.02",
                     rmse=r, fit_s=t.elapsed, fit_cpu_s=t.cpu))
    print(f"  Surprise SVD default: RMSE {r:.4f}", flush=True)

    # tuned-ish SVD: pick on an inner random split of the training ratings
    inner_tr, inner_va = train_test_split(train, strategy="random", test_size=0.2,
                                          random_state=1)
    grid = SVD_TUNED_GRID[:1] if args.quick else SVD_TUNED_GRID
    val = []
    for params in grid:
        v, _ = surprise_fit_rmse(SVD, params, inner_tr, inner_va, rating_range)
        val.append(dict(params=params, val_rmse=v))
        print(f"  Surprise SVD val {params}: {v:.4f}", flush=True)
    best = min(val, key=lambda d: d["val_rmse"])["params"]
    r, t = surprise_fit_rmse(SVD, best, train, test, rating_range)
    rows.append(dict(model=f"Surprise {version} SVD (tuned on validation)",
                     settings=_describe(best), rmse=r, fit_s=t.elapsed,
                     fit_cpu_s=t.cpu, validation=val))
    print(f"  Surprise SVD tuned: RMSE {r:.4f}", flush=True)

    if args.quick:
        rows.append(dict(model=f"Surprise {version} SVD++", settings="defaults",
                         status="skipped in --quick (slow)"))
    else:
        r, t = surprise_fit_rmse(SVDpp, {}, train, test, rating_range)
        rows.append(dict(model=f"Surprise {version} SVD++ (defaults)",
                         settings="n_factors=20, n_epochs=20, lr_all=0.007, "
                         "reg_all=0.02", rmse=r, fit_s=t.elapsed, fit_cpu_s=t.cpu))
        print(f"  Surprise SVD++: RMSE {r:.4f} ({t.elapsed:.0f} s)", flush=True)
    return dict(rows=rows, n_train=len(train), n_test=len(test))


# -- 2. top-N ----------------------------------------------------------------------


def _params(est, names):
    return ", ".join(f"{n}={est.get_params()[n]}" for n in names)


def _describe(d):
    return ", ".join(f"{k}={v}" for k, v in d.items())


def pick_als_alpha(inner_train, inner_valid, quick):
    """implicit ALS's ``alpha`` among ``ALS_ALPHAS`` (two with ``quick``) by
    NDCG@10 on ``inner_valid`` after fitting on ``inner_train``; returns it
    and the validation rows."""
    inner = PeerRecommender(inner_train)
    val = []
    for alpha in ALS_ALPHAS[:2] if quick else ALS_ALPHAS:
        model, _, _ = fit_implicit_als(inner, alpha, quick)
        inner.topk = implicit_topk(model, inner.user_items)
        val.append(dict(alpha=alpha, val_ndcg=SCORERS["ndcg@10"](inner, inner_valid)))
        print(f"  implicit ALS val alpha={alpha}: {val[-1]['val_ndcg']:.4f}", flush=True)
    return max(val, key=lambda d: d["val_ndcg"])["alpha"], val


def fit_implicit_bpr(adapter, quick):
    """implicit BPR with ``BPR`` (``--quick``: 10 iterations)."""
    from implicit.bpr import BayesianPersonalizedRanking

    params = dict(BPR, iterations=10 if quick else BPR["iterations"])
    model = BayesianPersonalizedRanking(random_state=0, num_threads=1,
                                        use_gpu=False, **params)
    with Timer() as t:
        model.fit(adapter.user_items, show_progress=False)
    return model, t, params


def fit_lightfm_warp(adapter, quick):
    """LightFM with ``WARP`` (``--quick``: 5 epochs); returns the model, the
    timer, the settings and a ``topk`` for the adapter."""
    from lightfm import LightFM

    params = dict(WARP, epochs=5 if quick else WARP["epochs"])
    model = LightFM(no_components=params["no_components"], loss=params["loss"],
                    random_state=0)
    interactions = sp.coo_matrix(adapter.user_items)
    with Timer() as t:
        model.fit(interactions, epochs=params["epochs"], num_threads=1)
    n_items = adapter.user_items.shape[1]
    item_codes = np.arange(n_items, dtype=np.int32)

    def score_fn(codes):
        out = np.empty((len(codes), n_items), dtype=np.float64)
        for row, u in enumerate(codes):
            out[row] = model.predict(int(u), item_codes, num_threads=1)
        return out

    def topk(codes, k):
        return masked_topk(score_fn, adapter.user_items, codes, k)

    return model, t, params, topk


def fit_implicit_als(adapter, alpha, quick):
    from implicit.als import AlternatingLeastSquares

    params = dict(ALS, iterations=3 if quick else ALS["iterations"])
    model = AlternatingLeastSquares(alpha=alpha, random_state=0, num_threads=1,
                                    use_gpu=False, **params)
    with Timer() as t:
        model.fit(adapter.user_items, show_progress=False)
    return model, t, params


def implicit_topk(model, user_items):
    def topk(codes, k):
        ids, scores = model.recommend(codes, user_items[codes], N=k,
                                      filter_already_liked_items=True)
        return ids, scores

    return topk


def run_topn(ml, args, dataset):
    train, test = implicit_split(ml)
    rows = []

    # softmax: the recommended implicit configuration (package defaults)
    for loss in ("bpr", "bce", "softmax"):
        est = MatrixFactorization(loss=loss, random_state=0)
        if args.quick:
            est.set_params(max_iter=5)
        with Timer() as t:
            est.fit(train)
        s = score_all(est, test)
        names = ["n_components", "max_iter", "alpha", "learning_rate_init"]
        if loss == "softmax":  # no sampled negatives; batches of whole users
            names.append("batch_size")
        else:
            names.insert(3, "n_negatives")
        rows.append(dict(model=f"sklearn_recsys MatrixFactorization (defaults, "
                               f"loss='{loss}')",
                         settings=_params(est, names),
                         **s, fit_s=t.elapsed, fit_cpu_s=t.cpu))
        print(f"  MF {loss}: NDCG@10 {s['ndcg@10']:.4f} ({t.elapsed:.1f} s)", flush=True)

    for loss in ("bpr", "bce"):
        cfg = dict(MF_IMPLICIT_TUNED[loss])
        if args.quick:
            cfg["max_iter"] = 5
        est = MatrixFactorization(loss=loss, random_state=0, **cfg)
        with Timer() as t:
            est.fit(train)
        s = score_all(est, test)
        rows.append(dict(model=f"sklearn_recsys MatrixFactorization (bench_mf.py "
                               f"tuned, loss='{loss}')",
                         settings=_describe(cfg) + _tuned_note(dataset),
                         **s, fit_s=t.elapsed, fit_cpu_s=t.cpu))
        print(f"  MF {loss} tuned: NDCG@10 {s['ndcg@10']:.4f}", flush=True)

    est = EASE()
    with Timer() as t:
        est.fit(train)
    s = score_all(est, test)
    rows.append(dict(model="sklearn_recsys EASE (defaults)",
                     settings=_params(est, ["l2_reg"]), **s, fit_s=t.elapsed,
                     fit_cpu_s=t.cpu))
    print(f"  EASE: NDCG@10 {s['ndcg@10']:.4f}", flush=True)

    adapter = PeerRecommender(train)

    # implicit
    try:
        import implicit
        import implicit.bpr  # noqa: F401 (fit_implicit_bpr imports it)
    except ImportError as exc:
        rows.append(dict(model="implicit ALS / BPR", settings="not run",
                         status=f"skipped: cannot import implicit ({exc})"))
    else:
        v = implicit.__version__
        # alpha of ALS: picked on an inner per-user holdout of the training data
        inner_tr, inner_va = implicit_split_table(train)
        alpha, val = pick_als_alpha(inner_tr, inner_va, args.quick)
        model, t, params = fit_implicit_als(adapter, alpha, args.quick)
        adapter.topk = implicit_topk(model, adapter.user_items)
        s = score_all(adapter, test)
        rows.append(dict(model=f"implicit {v} AlternatingLeastSquares",
                         settings=_describe(dict(params, alpha=alpha)) +
                         " (alpha picked on validation)",
                         **s, fit_s=t.elapsed, fit_cpu_s=t.cpu, validation=val))
        print(f"  implicit ALS: NDCG@10 {s['ndcg@10']:.4f}", flush=True)

        model, t, params = fit_implicit_bpr(adapter, args.quick)
        adapter.topk = implicit_topk(model, adapter.user_items)
        s = score_all(adapter, test)
        rows.append(dict(model=f"implicit {v} BayesianPersonalizedRanking",
                         settings=_describe(params), **s, fit_s=t.elapsed,
                         fit_cpu_s=t.cpu))
        print(f"  implicit BPR: NDCG@10 {s['ndcg@10']:.4f}", flush=True)

    # LightFM
    try:
        import lightfm
    except ImportError as exc:
        rows.append(dict(model="LightFM WARP", settings=_describe(WARP),
                         status=f"skipped: cannot import lightfm ({exc}); lightfm "
                         "1.17's setup.py fails under current setuptools "
                         "(AttributeError: 'dict' object has no attribute "
                         "'__LIGHTFM_SETUP__'); see benchmarks/README.md"))
    else:
        model, t, params, adapter.topk = fit_lightfm_warp(adapter, args.quick)
        s = score_all(adapter, test)
        rows.append(dict(model=f"LightFM {lightfm.__version__} WARP",
                         settings=_describe(params), **s, fit_s=t.elapsed,
                         fit_cpu_s=t.cpu))
        print(f"  LightFM WARP: NDCG@10 {s['ndcg@10']:.4f}", flush=True)
    return dict(rows=rows, n_train=len(train), n_test=len(test))


def implicit_split_table(train):
    a, v = next(UserHoldout(test_size=0.2, random_state=1).split(train))
    return train.iloc[a], train.iloc[v]


# -- main ------------------------------------------------------------------------------


def verdict(ratings, topn):
    """How our best MF compares with the best peer, in words."""
    notes = []
    ours = [r for r in ratings["rows"] if r["model"].startswith("sklearn_recsys")]
    ours = [min(ours, key=lambda r: r["rmse"])] if ours else ours
    peers = [r for r in ratings["rows"]
             if not r["model"].startswith("sklearn_recsys") and "rmse" in r]
    if ours and peers:
        best = min(peers, key=lambda r: r["rmse"])
        diff = ours[0]["rmse"] - best["rmse"]
        notes.append(
            f"RMSE: our best MF ({ours[0]['model']}) {ours[0]['rmse']:.4f} vs best peer {best['model']} "
            f"{best['rmse']:.4f} -> " + ("ours better by " if diff < 0 else
                                         "ours WORSE by ") + f"{abs(diff):.4f}"
        )
    mf = [r for r in topn["rows"] if "MatrixFactorization" in r["model"]]
    peers = [r for r in topn["rows"]
             if not r["model"].startswith("sklearn_recsys") and "ndcg@10" in r]
    if mf and peers:
        ours_best = max(mf, key=lambda r: r["ndcg@10"])
        best = max(peers, key=lambda r: r["ndcg@10"])
        diff = ours_best["ndcg@10"] - best["ndcg@10"]
        notes.append(
            f"NDCG@10: our best MF ({ours_best['model']}) {ours_best['ndcg@10']:.4f} "
            f"vs best peer {best['model']} {best['ndcg@10']:.4f} -> "
            + ("ours better by " if diff > 0 else "ours WORSE by ")
            + f"{abs(diff):.4f}"
        )
    return notes


RATING_COLS = [("model", "model"), ("settings", "settings"), ("rmse", "test RMSE"),
               ("fit_s", "fit wall (s)"), ("fit_cpu_s", "fit CPU (s)"),
               ("status", "status")]
TOPN_COLS = [("model", "model"), ("settings", "settings"), ("ndcg@10", "NDCG@10"),
             ("recall@10", "Recall@10"), ("hr@10", "HR@10"),
             ("fit_s", "fit wall (s)"), ("fit_cpu_s", "fit CPU (s)"),
             ("status", "status")]


def protocol(dataset):
    lo, hi = DATASETS[dataset]["rating_range"]
    return {
        "ratings": "train_test_split(ratings, strategy='random', test_size=0.2, "
        f"random_state=0); RMSE of predictions clipped to [{lo:g}, {hi:g}]",
        "topn": "UserHoldout(test_size=0.2, random_state=0) of all ratings as "
        "positives; training items excluded; make_ranking_scorer(metric, k=10) "
        "for ours and for the peers (through PeerRecommender)",
    }


def run_dataset(dataset, args):
    """Both sections on one MovieLens variant; the result dict of peers.json."""
    spec = DATASETS[dataset]
    print(f"\n## {spec['name']}" + (" (--quick)" if args.quick else ""), flush=True)
    start = time.perf_counter()
    ml = load_movielens(dataset, args.data_home)
    if ml is None:
        return {"name": spec["name"], "skipped": f"{spec['name']} not found"}
    X = ml.interactions
    info = {"name": spec["name"], "n_ratings": len(X),
            "n_users": int(X["user"].nunique()), "n_items": int(X["item"].nunique()),
            "rating_range": list(spec["rating_range"])}
    print(f"{info['n_ratings']:,} ratings, {info['n_users']:,} users, "
          f"{info['n_items']:,} items", flush=True)
    lo, hi = spec["rating_range"]
    ratings = run_ratings(ml, args, dataset)
    print_table(f"{spec['short']} ratings: random 80/20 split, test RMSE (clipped to "
                f"[{lo:g}, {hi:g}])", ratings["rows"], RATING_COLS)
    topn = run_topn(ml, args, dataset)
    print_table(f"{spec['short']} top-N: UserHoldout(0.2), all unseen items ranked, "
                "make_ranking_scorer", topn["rows"], TOPN_COLS)
    notes = verdict(ratings, topn)
    print("\n" + "\n".join(notes))
    wall = time.perf_counter() - start
    print(f"\n{spec['short']}: {wall:.0f} s", flush=True)
    return {**info, "protocol": protocol(dataset), "ratings": ratings, "topn": topn,
            "verdict": notes, "wall_time_s": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--dataset", choices=[*DATASETS, "both"], default="both",
                        help="MovieLens variant(s) to run on (default: both)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    env = describe_environment("cpu")
    keys = list(DATASETS) if args.dataset == "both" else [args.dataset]
    print("# Peers on " + " and ".join(DATASETS[k]["name"] for k in keys)
          + (" (--quick)" if args.quick else ""))
    print(format_environment(env))
    start = time.perf_counter()
    results = {key: run_dataset(key, args) for key in keys}
    wall = time.perf_counter() - start
    path = write_json("peers", {
        "environment": env,
        "settings": {"quick": args.quick, "threads": args.threads,
                     "dataset": args.dataset},
        "datasets": results,
        "wall_time_s": wall,
    }, args.output)
    print(f"\nTotal {wall:.0f} s. Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
