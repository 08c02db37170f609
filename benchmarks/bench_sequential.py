"""Sequential recommenders on MovieLens-100K, leave-last-out.

Protocol (per user, by time, ``LeaveLastOut(n_test=1, n_valid=1)``): the last
interaction is the test item, the one before it the validation item, the
rest is training data. Models are fitted on the training rows only.

* validation: each user's training history is encoded and every item the
  user has not interacted with in training is ranked; NDCG@10 of the
  validation item is measured every ``--eval-every`` epochs (training
  continues with ``warm_start=True``) and the best epoch's weights are kept
  (patience ``--patience`` evaluations). The test item is never used for
  this choice;
* test: the history is the training rows plus the validation item, passed
  to ``recommend`` as an interaction table of histories (no refit); every
  item the user has not interacted with before is ranked (seen items
  excluded), and HR@10 and NDCG@10 of the test item are reported;
* baseline: the most popular items (counted on the training + validation
  rows) among those the user has not interacted with.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_sequential.py

Writes ``benchmarks/results/sequential.json`` and prints a markdown table.
"""

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sklearn_recsys
from sklearn_recsys import AttentionRecommender, LSTMRecommender
from sklearn_recsys.datasets import fetch_movielens
from sklearn_recsys.model_selection import LeaveLastOut

REPO = Path(__file__).resolve().parents[1]
K = 10


def topk_metrics(rec_ids, target):
    """HR@K and NDCG@K of one relevant item per user, per user."""
    hits = rec_ids[:, :K] == np.asarray(target)[:, None]
    rank = np.argmax(hits, axis=1)
    hit = hits.any(axis=1)
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return hit.astype(float), ndcg


def popularity(history, users, n_items_ids):
    """Most popular items of ``history`` the user has not interacted with."""
    counts = history["item"].value_counts()
    ranked = counts.index.to_numpy()
    ranked = np.r_[ranked, np.setdiff1d(n_items_ids, ranked)]
    seen = history.groupby("user")["item"].agg(set)
    out = np.empty((len(users), K), dtype=ranked.dtype)
    for r, u in enumerate(users):
        s = seen.get(u, set())
        picked = []
        for item in ranked:
            if item not in s:
                picked.append(item)
                if len(picked) == K:
                    break
        out[r] = picked
    return out


def run_model(name, estimator, train, valid, test, args):
    """Fit with validation-based epoch selection; evaluate on the test items."""
    users_v = valid["user"].to_numpy()
    items_v = valid["item"].to_numpy()
    best = (-1.0, 0, None)
    curve = []
    train_time = 0.0
    eval_time = 0.0
    epochs = 0
    bad = 0
    chunk = 0
    while epochs < args.max_iter:
        n = min(args.eval_every, args.max_iter - epochs)
        # warm_start continues training; a new seed per chunk gives new
        # shuffles/dropout masks (the iterator is re-seeded at every fit).
        estimator.set_params(max_iter=n, warm_start=True, random_state=args.seed + chunk)
        t0 = time.perf_counter()
        estimator.fit(train)
        train_time += time.perf_counter() - t0
        epochs += n
        chunk += 1
        t0 = time.perf_counter()
        rec, _ = estimator.recommend(users_v, k=K)
        eval_time += time.perf_counter() - t0
        ndcg = float(topk_metrics(rec, items_v)[1].mean())
        curve.append((epochs, ndcg))
        if args.verbose:
            print(f"  {name} epoch {epochs:3d}  valid NDCG@10 {ndcg:.4f}  "
                  f"train {train_time:6.1f}s", flush=True)
        if ndcg > best[0]:
            state = copy.deepcopy(estimator.net_.module_.state_dict())
            best = (ndcg, epochs, state)
            bad = 0
        else:
            bad += 1
            if bad >= args.patience:
                break
    estimator.net_.module_.load_state_dict(best[2])
    # Test: training history plus the validation item, encoded without refit.
    users_t = test["user"].to_numpy()
    history = pd.concat([train, valid])
    history = history[history["user"].isin(users_t)]
    t0 = time.perf_counter()
    rec, _ = estimator.recommend(history, k=K)  # users in order of first appearance
    eval_time += time.perf_counter() - t0
    order = pd.unique(history["user"].to_numpy())
    target = test.set_index("user").loc[order, "item"].to_numpy()
    hit, ndcg = topk_metrics(rec, target)
    n_seqs = int((train.groupby("user").size() >= 2).sum())
    return {
        "model": name,
        "params": {
            k: v for k, v in estimator.get_params().items()
            if k not in ("callbacks", "warm_start", "random_state", "max_iter")
        },
        "hr@10": float(hit.mean()),
        "ndcg@10": float(ndcg.mean()),
        "valid_ndcg@10": best[0],
        "best_epoch": best[1],
        "epochs_run": epochs,
        "valid_curve": curve,
        "fit_time_s": train_time,
        "eval_time_s": eval_time,
        "train_sequences": n_seqs,
        "throughput_seq_per_s": n_seqs * epochs / train_time,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-home", default=str(REPO.parent / "shared" / "data"),
                        help="folder holding ml-100k (default: ../shared/data "
                        "relative to the repository root)")
    parser.add_argument("--models", nargs="+", default=["popularity", "attention", "lstm"],
                        choices=["popularity", "attention", "lstm"])
    parser.add_argument("--max-iter", type=int, default=30, help="most epochs per model")
    parser.add_argument("--eval-every", type=int, default=3, help="epochs between validations")
    parser.add_argument("--patience", type=int, default=3,
                        help="validations without improvement before stopping")
    parser.add_argument("--max-len", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam's learning rate (default: each model's own default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "sequential.json"))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    # The machine may be shared: record its load, which inflates timings.
    load = [round(v, 2) for v in os.getloadavg()]

    data = fetch_movielens("100k", data_home=args.data_home, download_if_missing=False)
    X = data.interactions[["user", "item", "timestamp"]]
    train_idx, valid_idx, test_idx = next(
        LeaveLastOut(n_test=1, n_valid=1).split_validation(X)
    )
    train, valid, test = X.iloc[train_idx], X.iloc[valid_idx], X.iloc[test_idx]
    common = dict(
        embedding_dim=args.embedding_dim,
        max_len=args.max_len,
        dropout=args.dropout,
        batch_size=args.batch_size,
        device=args.device,
    )
    if args.learning_rate is not None:
        common["learning_rate_init"] = args.learning_rate
    models = {
        "attention": lambda: AttentionRecommender(n_blocks=2, n_heads=1, **common),
        "lstm": lambda: LSTMRecommender(n_layers=2, **common),
    }
    results = []
    for name in args.models:
        print(f"running {name} ...", flush=True)
        if name == "popularity":
            t0 = time.perf_counter()
            history = pd.concat([train, valid])
            rec = popularity(history, test["user"].to_numpy(), np.unique(X["item"]))
            hit, ndcg = topk_metrics(rec, test["item"].to_numpy())
            results.append({"model": "popularity", "hr@10": float(hit.mean()),
                            "ndcg@10": float(ndcg.mean()),
                            "fit_time_s": time.perf_counter() - t0})
            continue
        results.append(run_model(name, models[name](), train, valid, test, args))

    hardware = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sklearn_recsys": sklearn_recsys.__version__,
        "device": args.device,
        "load_average_at_start": load,
        "total_time_s": time.perf_counter() - start,
    }
    setup = {
        "dataset": "MovieLens-100K",
        "n_users": int(X["user"].nunique()),
        "n_items": int(X["item"].nunique()),
        "n_interactions": len(X),
        "split": "LeaveLastOut(n_test=1, n_valid=1): last item test, second last validation",
        "ranking": "all items the user has not interacted with (seen excluded)",
        "args": vars(args) | {
            "output": os.path.relpath(args.output, REPO),
            "data_home": os.path.relpath(args.data_home, REPO),
        },
    }
    out = {"hardware": hardware, "setup": setup, "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2, default=str)

    print()
    print(f"MovieLens-100K leave-last-out, full ranking of unseen items; "
          f"{hardware['cpu_count']} CPUs, torch {hardware['torch']} "
          f"({hardware['torch_threads']} thread(s)), device {args.device}, "
          f"load average at start {load[0]}; total {hardware['total_time_s']:.0f} s")
    print()
    print("| model | HR@10 | NDCG@10 | valid NDCG@10 | best epoch | fit time (s) | sequences/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r["model"] == "popularity":
            print(f"| popularity | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | - | - | - | - |")
        else:
            print(f"| {r['model']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | "
                  f"{r['valid_ndcg@10']:.4f} | {r['best_epoch']} | "
                  f"{r['fit_time_s']:.1f} | {r['throughput_seq_per_s']:.0f} |")
    return out


if __name__ == "__main__":
    main()
