"""Scaling of MatrixFactorization training with the number of interactions
(CPU), and of EASE fit time with the number of items.

MatrixFactorization: synthetic ratings (``bench_mf.synthetic_ratings``:
random (user, item) pairs rated by a planted rank-8 model) with
``n`` = 1e5, 1e6, 1e7 interactions; ``loss="mse"``, 32 factors, batch 1024
(the default), one torch thread. Series (``--series``):

* ``fixed``: 10,000 users x 5,000 items at every size, default solver;
* ``proportional``: ``n / 100`` users and ``n / 200`` items, default
  ``solver="auto"`` (dense Adam while the tables are small, sparse
  embedding gradients with lazy Adam once they hold more than 8 rows per row
  a batch touches);
* ``proportional-adam`` / ``proportional-sparse``: the same id spaces with
  ``solver="adam"`` / ``solver="sparse_adam"`` forced, to show the two costs
  ``"auto"`` chooses between: a dense step reads and writes the whole user
  and item tables (``O(n_users + n_items)``), a sparse one only the batch's
  rows.

Measured per size: seconds per epoch (median of ``net_.history[:, "dur"]``
over ``--epochs`` epochs; the 1e7 fits run a single epoch), whole ``fit``
time, and peak resident memory above the level before ``fit``
(``_harness.PeakMemory``). The exponent ``b`` of ``time/epoch ~ n^b`` is a
least-squares fit on log-log axes.

EASE: fit time vs number of items (``n_items`` = 500..8000, 20 interactions
per item on average; after an untimed warm-up fit, the best of three fits
below 8000 items, one at 8000); its closed form inverts an
``n_items x n_items`` Gram matrix, so ``~ n_items^3`` is expected at large
sizes.

1e8 interactions only fits a GPU run and is still to be measured.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_scaling.py          # ~9 minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_scaling.py --quick  # up to 1e6

Results: tables on stdout, ``benchmarks/results/scaling.json`` and the plot
``benchmarks/results/scaling.png``.
"""

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd

from _harness import (
    RESULTS_DIR,
    PeakMemory,
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    loglog_exponent,
    median,
    print_table,
    release_memory,
    set_threads,
    write_json,
)
from bench_mf import synthetic_ratings
from sklearn_recsys import EASE, MatrixFactorization

SIZES = [100_000, 1_000_000, 10_000_000]
EASE_ITEMS = [500, 1000, 2000, 4000, 8000]
FIXED_USERS, FIXED_ITEMS = 10_000, 5_000
_FIXED = f"{FIXED_USERS:,} users x {FIXED_ITEMS:,} items at every size"
_PROPORTIONAL = "n / 100 users x n / 200 items"
# name: (id space described, solver)
SERIES = {
    "fixed": (_FIXED, "auto"),
    "proportional": (_PROPORTIONAL, "auto"),
    "proportional-adam": (_PROPORTIONAL, "adam"),
    "proportional-sparse": (_PROPORTIONAL, "sparse_adam"),
}
MODEL = dict(loss="mse", n_components=32, alpha=0.0, learning_rate_init=1e-3,
             batch_size=1024)


def _id_space(id_space, n):
    if id_space == _FIXED:
        return FIXED_USERS, FIXED_ITEMS
    return max(n // 100, 10), max(n // 200, 10)


def _gradient_solver(solver, X):
    """``solver="auto"`` among the gradient solvers: for ratings, "auto" is
    the Gibbs sampler (``docs/user_guide/models.rst``), whose sweeps this
    benchmark does not scale; an estimator with early stopping tells which
    of dense and sparse Adam "auto" picks for these id spaces."""
    if solver != "auto":
        return solver
    probe = MatrixFactorization(solver="auto", early_stopping=True, **MODEL)
    sparse = probe._sparse_solver(X["user"].nunique(), X["item"].nunique())
    return "sparse_adam" if sparse else "adam"


def run_mf(args, series):
    id_space, solver = SERIES[series]
    sizes = SIZES[:2] if args.quick else SIZES
    # warm-up: one-off library initialisation is not charged to the first size
    users, items, ratings = synthetic_ratings(20_000, 200, 100, seed=1)
    warm_up = pd.DataFrame({"user": users, "item": items})
    MatrixFactorization(max_iter=1, solver=_gradient_solver(solver, warm_up), random_state=0,
                        **MODEL).fit(warm_up, ratings)
    release_memory()
    rows = []
    for n in sizes:
        epochs = 1 if n >= 10_000_000 else args.epochs
        users, items, ratings = synthetic_ratings(n, *_id_space(id_space, n))
        X = pd.DataFrame({"user": users, "item": items})
        del users, items
        est = MatrixFactorization(max_iter=epochs, solver=_gradient_solver(solver, X),
                                  random_state=0, **MODEL)
        with PeakMemory() as mem, Timer() as t:
            est.fit(X, ratings)
        sparse = est._sparse_solver(len(est._user_index), len(est._item_index))
        durs = [float(d) for d in est.net_.history[:, "dur"]]
        row = dict(n_interactions=n, n_users=len(est._user_index),
                   n_items=len(est._item_index), epochs=epochs,
                   solver=solver, solver_used="sparse_adam" if sparse else "adam",
                   epoch_s=median(durs), epoch_s_all=durs, fit_s=t.elapsed,
                   fit_cpu_s=t.cpu, peak_mem_mb=mem.result.get("rss_peak_mb"),
                   memory=mem.result,
                   samples_per_s=n / median(durs))
        rows.append(row)
        print(f"  MF ({series}, {row['solver_used']}) n={n:,}: {row['epoch_s']:.2f} s/epoch, "
              f"fit {t.elapsed:.1f} s, "
              f"peak +{row['peak_mem_mb']:.0f} MB", flush=True)
        del est, X, ratings
        release_memory()
    exps = dict(
        epoch_time=loglog_exponent([r["n_interactions"] for r in rows],
                                   [r["epoch_s"] for r in rows]),
        peak_memory=loglog_exponent([r["n_interactions"] for r in rows],
                                    [max(r["peak_mem_mb"], 1e-3) for r in rows]),
    )
    return rows, exps


def run_ease(args):
    n_items_list = EASE_ITEMS[:3] if args.quick else EASE_ITEMS
    rng = np.random.default_rng(0)
    # warm-up: BLAS/LAPACK initialisation is not charged to the first size
    EASE().fit(pd.DataFrame({"user": rng.integers(100, size=2000),
                             "item": rng.integers(100, size=2000)}))
    rows = []
    for n_items in n_items_list:
        n = 20 * n_items
        n_users = max(n_items, 1000)
        X = pd.DataFrame({"user": rng.integers(n_users, size=n),
                          "item": rng.integers(n_items, size=n)})
        best = None
        for _ in range(1 if n_items >= 8000 else 3):
            est = EASE()
            with PeakMemory() as mem, Timer() as t:
                est.fit(X)
            if best is None or t.elapsed < best[0].elapsed:
                best = (t, mem.result, len(est._item_index))
            del est
            release_memory()
        t, mem_result, n_seen = best
        rows.append(dict(n_items=n_seen, n_interactions=n,
                         fit_s=t.elapsed, fit_cpu_s=t.cpu,
                         peak_mem_mb=mem_result.get("rss_peak_mb")))
        print(f"  EASE n_items={n_items}: fit {t.elapsed:.2f} s", flush=True)
    exp = loglog_exponent([r["n_items"] for r in rows], [r["fit_s"] for r in rows])
    return rows, exp


def plot(mf, ease_rows, ease_exp, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ax = axes[0]
    ax2 = ax.twinx()
    ax2.set_yscale("log")
    first = None
    for c, (series, res) in enumerate(mf.items()):
        rows, exps = res["rows"], res["exponents"]
        n = np.array([r["n_interactions"] for r in rows], float)
        t = np.array([r["epoch_s"] for r in rows])
        m = np.array([max(r["peak_mem_mb"], 1e-3) for r in rows])
        label = f"{series} ids" if res["solver"] == "auto" else f"{series} (forced)"
        ax.loglog(n, t, "o-", color=f"C{c}",
                  label=f"time/epoch, {label} (slope {exps['epoch_time']:.2f})")
        if res["solver"] == "auto":  # memory of the default solver only
            ax2.plot(n, m, "s--", color=f"C{c}", alpha=0.6,
                     label=f"peak RSS, {label} (slope {exps['peak_memory']:.2f})")
        if first is None:
            first = (n, t)
    n, t = first
    ax.loglog(n, t[0] * n / n[0], ":", color="grey", label="linear reference")
    ax.set_xlabel("training interactions")
    ax.set_ylabel("seconds per epoch (solid)")
    ax2.set_ylabel("peak memory above start, MB (dashed)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=7)
    ax.set_title("MatrixFactorization (mse, 32 factors, batch 1024), CPU, 1 thread",
                 fontsize=9)
    if ease_rows:
        ax = axes[1]
        k = np.array([r["n_items"] for r in ease_rows], float)
        f = np.array([r["fit_s"] for r in ease_rows])
        last = loglog_exponent(k[-2:], f[-2:])
        ax.loglog(k, f, "o-", color="C5",
                  label=f"EASE fit time (slope {ease_exp:.2f}; {last:.2f} "
                  "between the two largest)")
        ax.loglog(k, f[-1] * (k / k[-1]) ** 3, ":", color="grey",
                  label="cubic reference")
        ax.set_xticks(k)
        ax.set_xticklabels([f"{int(v):,}" for v in k])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("number of items")
        ax.set_ylabel("fit time (s)")
        ax.legend(fontsize=8)
        ax.set_title("EASE fit time vs items, CPU, 1 thread", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs per MF fit below 1e7 interactions (default 2)")
    parser.add_argument("--series", default=",".join(SERIES),
                        help="comma-separated series among " + ", ".join(SERIES)
                        + " (default: all)")
    parser.add_argument("--no-ease", action="store_true", help="skip the EASE part")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw results/scaling.png from results/scaling.json")
    args = parser.parse_args(argv)
    if args.replot:
        with open(RESULTS_DIR / "scaling.json") as f:
            saved = json.load(f)
        plot(saved["mf"], saved["ease"]["rows"], saved["ease"]["exponent"],
             RESULTS_DIR / "scaling.png")
        print(f"Plot redrawn in {RESULTS_DIR / 'scaling.png'}")
        return 0
    set_threads(args.threads)
    env = describe_environment("cpu")
    print("## Scaling" + (" (--quick)" if args.quick else ""))
    print(format_environment(env))
    start = time.perf_counter()
    mf = {}
    for series in args.series.split(","):
        rows, exps = run_mf(args, series)
        id_space, solver = SERIES[series]
        mf[series] = dict(id_space=id_space, solver=solver, rows=rows, exponents=exps)
        print_table(
            f"MatrixFactorization, {id_space}, solver={solver!r}: time per epoch and "
            "peak memory vs interactions",
            rows,
            [("n_interactions", "interactions"), ("n_users", "users"),
             ("n_items", "items"), ("solver_used", "solver used"),
             ("epochs", "epochs timed"), ("epoch_s", "s / epoch"),
             ("samples_per_s", "samples/s"), ("fit_s", "fit wall (s)"),
             ("peak_mem_mb", "peak RSS above start (MB)")],
            floatfmt=".3g",
            note=f"Fitted exponent (log-log least squares): time/epoch ~ n^"
            f"{exps['epoch_time']:.2f}, peak memory ~ n^{exps['peak_memory']:.2f}. "
            "1e8 interactions: GPU only, still to be measured.",
        )
    ease_rows, ease_exp = [], None
    if not args.no_ease:
        ease_rows, ease_exp = run_ease(args)
        print_table("EASE fit time vs number of items", ease_rows,
                    [("n_items", "items"), ("n_interactions", "interactions"),
                     ("fit_s", "fit wall (s)"), ("fit_cpu_s", "fit CPU (s)"),
                     ("peak_mem_mb", "peak RSS above start (MB)")],
                    floatfmt=".3g",
                    note=f"Fitted exponent: fit time ~ n_items^{ease_exp:.2f}.")
    png = RESULTS_DIR / "scaling.png" if args.output is None else None
    if png is not None:
        plot(mf, ease_rows, ease_exp, png)
        print(f"Plot written to {png}")
    wall = time.perf_counter() - start
    path = write_json("scaling", dict(
        environment=env,
        settings=dict(quick=args.quick, threads=args.threads, epochs=args.epochs,
                      model=MODEL),
        mf=mf,
        ease=dict(rows=ease_rows, exponent=ease_exp),
        plot="benchmarks/results/scaling.png" if png is not None else None,
        still_to_be_measured="1e8 interactions (GPU; no GPU available here)",
        wall_time_s=wall,
    ), args.output)
    print(f"\nTotal {wall:.0f} s. Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
