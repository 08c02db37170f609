"""Next-item recommendation with the package defaults, side by side with
peers, on MovieLens-100K and MovieLens latest-small.

Data sets (``--dataset {100k,latest-small,both}``, default ``both``), read
from ``--data-home`` and never downloaded (a missing one is skipped with a
message): ``fetch_movielens(name).interactions[["user", "item",
"timestamp"]]``, every rating a positive.

Protocol (that of ``tests/test_movielens.py::test_next_item_ndcg``):
``train_idx, test_idx = next(LeaveLastOut().split(X))`` -- each user's most
recent interaction is its test item (ties broken by row order; users with a
single interaction stay in train) -- every model is fitted on
``X.iloc[train_idx]`` and scored on ``X.iloc[test_idx]`` by
``make_ranking_scorer("ndcg", k=10)`` and ``make_ranking_scorer("hit_rate",
k=10)``: the test item is ranked among all items the user has not interacted
with in training. Models, default parameters and ``random_state=0`` where
they have one:

* ours, the subject: ``AttentionRecommender()`` and ``LSTMRecommender()``;
* our non-sequential baselines: ``Popularity()``, ``ItemKNN()``, ``EASE()``;
* peers, with ``bench_peers.py``'s settings and adapter: implicit
  ``AlternatingLeastSquares`` (``alpha`` picked from ``bench_peers.ALS_ALPHAS``
  by validation NDCG@10 on ``LeaveLastOut()`` of the *training* rows, then
  refitted on all training rows) and ``BayesianPersonalizedRanking``, LightFM
  ``loss="warp"``. They are wrapped in ``bench_peers.PeerRecommender``, so
  that ``make_ranking_scorer`` -- the code that scores our models -- scores
  them too. The peers ignore the order of the interactions. A peer that
  cannot be imported gets a row saying why.

Fit times are wall-clock and process CPU time of ``fit`` (for ALS, the final
fit; the validation fits are reported separately) with one thread everywhere
(``torch.set_num_threads(1)``, implicit and LightFM ``num_threads=1``; run
with ``OMP_NUM_THREADS=1``, which the script sets when run directly). Seeds
are fixed (0). ``--quick`` is a smoke run: the first 200 users (by id) of
each data set, one epoch for the neural models and ``bench_peers.py``'s
``--quick`` settings for the peers; its numbers mean nothing.

Usage (from the repository root; times measured on a 2-CPU Intel Xeon VM,
one thread, the other CPU busy with another job)::

    OMP_NUM_THREADS=1 python benchmarks/bench_next_item.py              # ~12 min
    OMP_NUM_THREADS=1 python benchmarks/bench_next_item.py --dataset 100k   # ~2 min
    OMP_NUM_THREADS=1 python benchmarks/bench_next_item.py --quick      # ~15 s

(both data sets: 703 s in all, 113 s for ML-100K and 590 s for latest-small,
where the 9,066-item catalogue makes each of the attention and LSTM fits take
about 280 s against about 50 s on ML-100K; every other fit takes seconds.)

Results: markdown tables on stdout and ``benchmarks/results/next_item.json``
(``--output`` to change it), whose ``"datasets"`` maps each data set run to
its sizes, protocol, rows (model, settings, ndcg@10, hr@10, fit_s,
fit_cpu_s) and a verdict line (best of attention/LSTM against the best peer,
by NDCG@10). ``make_readme_tables.py`` renders it (section ``next_item``).
"""

import os

if __name__ == "__main__":  # before numpy/torch load their thread pools
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import random
import sys
import time

import numpy as np
import torch
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
from bench_peers import (
    WARP,
    PeerRecommender,
    _describe,
    _params,
    fit_implicit_als,
    fit_implicit_bpr,
    fit_lightfm_warp,
    implicit_topk,
    pick_als_alpha,
)
from threadpoolctl import threadpool_limits

from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    ItemKNN,
    LSTMRecommender,
    Popularity,
)
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import LeaveLastOut

SCORERS = {
    "ndcg@10": make_ranking_scorer("ndcg", k=10),
    "hr@10": make_ranking_scorer("hit_rate", k=10),
}
SEED = 0
QUICK_USERS = 200  # --quick: the first users (by id) of each data set
QUICK_EPOCHS = 1  # --quick: epochs of the neural models

DATASETS = {
    "100k": {"name": "MovieLens-100K", "short": "ML-100K"},
    "latest-small": {"name": "MovieLens latest-small", "short": "ML latest-small"},
}

# (label, factory, parameters shown in the settings column); "ours" are the
# subject of the comparison, "baseline" our non-sequential recommenders.
OURS = {
    "AttentionRecommender": (
        lambda: AttentionRecommender(random_state=SEED),
        ["embedding_dim", "max_len", "n_blocks", "n_heads", "dropout", "loss",
         "max_iter", "batch_size", "learning_rate_init"],
    ),
    "LSTMRecommender": (
        lambda: LSTMRecommender(random_state=SEED),
        ["embedding_dim", "max_len", "n_layers", "dropout", "loss", "max_iter",
         "batch_size", "learning_rate_init"],
    ),
}
BASELINES = {
    "Popularity": (Popularity, ["half_life"]),
    "ItemKNN": (ItemKNN, ["n_neighbors", "shrinkage"]),
    "EASE": (EASE, ["l2_reg"]),
}

PROTOCOL = (
    "LeaveLastOut() of (user, item, timestamp), every rating a positive: each "
    "user's most recent interaction is the test item (users with one interaction "
    "stay in train); fit on the training rows; the test item ranked among all "
    "items the user has not interacted with in training; make_ranking_scorer("
    "'ndcg'|'hit_rate', k=10) for ours and for the peers (through "
    "bench_peers.PeerRecommender; the peers ignore the order)"
)


def score_all(est, test):
    return {name: float(scorer(est, test)) for name, scorer in SCORERS.items()}


def seed_everything(seed=SEED):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- data ------------------------------------------------------------------------


def prepare(ml, quick):
    """``(X, train, test)``: the interaction table (first users only with
    ``quick``) and its leave-last-out split."""
    X = ml.interactions[["user", "item", "timestamp"]]
    if quick:
        keep = np.sort(X["user"].unique())[:QUICK_USERS]
        X = X[X["user"].isin(keep)].reset_index(drop=True)
    train_idx, test_idx = next(LeaveLastOut().split(X))
    return X, X.iloc[train_idx], X.iloc[test_idx]


# -- models ----------------------------------------------------------------------


def run_ours(train, test, quick):
    rows = []
    for label, (factory, shown) in {**OURS, **BASELINES}.items():
        kind = "ours" if label in OURS else "baseline"
        est = factory()
        settings = "defaults" + (f" ({_params(est, shown)})" if shown else "")
        if quick and kind == "ours":
            est.set_params(max_iter=QUICK_EPOCHS)
            settings += f"; --quick: max_iter={QUICK_EPOCHS}"
        seed_everything()
        with Timer() as t:
            est.fit(train)
        with Timer() as ts:
            s = score_all(est, test)
        rows.append(dict(model=f"sklearn_recsys {label} (defaults)", kind=kind,
                         settings=settings, **s, fit_s=t.elapsed,
                         fit_cpu_s=t.cpu, score_s=ts.elapsed))
        print(f"  {label}: NDCG@10 {s['ndcg@10']:.4f}, HR@10 {s['hr@10']:.4f} "
              f"(fit {t.elapsed:.1f} s)", flush=True)
    return rows


def _peer_row(model, settings, adapter, test, t, **extra):
    with Timer() as ts:
        s = score_all(adapter, test)
    print(f"  {model}: NDCG@10 {s['ndcg@10']:.4f}, HR@10 {s['hr@10']:.4f} "
          f"(fit {t.elapsed:.1f} s)", flush=True)
    return dict(model=model, kind="peer", settings=settings, **s, fit_s=t.elapsed,
                fit_cpu_s=t.cpu, score_s=ts.elapsed, **extra)


def run_peers(train, test, quick):
    rows = []
    adapter = PeerRecommender(train)
    try:
        import implicit
    except ImportError as exc:
        rows.append({"model": "implicit ALS / BPR", "kind": "peer",
                     "settings": "not run",
                     "status": f"skipped: cannot import implicit ({exc})"})
    else:
        v = implicit.__version__
        # alpha of ALS, as bench_peers.py picks it, but on a leave-last-out
        # split of the training rows (the test items are never looked at)
        inner_idx, valid_idx = next(LeaveLastOut().split(train))
        inner_tr, inner_va = train.iloc[inner_idx], train.iloc[valid_idx]
        with Timer() as tv:
            alpha, val = pick_als_alpha(inner_tr, inner_va, quick)
        model, t, params = fit_implicit_als(adapter, alpha, quick)
        adapter.topk = implicit_topk(model, adapter.user_items)
        rows.append(_peer_row(
            f"implicit {v} AlternatingLeastSquares",
            _describe(dict(params, alpha=alpha)) + " (alpha picked on LeaveLastOut "
            "validation of the training rows)", adapter, test, t, validation=val,
            validation_s=tv.elapsed, validation_cpu_s=tv.cpu))

        model, t, params = fit_implicit_bpr(adapter, quick)
        adapter.topk = implicit_topk(model, adapter.user_items)
        rows.append(_peer_row(f"implicit {v} BayesianPersonalizedRanking",
                              _describe(params), adapter, test, t))

    try:
        import lightfm
    except ImportError as exc:
        rows.append({"model": "LightFM WARP", "kind": "peer",
                     "settings": _describe(WARP),
                     "status": f"skipped: cannot import lightfm ({exc}); see "
                     "benchmarks/README.md"})
    else:
        model, t, params, adapter.topk = fit_lightfm_warp(adapter, quick)
        rows.append(_peer_row(f"LightFM {lightfm.__version__} WARP",
                              _describe(params), adapter, test, t))
    return rows


# -- main --------------------------------------------------------------------------


def verdict(rows, short):
    """Best of ours (attention, LSTM) against the best peer, by NDCG@10."""
    ours = [r for r in rows if r.get("kind") == "ours" and "ndcg@10" in r]
    peers = [r for r in rows if r.get("kind") == "peer" and "ndcg@10" in r]
    if not ours or not peers:
        return f"{short}: no verdict (" + ("no peer measured" if ours else
                                           "none of ours measured") + ")."
    a = max(ours, key=lambda r: r["ndcg@10"])
    b = max(peers, key=lambda r: r["ndcg@10"])
    diff = a["ndcg@10"] - b["ndcg@10"]
    return (f"{short}: best of ours {a['model']} NDCG@10 {a['ndcg@10']:.4f} "
            f"(HR@10 {a['hr@10']:.4f}) vs best peer {b['model']} NDCG@10 "
            f"{b['ndcg@10']:.4f} (HR@10 {b['hr@10']:.4f}) -> "
            + ("ours better by " if diff > 0 else "ours WORSE by "
               if diff < 0 else "tie, difference ") + f"{abs(diff):.4f}")


COLUMNS = [("model", "model"), ("settings", "settings"), ("ndcg@10", "NDCG@10"),
           ("hr@10", "HR@10"), ("fit_s", "fit wall (s)"), ("fit_cpu_s", "fit CPU (s)"),
           ("status", "status")]


def _display(row):
    out = dict(row)
    for key in ("ndcg@10", "hr@10"):
        if key in out:
            out[key] = f"{out[key]:.4f}"
    for key in ("fit_s", "fit_cpu_s"):
        if key in out:
            out[key] = f"{out[key]:.2f}"
    return out


def run_dataset(dataset, args):
    """One MovieLens variant; the result dict of next_item.json."""
    spec = DATASETS[dataset]
    print(f"\n## {spec['name']}" + (" (--quick)" if args.quick else ""), flush=True)
    start = time.perf_counter()
    ml = load_movielens(dataset, args.data_home)
    if ml is None:
        return {"name": spec["name"], "skipped": f"{spec['name']} not found under "
                "--data-home"}
    X, train, test = prepare(ml, args.quick)
    info = {"name": spec["name"], "n_interactions": len(X),
            "n_users": int(X["user"].nunique()), "n_items": int(X["item"].nunique()),
            "n_train": len(train), "n_test": len(test),
            "n_train_items": int(train["item"].nunique())}
    if args.quick:
        info["quick_users"] = QUICK_USERS
    print(f"{info['n_interactions']:,} interactions, {info['n_users']:,} users, "
          f"{info['n_items']:,} items; {info['n_train']:,} train rows, "
          f"{info['n_test']:,} test items", flush=True)
    rows = run_ours(train, test, args.quick) + run_peers(train, test, args.quick)
    line = verdict(rows, spec["short"])
    print_table(f"{spec['short']} next item: LeaveLastOut, all unseen items ranked, "
                "make_ranking_scorer", [_display(r) for r in rows], COLUMNS,
                note=line)
    wall = time.perf_counter() - start
    print(f"\n{spec['short']}: {wall:.0f} s", flush=True)
    return {**info, "protocol": PROTOCOL, "rows": rows, "verdict": line,
            "wall_time_s": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--dataset", choices=[*DATASETS, "both"], default="both",
                        help="MovieLens variant(s) to run on (default: both)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    seed_everything()
    env = describe_environment("cpu")
    keys = list(DATASETS) if args.dataset == "both" else [args.dataset]
    print("# Next item on " + " and ".join(DATASETS[k]["name"] for k in keys)
          + (" (--quick)" if args.quick else ""))
    print(format_environment(env))
    start = time.perf_counter()
    # BLAS/OpenMP pools (numpy, implicit) held to --threads as well, also when
    # OMP_NUM_THREADS is not set (e.g. main() called from a test)
    with threadpool_limits(limits=args.threads):
        results = {key: run_dataset(key, args) for key in keys}
    wall = time.perf_counter() - start
    path = write_json("next_item", {
        "environment": env,
        "settings": {"quick": args.quick, "threads": args.threads,
                     "dataset": args.dataset, "seed": SEED,
                     **({"quick_users": QUICK_USERS, "quick_epochs": QUICK_EPOCHS}
                        if args.quick else {})},
        "datasets": results,
        "wall_time_s": wall,
    }, args.output)
    verdicts = [r["verdict"] for r in results.values() if "verdict" in r]
    if verdicts:
        print("\n" + "\n".join(verdicts))
    print(f"\nTotal {wall:.0f} s. Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
