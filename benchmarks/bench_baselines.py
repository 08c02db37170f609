"""Benchmark of the closed-form baselines: Popularity, ItemKNN and EASE.

1. MovieLens-100K, top-N: every rating is an implicit positive; each user's
   interactions are split 80/20 at random
   (``UserHoldout(test_size=0.2, random_state=0)``); every item not seen in
   training is ranked; NDCG@10, Recall@10 and HR@10 with
   :func:`sklearn_recsys.metrics.make_ranking_scorer`; fit time (median of
   ``--repeats`` fits). EASE is run with its default ``l2_reg`` and with the
   ``l2_reg`` chosen by ``GridSearchCV`` on the training interactions only
   (inner ``UserHoldout(test_size=0.2, random_state=1)``).
2. EASE on a synthetic catalogue (default 20,000 users x 20,000 items, 1%
   density, binary): fit time and peak memory, measured in a child process
   so that its peak resident memory is the fit's own.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py
    python benchmarks/bench_baselines.py --device cuda --synthetic-items 40000

Results are printed as a markdown table and written to
``benchmarks/results/baselines.json``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
import torch
from _harness import command_line

REPO = Path(__file__).resolve().parents[1]
K = 10
EASE_GRID = [100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0]


def _hardware(device):
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "device": device,
        "cuda_device": (
            torch.cuda.get_device_name(device) if device.startswith("cuda") else None
        ),
    }


def _peak_rss_bytes():
    """Peak resident memory of this process (VmHWM on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def movielens(args):
    from sklearn.model_selection import GridSearchCV

    from sklearn_recsys import EASE, ItemKNN, Popularity
    from sklearn_recsys.datasets import fetch_movielens
    from sklearn_recsys.metrics import make_ranking_scorer
    from sklearn_recsys.model_selection import UserHoldout

    bunch = fetch_movielens("100k", data_home=args.data_home, download_if_missing=False)
    X = bunch.interactions[["user", "item", "timestamp"]]  # ratings -> positives
    train_idx, test_idx = next(UserHoldout(test_size=0.2, random_state=0).split(X))
    train, test = X.iloc[train_idx], X.iloc[test_idx]
    scorers = {
        f"{m}@{K}": make_ranking_scorer(m, k=K) for m in ("ndcg", "recall", "hit_rate")
    }

    search = GridSearchCV(
        EASE(device=args.device),
        {"l2_reg": EASE_GRID},
        scoring=scorers[f"ndcg@{K}"],
        cv=UserHoldout(test_size=0.2, random_state=1),
    )
    t0 = time.perf_counter()
    search.fit(train)
    search_time = time.perf_counter() - t0
    tuned = search.best_params_["l2_reg"]

    models = [
        ("Popularity", Popularity(device=args.device), "default"),
        ("ItemKNN", ItemKNN(device=args.device), "default"),
        ("EASE", EASE(device=args.device), "default"),
        (
            "EASE (tuned)",
            EASE(l2_reg=tuned, device=args.device),
            f"l2_reg={tuned:g} by GridSearchCV on the training set only",
        ),
    ]
    rows = []
    for name, est, how in models:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            est.fit(train)
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        metrics = {key: scorer(est, test) for key, scorer in scorers.items()}
        score_time = time.perf_counter() - t0
        rows.append(
            {
                "model": name,
                "params": {
                    k: v for k, v in est.get_params().items()
                    if k in ("l2_reg", "n_neighbors", "shrinkage", "implicit", "dtype")
                },
                "hyperparameters": how,
                "fit_time_s": float(np.median(times)),
                "evaluation_time_s": score_time,
                **metrics,
            }
        )
    return {
        "dataset": "MovieLens-100K",
        "protocol": (
            "all ratings as implicit positives; UserHoldout(test_size=0.2, "
            "random_state=0) per-user 80/20; full ranking of the items not seen "
            "in training; make_ranking_scorer metrics averaged over test users"
        ),
        "n_train": len(train),
        "n_test": len(test),
        "ease_grid": EASE_GRID,
        "ease_grid_mean_validation_ndcg": [
            float(s) for s in search.cv_results_["mean_test_score"]
        ],
        "ease_grid_search_time_s": search_time,
        "results": rows,
    }


def synthetic_child(args):
    """Fit EASE on a random catalogue; print a JSON line (run in a child)."""
    from sklearn_recsys import EASE

    X = sp.random(
        args.synthetic_users,
        args.synthetic_items,
        density=args.synthetic_density,
        format="csr",
        random_state=0,
        dtype=np.float32,
    )
    X.data[:] = 1.0
    rss_before = _peak_rss_bytes()
    reset = _reset_peak_rss()
    if reset:
        rss_before = _peak_rss_bytes()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(args.device)
    est = EASE(device=args.device)
    t0 = time.perf_counter()
    est.fit(X)
    _sync(args.device)
    fit_time = time.perf_counter() - t0
    peak = _peak_rss_bytes()
    out = {
        "n_users": args.synthetic_users,
        "n_items": args.synthetic_items,
        "density": args.synthetic_density,
        "nnz": int(X.nnz),
        "params": {"l2_reg": est.l2_reg, "dtype": est.dtype},
        "fit_time_s": fit_time,
        "peak_rss_gb": peak / 1e9,
        "rss_before_fit_gb": rss_before / 1e9,
        "fit_peak_increase_gb": (peak - rss_before) / 1e9,
        "peak_rss_measured_from_fit_start": reset,
        "n_items_squared_float32_gb": args.synthetic_items**2 * 4 / 1e9,
    }
    if args.device.startswith("cuda"):
        peak_gpu = torch.cuda.max_memory_allocated(args.device)
        out["peak_gpu_allocated_gb"] = peak_gpu / 1e9
    print(json.dumps(out))


def synthetic(args):
    cmd = [
        sys.executable, __file__, "--synthetic-child",
        "--device", args.device,
        "--synthetic-users", str(args.synthetic_users),
        "--synthetic-items", str(args.synthetic_items),
        "--synthetic-density", str(args.synthetic_density),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"The synthetic EASE fit failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(report):
    lines = [
        f"| model | NDCG@{K} | Recall@{K} | HR@{K} | fit time (s) | hyper-parameters |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["movielens"]["results"]:
        lines.append(
            f"| {r['model']} | {r[f'ndcg@{K}']:.4f} | {r[f'recall@{K}']:.4f} | "
            f"{r[f'hit_rate@{K}']:.4f} | {r['fit_time_s']:.2f} | "
            f"{r['hyperparameters']}: {r['params']} |"
        )
    s = report.get("synthetic_ease")
    if s:
        lines += [
            "",
            "| EASE, synthetic catalogue | fit time (s) | peak RSS (GB) | "
            "increase during fit (GB) | n_items^2 float32 (GB) |",
            "|---|---|---|---|---|",
            f"| {s['n_users']:,} users x {s['n_items']:,} items, density "
            f"{s['density']:g} | {s['fit_time_s']:.1f} | {s['peak_rss_gb']:.2f} | "
            f"{s['fit_peak_increase_gb']:.2f} | "
            f"{s['n_items_squared_float32_gb']:.2f} |",
        ]
    h = report["hardware"]
    lines += [
        "",
        f"Hardware: {h['cpu_count']} CPUs ({h['processor']}), torch {h['torch']} "
        f"with {h['torch_threads']} thread(s), device {h['device']}"
        + (f" ({h['cuda_device']})" if h["cuda_device"] else "")
        + ".",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home", default=str(REPO / ".." / "shared" / "data"),
        help="folder holding ml-100k/ (default: ../shared/data from the repo root)",
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, ...")
    parser.add_argument("--repeats", type=int, default=3, help="fits timed per model")
    parser.add_argument("--synthetic-users", type=int, default=20_000)
    parser.add_argument("--synthetic-items", type=int, default=20_000)
    parser.add_argument("--synthetic-density", type=float, default=0.01)
    parser.add_argument(
        "--skip-synthetic", action="store_true", help="only run MovieLens-100K"
    )
    parser.add_argument(
        "--output", default=str(REPO / "benchmarks" / "results" / "baselines.json")
    )
    parser.add_argument(
        "--synthetic-child", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.synthetic_child:
        synthetic_child(args)
        return
    from sklearn_recsys._training import resolve_device

    args.device = resolve_device(args.device)
    report = {
        "benchmark": "bench_baselines",
        "command": command_line(),
        "hardware": _hardware(args.device),
        "movielens": movielens(args),
    }
    if not args.skip_synthetic:
        report["synthetic_ease"] = synthetic(args)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
