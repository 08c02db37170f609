"""Recommending from a large catalogue: exact ``recommend`` memory and time
over 10^6 items, and the approximate index of ``sklearn_recsys.ann``.

The model: ``MatrixFactorization(n_components=64, loss="mse")`` fitted for
one epoch (``max_iter=1``, ``batch_size=65536``, ``solver="auto"``, i.e.
sparse embedding gradients at this size) on a synthetic user x item matrix of
10^4 users x 10^6 items with about 2 x 10^6 ratings (every item rated twice,
by random users; every user rates at least one item; ratings uniform in
1..5). One epoch leaves the factors close to their random initialisation:
nearly isotropic 64-d vectors, a hard case for graph search (no
low-dimensional structure to exploit), so the ``ef_search`` needed here is a
pessimistic figure for a trained model.

Stages:

1. Fit, then ``sklearn_recsys.save`` the model (raw user ids) to a
   temporary folder; the fit's own memory is not part of the claim below.
2. A fresh Python process loads the artifact and runs the exact
   ``recommend(all users, k=10)`` (seen items excluded). Reported: its wall
   and CPU time, the resident memory sampled during the call above the
   level at its start (``_harness.PeakMemory``), and the process's lifetime
   peak RSS (``VmHWM`` of ``/proc/self/status``: imports, the loaded model
   and the ``recommend`` call), the figure compared with 2 GB.
3. In the same process: ``ApproximateIndex(model, M, ef_construction,
   n_jobs=--build-threads).fit()`` (build time, memory it keeps), then
   ``index.recommend`` with one search thread for the first
   ``--query-users`` users (2000; all with ``--quick``), whose exact
   ``recommend`` is timed again on its own for the speed-up, at increasing
   ``ef_search``, stopping at the first setting whose recall@10 against the
   exact top-10 reaches ``--target-recall``: recall@10, query time,
   speed-up, and the largest difference between the two calls' scores of
   an item both return.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_catalogue.py          # ~17 min on 2 cores
    OMP_NUM_THREADS=1 python benchmarks/bench_catalogue.py --quick  # 10^5 items, ~1 min

Needs hnswlib (``pip install -c constraints.txt "sklearn_recsys[ann]"``);
without it the approximate part is skipped, saying so. Results: tables on
stdout and ``benchmarks/results/catalogue.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _harness import (
    PeakMemory,
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    print_table,
    release_memory,
    set_threads,
    write_json,
)

FULL = dict(n_users=10_000, n_items=1_000_000, ratings_per_item=2)
QUICK = dict(n_users=1_000, n_items=100_000, ratings_per_item=2)
MODEL = dict(n_components=64, loss="mse", max_iter=1, batch_size=65536, random_state=0)
MB = 1024.0**2


def _status_mb(field):
    """``VmHWM`` (peak RSS) or ``VmRSS`` of this process, in MB (Linux).

    ``VmHWM`` belongs to the process's own address space, so unlike
    ``getrusage``'s max RSS it does not inherit the parent's peak across
    fork + exec.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    return None


def _maxrss_mb():
    return _status_mb("VmHWM")


def synthetic_matrix(n_users, n_items, ratings_per_item, seed=0):
    """A users x items CSR: each item rated ``ratings_per_item`` times."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    items = np.concatenate([rng.permutation(n_items) for _ in range(ratings_per_item)])
    users = rng.integers(0, n_users, len(items))
    users[:n_users] = np.arange(n_users)  # every user rates at least one item
    X = sp.csr_array(
        (np.ones(len(items), np.float32), (users, items)), shape=(n_users, n_items)
    )
    X.sum_duplicates()
    X.data[:] = rng.integers(1, 6, X.nnz)
    return X


def fit_and_save(sizes, path, threads):
    """Fit the model and write its artifact; returns fit facts."""
    from sklearn_recsys import MatrixFactorization, save

    X = synthetic_matrix(**sizes)
    with Timer() as t:
        model = MatrixFactorization(**MODEL).fit(X)
    save(model, path, user_ids="raw")
    return dict(n_ratings=int(X.nnz), fit_s=t.elapsed, fit_cpu_s=t.cpu,
                artifact_mb=os.path.getsize(path) / MB)


def _recall(approx, exact):
    return float(np.mean([np.isin(e, a).mean() for a, e in zip(approx, exact)]))


def _max_score_diff(approx, approx_scores, exact, exact_scores):
    """Largest |score difference| of an item returned by both calls."""
    worst = 0.0
    for a, sa, e, se in zip(approx, approx_scores, exact, exact_scores):
        common, ia, ie = np.intersect1d(a, e, return_indices=True)
        if len(common):
            worst = max(worst, float(np.abs(sa[ia] - se[ie]).max()))
    return worst


def measure(args):
    """Stage 2 and 3, in a fresh process: load, exact, approximate."""
    set_threads(args.threads)
    import torch  # noqa: F401  (imported before the first memory reading)

    from sklearn_recsys import load

    out = {"maxrss_after_imports_mb": _maxrss_mb(), "rss_after_imports_mb": _status_mb("VmRSS")}
    with Timer() as t:
        model = load(args.artifact)
    out["load_s"] = t.elapsed
    out["maxrss_after_load_mb"] = _maxrss_mb()
    out["rss_after_load_mb"] = _status_mb("VmRSS")
    users = np.arange(len(model.user_ids_))
    release_memory()
    with PeakMemory() as mem, Timer() as t:
        exact, exact_scores = model.recommend(users, k=args.k)
    out["exact"] = dict(
        n_users=len(users), wall_s=t.elapsed, cpu_s=t.cpu,
        ms_per_user=1e3 * t.elapsed / len(users),
        rss_peak_above_entry_mb=mem.result.get("rss_peak_mb"),
        rss_at_entry_mb=mem.result.get("rss_at_entry_mb"),
        process_maxrss_mb=_maxrss_mb(),
    )
    _dump(args.result, out)
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        out["ann_skipped"] = (
            "hnswlib is not installed: pip install -c constraints.txt "
            '"sklearn_recsys[ann]"'
        )
        _dump(args.result, out)
        return
    from sklearn_recsys.ann import ApproximateIndex

    index = ApproximateIndex(
        model, M=args.M, ef_construction=args.ef_construction,
        ef_search=args.ef_search[0], n_jobs=args.build_threads, random_state=0,
    )
    release_memory()
    with PeakMemory() as mem, Timer() as t:
        index.fit()
    release_memory()
    out["build"] = dict(
        M=args.M, ef_construction=args.ef_construction, threads=args.build_threads,
        wall_s=t.elapsed, cpu_s=t.cpu, rss_peak_above_entry_mb=mem.result.get("rss_peak_mb"),
        rss_kept_mb=(_rss_mb() - mem.result["rss_at_entry_mb"])
        if "rss_at_entry_mb" in mem.result else None,
        n_dims=index.n_dims_,
    )
    _dump(args.result, out)
    index.set_params(n_jobs=1)  # searches on one thread, like the exact call
    # the users queried: the first --query-users, timed exactly again on their own
    n_query = min(args.query_users or len(users), len(users))
    query_users = users[:n_query]
    exact, exact_scores = exact[:n_query], exact_scores[:n_query]
    if n_query < len(users):
        with Timer() as t:
            model.recommend(query_users, k=args.k)
        exact_time = dict(n_users=n_query, wall_s=t.elapsed, cpu_s=t.cpu)
    else:
        exact_time = dict(n_users=n_query, wall_s=out["exact"]["wall_s"],
                          cpu_s=out["exact"]["cpu_s"])
    out["exact_query_users"] = dict(exact_time, ms_per_user=1e3 * exact_time["wall_s"] / n_query)
    out["queries"] = []
    for ef in args.ef_search:
        index.set_params(ef_search=ef)
        with Timer() as t:
            approx, approx_scores = index.recommend(query_users, k=args.k)
        recall = _recall(approx, exact)
        score_err = _max_score_diff(approx, approx_scores, exact, exact_scores)
        out["queries"].append(dict(
            ef_search=ef, n_users=n_query, wall_s=t.elapsed, cpu_s=t.cpu,
            ms_per_user=1e3 * t.elapsed / n_query,
            speedup=exact_time["wall_s"] / t.elapsed,
            speedup_cpu=exact_time["cpu_s"] / t.cpu, recall_at_10=recall,
            max_score_diff_common_items=score_err,
        ))
        out["process_maxrss_end_mb"] = _maxrss_mb()
        _dump(args.result, out)
        print(f"  ef_search={ef}: recall@{args.k}={recall:.4f}, "
              f"{1e3 * t.elapsed / n_query:.3f} ms/user", flush=True)
        if recall >= args.target_recall:
            break


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def _dump(path, payload):
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--M", type=int, default=16, help="HNSW links per node (default 16)")
    parser.add_argument("--ef-construction", type=int, default=100,
                        help="HNSW build candidate list (default 100)")
    parser.add_argument("--ef-search", default="200,400,800,1600,3200,4800,6400",
                        help="ef_search values tried in order, stopping at the first "
                        "that reaches --target-recall (default 200,400,...,6400)")
    parser.add_argument("--query-users", type=int, default=None,
                        help="users queried through the index, and timed exactly again "
                        "for the speed-up (default: 2000, all users with --quick)")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--build-threads", type=int, default=2,
                        help="threads building the index (default 2; searches use 1)")
    parser.add_argument("--stage", choices=["measure"], help=argparse.SUPPRESS)
    parser.add_argument("--artifact", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.ef_search = [int(v) for v in str(args.ef_search).split(",")]
    if args.query_users is None and args.stage is None:
        args.query_users = 0 if args.quick else 2000  # 0: all users
    if args.stage == "measure":
        measure(args)
        return 0

    set_threads(args.threads)
    env = describe_environment("cpu")
    sizes = QUICK if args.quick else FULL
    print("## Large catalogue: exact recommend and approximate index"
          + (" (--quick)" if args.quick else ""))
    print(format_environment(env))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "model.safetensors"
        result = Path(tmp) / "measure.json"
        print(f"\nFitting on {sizes['n_users']} users x {sizes['n_items']} items...",
              flush=True)
        fit = fit_and_save(sizes, artifact, args.threads)
        release_memory()
        print(f"  fit {fit['fit_s']:.1f} s; measuring in a fresh process...", flush=True)
        cmd = [sys.executable, __file__, "--stage", "measure", "--artifact", str(artifact),
               "--result", str(result), "--threads", str(args.threads), "--k", str(args.k),
               "--M", str(args.M), "--ef-construction", str(args.ef_construction),
               "--ef-search", ",".join(map(str, args.ef_search)),
               "--target-recall", str(args.target_recall),
               "--build-threads", str(args.build_threads),
               "--query-users", str(args.query_users)]
        proc = subprocess.run(cmd, check=False)
        measured = json.loads(result.read_text()) if result.exists() else {}
        if proc.returncode:
            print(f"measurement process failed (exit {proc.returncode})", file=sys.stderr)
    exact = measured.get("exact", {})
    print_table(
        f"Exact recommend(all users, k={args.k}): {sizes['n_users']} users x "
        f"{sizes['n_items']} items, MF n_components=64, {args.threads} torch thread(s)",
        [{**sizes, **exact}],
        [("n_users", "users"), ("n_items", "items"), ("wall_s", "wall (s)"),
         ("cpu_s", "CPU (s)"), ("ms_per_user", "ms / user"),
         ("rss_peak_above_entry_mb", "RSS peak above entry (MB)"),
         ("process_maxrss_mb", "process peak RSS (MB)")],
        floatfmt=".4g",
        note=(f"Process peak RSS (VmHWM of the fresh process): imports "
              f"({measured.get('rss_after_imports_mb', float('nan')):.0f} MB), then the "
              f"loaded artifact ({fit['artifact_mb']:.0f} MB file; "
              f"{measured.get('rss_after_load_mb', float('nan')):.0f} MB resident after "
              f"loading), then recommend; "
              f"{'under' if exact.get('process_maxrss_mb', 1e9) < 2048 else 'OVER'}"
              " 2 GB. Fit (not measured here): "
              f"{fit['fit_s']:.1f} s wall, {fit['n_ratings']} ratings, 1 epoch."),
    )
    build, queries = measured.get("build"), measured.get("queries", [])
    if build:
        print_table(
            f"ApproximateIndex build (hnswlib, M={args.M}, ef_construction="
            f"{args.ef_construction}, {args.build_threads} thread(s))",
            [build],
            [("wall_s", "wall (s)"), ("cpu_s", "CPU (s)"), ("n_dims", "dims"),
             ("rss_peak_above_entry_mb", "RSS peak above entry (MB)"),
             ("rss_kept_mb", "RSS kept (MB)")],
            floatfmt=".4g",
        )
        eq = measured.get("exact_query_users", {})
        print_table(
            f"ApproximateIndex.recommend({eq.get('n_users')} users, k={args.k}), 1 search "
            f"thread, against the exact recommend of the same users "
            f"({eq.get('wall_s', float('nan')):.3g} s, "
            f"{eq.get('ms_per_user', float('nan')):.3g} ms / user)",
            queries,
            [("ef_search", "ef_search"), ("recall_at_10", f"recall@{args.k}"),
             ("wall_s", "wall (s)"), ("ms_per_user", "ms / user"),
             ("speedup", "speed-up (wall)"), ("speedup_cpu", "speed-up (CPU)")],
            floatfmt=".4g",
            note=f"Sweep stops at the first ef_search with recall >= {args.target_recall}. "
            "hnswlib searches with max(ef_search, items fetched): a user fetches k plus "
            "its number of seen items, rounded up to a power of two. "
            f"Process peak RSS at the end: {measured.get('process_maxrss_end_mb', 0):.0f} MB.",
        )
    elif "ann_skipped" in measured:
        print(f"\nSKIPPED approximate index: {measured['ann_skipped']}")
    wall = time.perf_counter() - start
    path = write_json("catalogue", dict(
        environment=env,
        settings=dict(quick=args.quick, threads=args.threads, k=args.k, model=MODEL,
                      data=sizes, M=args.M, ef_construction=args.ef_construction,
                      ef_search_tried=args.ef_search, target_recall=args.target_recall,
                      build_threads=args.build_threads, query_users=args.query_users),
        fit=fit,
        **measured,
        wall_time_s=wall,
    ), path=args.output)
    print(f"\nResults written to {path} ({wall:.0f} s)")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
