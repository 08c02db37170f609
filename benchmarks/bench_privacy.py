"""Differentially private training: NDCG@10 against the privacy budget epsilon.

User-level DP-SGD (``differential_privacy=DifferentialPrivacy(epsilon=...)``,
see ``sklearn_recsys/_privacy.py``) on MovieLens-100K, read from
``--data-home`` and never downloaded:

* **MatrixFactorization(loss="softmax")**, top-N: every rating a positive,
  ``UserHoldout(test_size=0.2, random_state=0)`` (as ``bench_mf.py``),
  NDCG@10 of ``make_ranking_scorer("ndcg", k=10)`` on the test rows (training
  items excluded, every other item ranked). The shared parameters (item
  factors and biases, global bias) are DP; each user's own factors follow
  that user's gradient (joint DP);
* **AttentionRecommender**, next item: ``LeaveLastOut(n_test=1,
  n_valid=1)`` by time (as ``bench_sequential.py``): fitted on the training
  rows, then each user's training history plus the validation item is
  encoded without refit and the test item ranked among the items the user
  has not interacted with (HR@10, NDCG@10). DP fits cannot choose their epoch
  on validation data, so every fit here (private or not) trains the model's
  default ``max_iter`` epochs;
* **Popularity** on the same splits: the floor (top-N: ``Popularity()``
  scored like MF; next item: the most popular items of training +
  validation rows, as ``bench_sequential.py``).

Each model is fitted at ``--epsilons`` (default 1, 3, 8) with ``delta``
``1 / n_users`` (the default), ``--max-grad-norm`` (default 0.03) and
``--sample-rate`` (default 0.1), and without ``differential_privacy``
(epsilon = inf). The private MF fits use ``learning_rate_init=
--mf-learning-rate`` (default 0.01, chosen on validation data: DP-SGD gains
from it, the non-private model loses); everything else is the package
defaults (``random_state=--seed``), the same with and without privacy.
Reported: NDCG@10, the fitted ``epsilon_``, ``delta_`` and
``noise_multiplier_``, fit wall and CPU time, and the fraction of the
non-private NDCG@10 kept at epsilon = 8 (and of its gain over popularity).

``--validate mf|attention`` scores DP settings on **validation data**
instead (``tune_defaults.inner_split``: the benchmark split's training part
split again by the same protocol, never the test rows), for ``--datasets``
(ML-100K and ML latest-small) and the grid ``--max-grad-norms`` x
``--sample-rates`` x ``--learning-rates`` at ``--epsilon`` (plus the
non-private fit with ``--reference``); ``--validate popularity`` scores the
popularity floor of both tasks there. This is how the defaults of
``DifferentialPrivacy`` were chosen (the commands are stored with the rows).

Results go to ``benchmarks/results/privacy.json``: the test curve under
``"test"``, validation grids under ``"validation"`` (each mode rewrites its
own section and keeps the other; validation rows are replaced by key).
``--quick`` is a smoke test on synthetic data
(``sklearn_recsys.datasets.make_interactions``, 2-3 epochs): its numbers
mean nothing.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_privacy.py            # ~10 min
    OMP_NUM_THREADS=1 python benchmarks/bench_privacy.py --quick    # ~15 s
    OMP_NUM_THREADS=1 python benchmarks/bench_privacy.py --validate mf \\
        --datasets 100k --max-grad-norms 0.01 0.03 0.1 --sample-rates 0.1 0.2

Each private fit computes one backward pass per sampled user (an expected
``n_users`` per epoch): about 80 s of CPU for MF and 100 s for attention on
ML-100K with one thread (593 s for the whole default run on a shared 2-CPU
Intel Xeon VM, load average 1.5 at start; ``--quick`` 12-15 s). On ML
latest-small (671 users, 9k items) a private fit takes 200-300 s.
"""

import argparse
import fcntl
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import pandas as pd
from _harness import (
    RESULTS_DIR,
    Timer,
    add_common_arguments,
    command_line,
    describe_environment,
    format_environment,
    load_movielens,
    print_table,
    set_threads,
)

NAME = "privacy"
K = 10
DATASET_NAMES = {"100k": "ML-100K", "latest-small": "ML latest-small",
                 "synthetic": "synthetic"}


# -- estimators -------------------------------------------------------------------


def make_estimator(model, epsilon, settings, seed, quick=False):
    """``model`` at ``epsilon`` (``math.inf``: no differential_privacy)."""
    from sklearn_recsys import (
        AttentionRecommender,
        DifferentialPrivacy,
        MatrixFactorization,
    )

    dp = None
    if math.isfinite(epsilon):
        dp = DifferentialPrivacy(
            epsilon=float(epsilon), max_grad_norm=settings["max_grad_norm"],
            sample_rate=settings["sample_rate"],
        )
    extra = {}
    if settings.get("learning_rate_init") is not None:
        extra["learning_rate_init"] = settings["learning_rate_init"]
    if quick:
        extra["max_iter"] = 3 if model == "mf" else 2
    if model == "mf":
        return MatrixFactorization(loss="softmax", differential_privacy=dp,
                                   random_state=seed, **extra)
    return AttentionRecommender(differential_privacy=dp, random_state=seed, **extra)


def fitted_privacy(est):
    return {
        "epsilon_": getattr(est, "epsilon_", math.inf),
        "delta_": getattr(est, "delta_", None),
        "noise_multiplier_": getattr(est, "noise_multiplier_", 0.0),
    }


def fit_timed(est, X):
    with Timer() as t:
        est.fit(X)
    return {"fit_wall_s": t.elapsed, "fit_cpu_s": t.cpu, "n_iter_": est.n_iter_}


# -- test protocols ---------------------------------------------------------------------


def topn_split(X):
    from sklearn_recsys.model_selection import UserHoldout

    X = X[["user", "item"]]
    train, test = next(UserHoldout(test_size=0.2, random_state=0).split(X))
    return X.iloc[train], X.iloc[test]


def next_item_split(X):
    from sklearn_recsys.model_selection import LeaveLastOut

    X = X[["user", "item", "timestamp"]]
    tr, va, te = next(LeaveLastOut(n_test=1, n_valid=1).split_validation(X))
    return X.iloc[tr], X.iloc[va], X.iloc[te]


def topk_ndcg(rec_ids, target):
    """HR@K and NDCG@K (means) of one relevant item per user."""
    hits = rec_ids[:, :K] == np.asarray(target)[:, None]
    rank = np.argmax(hits, axis=1)
    hit = hits.any(axis=1)
    return float(hit.mean()), float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())


def popular_unseen(history, users, all_items):
    """The K most popular items of ``history`` each user has not interacted with."""
    ranked = history["item"].value_counts().index.to_numpy()
    ranked = np.r_[ranked, np.setdiff1d(all_items, ranked)]
    seen = history.groupby("user")["item"].agg(set)
    out = np.empty((len(users), K), dtype=ranked.dtype)
    for r, u in enumerate(users):
        s = seen.get(u, set())
        out[r] = [i for i in ranked[: K + len(s)] if i not in s][:K]
    return out


def run_topn(X, epsilons, settings, args):
    from sklearn_recsys import Popularity
    from sklearn_recsys.metrics import make_ranking_scorer

    ndcg = make_ranking_scorer("ndcg", k=K)
    train, test = topn_split(X)
    rows = [{"model": "Popularity()", "epsilon": None,
             "ndcg@10": ndcg(Popularity().fit(train), test)}]
    for eps in epsilons:
        # the learning rate chosen for DP-SGD is for the private fits only: the
        # non-private reference keeps the package defaults (its best settings)
        est = make_estimator("mf", eps, settings if math.isfinite(eps) else {},
                             args.seed, args.quick)
        row = {"model": "MatrixFactorization(loss='softmax')", "epsilon": eps,
               **fit_timed(est, train)}
        row["ndcg@10"] = ndcg(est, test)
        row.update(fitted_privacy(est))
        rows.append(row)
        report(row)
    return {"protocol": "every rating a positive; UserHoldout(test_size=0.2, "
            "random_state=0); make_ranking_scorer('ndcg', k=10), training items "
            "excluded, all other items ranked",
            "n_train": len(train), "n_test": len(test),
            "n_users": int(train["user"].nunique()), "rows": rows}


def run_next_item(X, epsilons, settings, args):
    train, valid, test = next_item_split(X)
    users = test["user"].to_numpy()
    history = pd.concat([train, valid])
    history = history[history["user"].isin(users)]
    with Timer() as t:
        rec = popular_unseen(history, users, np.unique(X["item"]))
    hr, nd = topk_ndcg(rec, test["item"].to_numpy())
    rows = [{"model": "popularity (unseen)", "epsilon": None, "hr@10": hr,
             "ndcg@10": nd, "fit_wall_s": t.elapsed}]
    for eps in epsilons:
        est = make_estimator("attention", eps, settings, args.seed, args.quick)
        row = {"model": "AttentionRecommender()", "epsilon": eps,
               **fit_timed(est, train)}
        rec, _ = est.recommend(history, k=K)  # users in order of first appearance
        order = pd.unique(history["user"].to_numpy())
        row["hr@10"], row["ndcg@10"] = topk_ndcg(
            rec, test.set_index("user").loc[order, "item"].to_numpy())
        row.update(fitted_privacy(est))
        rows.append(row)
        report(row)
    return {"protocol": "LeaveLastOut(n_test=1, n_valid=1) by time; fitted on "
            "the training rows for the model's default max_iter (no epoch "
            "selection); test: training history + validation item encoded without "
            "refit, the test item ranked among the items the user has not "
            "interacted with",
            "n_train": len(train), "n_test": len(test),
            "n_users": int(train["user"].nunique()), "rows": rows}


def report(row):
    eps = "inf" if not math.isfinite(row["epsilon"]) else f"{row['epsilon']:g}"
    print(f"  {row['model']} eps={eps}: NDCG@10 {row['ndcg@10']:.4f}, "
          f"epsilon_ {row['epsilon_']:.3g}, noise_multiplier_ "
          f"{row['noise_multiplier_']:.3g}, fit {row['fit_wall_s']:.0f} s wall / "
          f"{row['fit_cpu_s']:.0f} s CPU", flush=True)


def summarise(section):
    """Fraction of the non-private NDCG@10 kept at each epsilon."""
    rows = section["rows"]
    floor = rows[0]["ndcg@10"]
    top = next(r["ndcg@10"] for r in rows[1:] if not math.isfinite(r["epsilon"]))
    for r in rows[1:]:
        r["kept"] = r["ndcg@10"] / top
        r["gain_over_popularity_kept"] = (
            (r["ndcg@10"] - floor) / (top - floor) if top > floor else None)
    at8 = [r for r in rows[1:] if r["epsilon"] == 8]
    section["popularity_ndcg@10"] = floor
    section["nonprivate_ndcg@10"] = top
    if at8:
        section["kept_at_epsilon_8"] = at8[0]["kept"]
        section["gain_over_popularity_kept_at_epsilon_8"] = at8[0][
            "gain_over_popularity_kept"]


def test_table(sections):
    out = []
    for task, sec in sections.items():
        for r in sec["rows"]:
            private = r["epsilon"] is not None and math.isfinite(r["epsilon"])
            out.append({
                "task": task,
                "model": r["model"],
                "epsilon": ("-" if r["epsilon"] is None else
                            f"{r['epsilon']:g}" if private else "inf (not private)"),
                "ndcg": f"{r['ndcg@10']:.4f}",
                "kept": f"{r['kept']:.0%}" if "kept" in r else "-",
                "eps_": f"{r['epsilon_']:.3f}" if private else "-",
                "sigma": f"{r['noise_multiplier_']:.3f}" if private else "-",
                "fit": (f"{r['fit_wall_s']:.0f} / {r['fit_cpu_s']:.0f}"
                        if "fit_cpu_s" in r else "-"),
            })
    return out


TEST_COLUMNS = [("task", "task"), ("model", "model"), ("epsilon", "target epsilon"),
                ("ndcg", "NDCG@10"), ("kept", "of non-private"),
                ("eps_", "epsilon_"), ("sigma", "noise_multiplier_"),
                ("fit", "fit wall / CPU (s)")]


# -- validation grid -------------------------------------------------------------------


def run_validation(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tune_defaults import evaluate, inner_split

    from sklearn_recsys import Popularity

    rows = []
    for name in ["synthetic"] if args.quick else args.datasets:
        if name == "synthetic":
            X = synthetic()
        else:
            data = load_movielens(name, args.data_home)
            if data is None:
                return None
            X = data.interactions
        if args.validate == "popularity":  # the floor of both tasks
            for model, task in POPULARITY.items():
                train, valid = inner_split(X, task)
                with Timer() as t:
                    score, _, _ = evaluate(Popularity(), train, valid, task)
                rows.append({"dataset": name, "model": model, "epsilon": math.inf,
                             "max_grad_norm": None, "sample_rate": None,
                             "learning_rate_init": None, "validation_ndcg@10": score,
                             "wall_s": t.elapsed, "cpu_s": t.cpu})
                print(f"{DATASET_NAMES[name]:16s} {model}: validation NDCG@10 "
                      f"{score:.4f}", flush=True)
            continue
        task = TASKS[args.validate]
        train, valid = inner_split(X, task)
        grid = [(math.inf, None, None, lr) for lr in args.learning_rates] if \
            args.reference else []
        grid += [(args.epsilon, mgn, sr, lr) for mgn, sr, lr in itertools.product(
            args.max_grad_norms, args.sample_rates, args.learning_rates)]
        for eps, mgn, sr, lr in grid:
            settings = {"max_grad_norm": mgn, "sample_rate": sr, "learning_rate_init": lr}
            est = make_estimator(args.validate, eps, settings, args.seed, args.quick)
            with Timer() as t:
                score, _, epochs = evaluate(est, train, valid, task)
            row = {"dataset": name, "model": args.validate, "epsilon": eps,
                   "max_grad_norm": mgn, "sample_rate": sr,
                   "learning_rate_init": est.learning_rate_init,
                   "validation_ndcg@10": score, "n_iter_": epochs,
                   "wall_s": t.elapsed, "cpu_s": t.cpu, **fitted_privacy(est)}
            rows.append(row)
            print(f"{DATASET_NAMES[name]:16s} {args.validate:9s} eps={eps:g} "
                  f"max_grad_norm={mgn} sample_rate={sr} lr={row['learning_rate_init']:g}"
                  f": validation NDCG@10 {score:.4f} (noise_multiplier_ "
                  f"{row['noise_multiplier_']:.3g}; {t.elapsed:.0f} s wall, "
                  f"{t.cpu:.0f} s CPU)", flush=True)
    return rows


TASKS = {"mf": "topn", "attention": "next"}
POPULARITY = {"popularity (top-N)": "topn", "popularity (next item)": "next"}


def validation_table(rows):
    ref = {}  # the best non-private fit
    for r in rows:
        if not math.isfinite(r["epsilon"]):
            key = (r["dataset"], r["model"])
            ref[key] = max(ref.get(key, 0.0), r["validation_ndcg@10"])
    floor = {(r["dataset"], POPULARITY[r["model"]]): r["validation_ndcg@10"]
             for r in rows if r["model"] in POPULARITY}
    out = []
    order = {"mf": 0, "attention": 1}
    for r in sorted(rows, key=lambda r: (order.get(r["model"], 2), r["model"],
                                         r["dataset"] != "100k", r["dataset"])):
        private = math.isfinite(r["epsilon"])
        top = None if r["model"] in POPULARITY else ref.get((r["dataset"], r["model"]))
        pop = floor.get((r["dataset"], TASKS.get(r["model"])))
        out.append({
            "dataset": DATASET_NAMES.get(r["dataset"], r["dataset"]), "model": r["model"],
            "epsilon": (f"{r['epsilon']:g}" if private else
                        "-" if r["model"] in POPULARITY else "inf"),
            "max_grad_norm": r["max_grad_norm"] if private else "-",
            "sample_rate": r["sample_rate"] if private else "-",
            "lr": ("-" if r["learning_rate_init"] is None
                   else f"{r['learning_rate_init']:g}"),
            "ndcg": f"{r['validation_ndcg@10']:.4f}",
            "kept": f"{r['validation_ndcg@10'] / top:.0%}" if top else "-",
            "popularity": f"{pop:.4f}" if pop is not None else "-",
            "sigma": f"{r['noise_multiplier_']:.3f}" if private else "-",
            "cpu": f"{r['cpu_s']:.0f}",
        })
    return out


VALIDATION_COLUMNS = [("dataset", "dataset"), ("model", "model"), ("epsilon", "epsilon"),
                      ("max_grad_norm", "max_grad_norm"), ("sample_rate", "sample_rate"),
                      ("lr", "learning_rate_init"), ("ndcg", "validation NDCG@10"),
                      ("kept", "of best non-private"), ("popularity", "popularity"),
                      ("sigma", "noise_multiplier_"),
                      ("cpu", "fit + score CPU (s)")]


def _row_key(r):
    return (r["dataset"], r["model"], r["epsilon"], r["max_grad_norm"], r["sample_rate"],
            r["learning_rate_init"])


# -- output ---------------------------------------------------------------------------


def update_results(path, key, value, merge_rows=False):
    """Rewrite the ``key`` section of the result file, keeping the others.

    Validation rows (``merge_rows``) replace the stored rows with the same key
    and keep the rest. Concurrent runs are serialised by a lock on the
    results folder.
    """
    import datetime

    from _harness import _jsonable

    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                payload = json.load(f)
        except (OSError, ValueError):
            payload = {"benchmark": NAME}
        value = _jsonable(value)
        if merge_rows:
            old = payload.get(key, {}).get("rows", [])
            keys = {_row_key(r) for r in value["rows"]}
            value["rows"] = [r for r in old if _row_key(r) not in keys] + value["rows"]
            value["commands"] = sorted(
                set(payload.get(key, {}).get("commands", [])) | {value.pop("command")})
        payload[key] = value
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.10)
        payload["written_at"] = now.isoformat(timespec="seconds")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        os.close(fd)
    return path


def _inf_to_str(obj):
    """JSON has no infinity: write epsilon = inf as the string "inf"."""
    if isinstance(obj, dict):
        return {k: _inf_to_str(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_inf_to_str(v) for v in obj]
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    return obj


def _str_to_inf(rows):
    for r in rows:
        for k, v in r.items():
            if v == "inf":
                r[k] = math.inf
    return rows


# -- main --------------------------------------------------------------------------------


def synthetic():
    from sklearn_recsys.datasets import make_interactions

    return make_interactions(n_users=200, n_items=100, density=0.1, sequential=True,
                             random_state=0).interactions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0],
                        help="privacy budgets of the private fits (a non-private fit "
                        "is always added)")
    parser.add_argument("--max-grad-norm", type=float, default=0.03,
                        help="DifferentialPrivacy(max_grad_norm=...) (default: 0.03)")
    parser.add_argument("--sample-rate", type=float, default=0.1,
                        help="DifferentialPrivacy(sample_rate=...) (default: 0.1)")
    parser.add_argument("--mf-learning-rate", type=float, default=0.01,
                        help="learning_rate_init of the private MatrixFactorization "
                        "fits (default: 0.01; the non-private fit keeps the package "
                        "default)")
    parser.add_argument("--models", nargs="+", default=["mf", "attention"],
                        choices=["mf", "attention"])
    parser.add_argument("--seed", type=int, default=0)
    val = parser.add_argument_group("validation grid (--validate)")
    val.add_argument("--validate", choices=["mf", "attention", "popularity"],
                     help="score a grid of DP settings on validation data instead "
                     "('popularity': the floor of both tasks)")
    val.add_argument("--datasets", nargs="+", default=["100k", "latest-small"],
                     choices=["100k", "latest-small"])
    val.add_argument("--epsilon", type=float, default=8.0)
    val.add_argument("--max-grad-norms", type=float, nargs="*", default=[0.1],
                     help="none: only the --reference fits")
    val.add_argument("--sample-rates", type=float, nargs="+", default=[0.1])
    val.add_argument("--learning-rates", type=float, nargs="+", default=[None])
    val.add_argument("--reference", action="store_true",
                     help="also fit without differential_privacy")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    output = args.output or str(RESULTS_DIR / f"{NAME}.json")
    env = describe_environment()
    start = time.perf_counter()

    if args.validate:
        rows = run_validation(args)
        if rows is None:
            return 0
        print_table(f"Validation grid, {args.validate} (inner validation split)",
                    validation_table(rows), VALIDATION_COLUMNS)
        if args.quick and not args.output:
            return 0  # smoke test: keep the stored validation rows clean
        update_results(output, "validation", {
            "command": command_line(), "environment": env,
            "protocol": "tune_defaults.inner_split: the benchmark split's training "
            "part split again by the same protocol (topn: UserHoldout(0.2, "
            "random_state=1); next: LeaveLastOut); NDCG@10 on the validation part",
            "rows": _inf_to_str(rows),
        }, merge_rows=True)
        with open(output) as f:
            all_rows = _str_to_inf(json.load(f)["validation"]["rows"])
        print_table("All validation rows in the result file",
                    validation_table(all_rows), VALIDATION_COLUMNS)
        return 0

    if args.quick:
        X, source = synthetic(), "synthetic (make_interactions, 200 x 100, --quick)"
    else:
        data = load_movielens("100k", args.data_home)
        if data is None:
            return 0
        X, source = data.interactions, "MovieLens-100K"
    epsilons = [*args.epsilons, math.inf]
    settings = {"max_grad_norm": args.max_grad_norm, "sample_rate": args.sample_rate}
    sections = {}
    if "mf" in args.models:
        print("top-N, MatrixFactorization(loss='softmax') ...", flush=True)
        mf_settings = {**settings, "learning_rate_init": args.mf_learning_rate}
        sections["top-N"] = run_topn(X, epsilons, mf_settings, args)
    if "attention" in args.models:
        print("next item, AttentionRecommender() ...", flush=True)
        sections["next item"] = run_next_item(X, epsilons, settings, args)
    for sec in sections.values():
        summarise(sec)
    total = time.perf_counter() - start

    print(f"\n{source}; {format_environment(env)}; total {total:.0f} s")
    note = (
        f"DifferentialPrivacy(epsilon, max_grad_norm={args.max_grad_norm:g}, "
        f"sample_rate={args.sample_rate:g}), delta = 1/n_users, RDP accountant; "
        f"private MF fits with learning_rate_init={args.mf_learning_rate:g}; "
        "otherwise the package defaults, also for the non-private fits. "
        "'of non-private': NDCG@10 / non-private NDCG@10."
    )
    print_table("NDCG@10 against epsilon (test split)", test_table(sections),
                TEST_COLUMNS, note=note)
    for task, sec in sections.items():
        if "kept_at_epsilon_8" in sec:
            gain = sec["gain_over_popularity_kept_at_epsilon_8"]
            print(f"{task}: epsilon = 8 keeps {sec['kept_at_epsilon_8']:.0%} of the "
                  "non-private NDCG@10" + ("" if gain is None else
                  f" and {gain:.0%} of its gain over popularity") + ".")
    update_results(output, "test", {
        "command": command_line(), "environment": env, "data": source,
        "quick": args.quick, "total_wall_s": total,
        "settings": {**settings, "mf_learning_rate_init": args.mf_learning_rate,
                     "delta": "1 / n_users", "accountant": "rdp", "seed": args.seed},
        "sections": _inf_to_str(sections),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
