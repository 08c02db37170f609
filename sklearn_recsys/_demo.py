"""The main job: train every recommender on one dataset and compare them.

Run as ``python -m sklearn_recsys demo`` (see ``--help``). The default dataset
is synthetic (:func:`~sklearn_recsys.datasets.make_interactions` with
sequential structure and item images), so the demo runs offline in minutes.
"""

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import fetch_movielens, make_interactions
from .metrics import make_ranking_scorer
from .model_selection import LeaveLastOut

METRICS = ("ndcg", "hit_rate", "recall", "mrr")


def _load(dataset, data_home, quick, seed):
    """Interactions table (user, item, timestamp) and optional item images."""
    if dataset == "synthetic":
        n_users, n_items = (400, 150) if quick else (2000, 500)
        bunch = make_interactions(
            n_users,
            n_items,
            n_components=8,
            density=0.06,
            sequential=True,
            markov_strength=0.5,
            item_features="image",
            image_shape=(16, 16),
            popularity_exponent=0.8,
            random_state=seed,
        )
        X = bunch.interactions[["user", "item", "timestamp"]]
        return X, np.arange(n_items), bunch.item_images, "synthetic (make_interactions)"
    variant = {"movielens-100k": "100k", "movielens-1m": "1m"}[dataset]
    bunch = fetch_movielens(variant, data_home=data_home)
    X = bunch.interactions[["user", "item", "timestamp"]]
    return X, None, None, f"MovieLens-{variant.upper()}"


def _models(device, seed, quick, item_ids, images):
    """(name, estimator) pairs; iteration counts scaled down with --quick."""
    from . import (
        EASE,
        AttentionRecommender,
        CNNRecommender,
        ItemContent,
        ItemKNN,
        LSTMRecommender,
        MatrixFactorization,
        Popularity,
    )

    epochs = 5 if quick else 20
    common = dict(device=device, random_state=seed)
    models = [
        ("Popularity", Popularity()),
        ("ItemKNN", ItemKNN()),
        ("EASE", EASE()),
        (
            "MF (BPR)",
            MatrixFactorization(
                loss="bpr", n_components=64, alpha=1e-3, learning_rate_init=5e-3,
                max_iter=epochs, batch_size=1024, **common,
            ),
        ),
        (
            "LSTM",
            LSTMRecommender(max_iter=epochs, **common),
        ),
        (
            "Attention",
            AttentionRecommender(max_iter=epochs, **common),
        ),
    ]
    if images is not None:
        models.append(
            (
                "CNN (images)",
                CNNRecommender(
                    item_content=ItemContent(item_ids, images=images),
                    max_iter=max(2, epochs // 2), **common,
                ),
            )
        )
    return models


def _plot(results, curves, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [r["model"] for r in results]
    x = np.arange(len(names))
    width = 0.38
    for offset, metric, label in ((-width / 2, "ndcg@10", "NDCG@10"), (width / 2, "hit_rate@10", "HR@10")):
        bars = ax1.bar(x + offset, [r[metric] for r in results], width, label=label)
        ax1.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax1.set_xticks(x, names, rotation=25, ha="right")
    ax1.set_ylabel("metric value (leave-last-out, full ranking)")
    ax1.set_title("Top-10 quality per model")
    ax1.legend()
    for name, curve in curves.items():
        curve = np.asarray(curve, dtype=float)
        ax2.plot(np.arange(1, len(curve) + 1), curve / curve[0], marker="o", ms=3, label=name)
    ax2.set_xlabel("epoch")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("training loss / first-epoch loss")
    ax2.set_title("Learning curves (loss_curve_)")
    if curves:
        ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _select(candidates, models):
    """The candidate ``(name, estimator)`` pairs named in ``models`` (all if None)."""
    if not models:
        return candidates
    wanted = {m.lower() for m in models}
    known = {n.split()[0].lower() for n, _ in candidates}
    if wanted - known:
        raise ValueError(
            f"Unknown model name(s) {sorted(wanted - known)}; choose among "
            f"{sorted(known)}."
        )
    return [(n, e) for n, e in candidates if n.split()[0].lower() in wanted]


def _evaluate(candidates, X_train, X_test, progress):
    """Fit and score every candidate: result rows and loss curves."""
    from tqdm.auto import tqdm

    scorers = {m: make_ranking_scorer(m, k=10) for m in METRICS}
    results, curves = [], {}
    bar = tqdm(candidates, desc="models", disable=not progress)
    for name, est in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        est.fit(X_train)
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        row = {"model": name}
        row.update({f"{m}@10": scorers[m](est, X_test) for m in METRICS})
        row["fit_time_s"] = fit_time
        row["eval_time_s"] = time.perf_counter() - start
        results.append(row)
        if hasattr(est, "loss_curve_"):
            curves[name] = est.loss_curve_
    return results, curves


def _save(results, curves, info, out):
    """Print the table and write the CSV, JSON and figure under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(results)
    label = info["dataset"]
    print(
        f"\n{label}: {info['n_interactions']} interactions, {info['n_users']} users, "
        f"{info['n_items']} items; {info['protocol']}; device={info['device']}\n"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    table.to_csv(out / "results.csv", index=False)
    with open(out / "results.json", "w") as fh:
        json.dump({"info": info, "results": results, "loss_curves": curves}, fh, indent=2)
    try:
        _plot(results, curves, out / "results.png", f"sklearn_recsys demo: {label}")
        figure = out / "results.png"
    except ImportError:
        figure = None
        print("\nmatplotlib is not installed: figure skipped (pip install 'sklearn_recsys[plot]').")
    print(f"\nWrote {out / 'results.csv'}, {out / 'results.json'}" + (f", {figure}" if figure else ""))


def run_demo(
    dataset="synthetic", data_home=None, device="cpu", output_dir="sklearn_recsys_results",
    models=None, quick=False, seed=0, progress=True,
):
    """Train the recommenders, evaluate them, print and save the results.

    Protocol: leave-last-out per user (the last interaction by time is the
    test item), every item the user has not interacted with is ranked.

    Returns
    -------
    results : list of dict
        One row per model: metrics at 10, fit time, evaluation time.
    """
    X, item_ids, images, label = _load(dataset, data_home, quick, seed)
    train_idx, test_idx = next(LeaveLastOut(n_test=1).split(X))
    candidates = _select(_models(device, seed, quick, item_ids, images), models)
    results, curves = _evaluate(candidates, X.iloc[train_idx], X.iloc[test_idx], progress)
    info = {
        "dataset": label,
        "n_interactions": int(len(X)),
        "n_users": int(X["user"].nunique()),
        "n_items": int(X["item"].nunique()),
        "protocol": "leave-last-out per user, full ranking of unseen items, k=10",
        "device": device,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    _save(results, curves, info, Path(output_dir))
    return results
