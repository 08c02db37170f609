"""Model artifacts and int8 on MovieLens-100K: file sizes, quality, latency.

Every estimator runs with the package defaults (``random_state=0``) on
MovieLens-100K, read from ``--data-home`` and never downloaded:

* pair models and baselines -- every rating is an implicit positive;
  ``UserHoldout(test_size=0.2, random_state=0)`` (as ``bench_baselines.py``
  and ``bench_peers.py``); ``MatrixFactorization()`` (``loss="mse"``) is fitted
  on the ratings of the same training rows;
* sequence models -- leave-last-out by time (``LeaveLastOut(n_test=1)``, as
  ``bench_sequential.py`` but without a validation item: the package
  defaults train a fixed number of epochs); ``recommend`` encodes each
  user's training history;
* quality -- NDCG@10 from ``make_ranking_scorer("ndcg", k=10)`` on the test
  rows (training items excluded, every other item ranked).

``CNNRecommender()`` gets no ``item_content`` (the default; no images or
texts are passed here), so it is the id-only variant, a biased MF trained by
the CNN model's code; the title-text hybrid is measured in ``bench_cnn.py``.

Sections:

1. **Artifact sizes** for every estimator: parameter bytes (the network's
   ``state_dict`` tensors, or the baseline's fitted arrays: EASE ``coef_``,
   ItemKNN ``similarity_`` data + indices + indptr, Popularity
   ``item_popularity_``), id-map bytes (the in-memory user and item id
   arrays), the ``sklearn_recsys.save`` file size and its ratio to
   parameters + ids, the stored breakdown from
   ``sklearn_recsys._artifact.read_metadata(path)["sizes"]`` (``other`` is
   mostly the seen-item matrix and, for sequence models, the training
   histories), and ``len(pickle.dumps(model))`` for comparison (pickle keeps
   the skorch net with its optimizer state and history). Asserts that
   ``load(save(m)).recommend(users, k=10)`` equals ``m.recommend(users,
   k=10)`` exactly (ids and scores) for ``--batch-users`` known users.
2. **int8** for the neural models: NDCG@10 in float32 (the loaded float
   artifact), with int8 storage (``save(quantize="int8")`` then ``load``:
   weight matrices of >= 256 entries stored per-row int8, dequantized to
   float32) and with int8 storage + int8 linear layers
   (``load(..., quantize="int8")``: PyTorch dynamic quantization of the
   ``nn.Linear`` layers, CPU); relative change in %; file sizes; and the
   latency of ``recommend(users, k=10)`` for a batch of ``--batch-users``
   known users, median of ``--repeats`` repetitions after ``--warmup``
   warm-up calls, float32 and int8-compute models interleaved. A model
   without ``nn.Linear`` layers (MF's dot product, the id-only CNN) computes
   exactly as in float32 when loaded with ``quantize="int8"``; the table says
   so.

One torch thread (``--threads``; run with ``OMP_NUM_THREADS=1``).
``--quick`` runs a smoke test on synthetic data
(``sklearn_recsys.datasets.make_interactions``) with 2 epochs per model; its
numbers mean nothing.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_deploy.py           # ~5.5 min
    OMP_NUM_THREADS=1 python benchmarks/bench_deploy.py --quick   # ~20 s

(316 s wall, about 3 min of CPU, on a shared 2-CPU Intel Xeon VM with one
torch thread, load average about 4 at start; the nine fits take most of it.)

Results: markdown tables on stdout and ``benchmarks/results/deploy.json``
(environment, protocol, one row per model in ``"artifacts"`` and per neural
model in ``"int8"``).
"""

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _harness import (
    Timer,
    add_common_arguments,
    describe_environment,
    format_environment,
    load_movielens_100k,
    median,
    print_table,
    set_threads,
    write_json,
)

import sklearn_recsys
from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    CNNRecommender,
    ItemKNN,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys._artifact import read_metadata
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import LeaveLastOut, UserHoldout

K = 10
NDCG = make_ranking_scorer("ndcg", k=K)

# name, factory (package defaults), split ("ratings", "pairs", "sequences"),
# neural (int8 section)
MODELS = [
    ("MatrixFactorization() [mse, ratings]",
     lambda: MatrixFactorization(random_state=0), "ratings", False),
    ("MatrixFactorization(loss='softmax')",
     lambda: MatrixFactorization(loss="softmax", random_state=0), "pairs", True),
    ("MatrixFactorization(architecture='neumf', loss='bce')",
     lambda: MatrixFactorization(architecture="neumf", loss="bce", random_state=0),
     "pairs", True),
    ("CNNRecommender() [id-only, no content]",
     lambda: CNNRecommender(random_state=0), "pairs", True),
    ("LSTMRecommender()", lambda: LSTMRecommender(random_state=0), "sequences", True),
    ("AttentionRecommender()",
     lambda: AttentionRecommender(random_state=0), "sequences", True),
    ("EASE()", lambda: EASE(), "pairs", False),
    ("ItemKNN()", lambda: ItemKNN(), "pairs", False),
    ("Popularity()", lambda: Popularity(), "pairs", False),
]


# -- data ------------------------------------------------------------------------


def load_data(args):
    """``(interactions with user, item, rating, timestamp; data set name)``."""
    if args.quick:
        from sklearn_recsys.datasets import make_interactions

        data = make_interactions(
            n_users=300, n_items=200, density=0.1, feedback="explicit",
            sequential=True, random_state=0,
        )
        return data.interactions, "synthetic (make_interactions, 300 x 200, --quick)"
    data = load_movielens_100k(args.data_home)
    if data is None:
        sys.exit(
            f"MovieLens-100K not found under {Path(args.data_home) / 'ml-100k'}; "
            "pass --data-home pointing to the folder that contains ml-100k/ "
            "(it is never downloaded), or use --quick for synthetic data."
        )
    return data.interactions, "MovieLens-100K"


def splits(X):
    """The training and test tables of each protocol."""
    pairs = X[["user", "item", "rating"]]
    train, test = next(UserHoldout(test_size=0.2, random_state=0).split(pairs))
    seqs = X[["user", "item", "timestamp"]]
    s_train, s_test = next(LeaveLastOut(n_test=1).split(seqs))
    return {
        "pairs": (pairs.iloc[train][["user", "item"]], pairs.iloc[test][["user", "item"]]),
        "ratings": (pairs.iloc[train], pairs.iloc[test]),
        "sequences": (seqs.iloc[s_train], seqs.iloc[s_test]),
    }


def fit(est, kind, train, max_iter):
    if max_iter is not None and "max_iter" in est.get_params():
        est.set_params(max_iter=max_iter)
    if kind == "ratings":
        return est.fit(train[["user", "item"]], train["rating"])
    return est.fit(train)


# -- sizes -------------------------------------------------------------------------


def parameter_bytes(est):
    """Bytes of the network's state_dict, or of the baseline's fitted arrays."""
    if isinstance(est, EASE):
        return int(np.asarray(est.coef_).nbytes)
    if isinstance(est, ItemKNN):
        s = est.similarity_
        return int(s.data.nbytes + s.indices.nbytes + s.indptr.nbytes)
    if isinstance(est, Popularity):
        return int(np.asarray(est.item_popularity_).nbytes)
    return int(sum(t.numel() * t.element_size() for t in est._module().state_dict().values()))


def id_bytes(est):
    return int(np.asarray(est._user_index.ids).nbytes + np.asarray(est._item_index.ids).nbytes)


def n_linear(est):
    return sum(isinstance(m, torch.nn.Linear) for m in est._module().modules())


def file_size(path):
    return os.path.getsize(path)


def assert_same_recommend(a, b, users):
    ids_a, s_a = a.recommend(users, k=K)
    ids_b, s_b = b.recommend(users, k=K)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(s_a, s_b)


# -- latency -----------------------------------------------------------------------


def latencies(models, users, warmup, repeats):
    """Median seconds of ``recommend(users, k)`` per model, interleaved."""
    for m in models:
        for _ in range(warmup):
            m.recommend(users, k=K)
    times = [[] for _ in models]
    for _ in range(repeats):
        for i, m in enumerate(models):
            with Timer() as t:
                m.recommend(users, k=K)
            times[i].append(t.elapsed)
    return [median(t) for t in times], times


# -- main ----------------------------------------------------------------------------


def kib(n):
    return f"{n / 1024:,.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--batch-users", type=int, default=256,
                        help="known users per recommend call (latency, equality check)")
    parser.add_argument("--repeats", type=int, default=20, help="timed recommend calls")
    parser.add_argument("--warmup", type=int, default=3, help="untimed recommend calls")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    env = describe_environment("cpu")
    start = time.perf_counter()
    max_iter = 2 if args.quick else None

    X, dataset = load_data(args)
    data = splits(X)
    print(f"{dataset}: {X['user'].nunique()} users, {X['item'].nunique()} items, "
          f"{len(X)} interactions", flush=True)

    artifacts, int8_rows = [], []
    tmp = Path(tempfile.mkdtemp(prefix="bench_deploy_"))
    rng = np.random.default_rng(0)
    for idx, (name, factory, kind, neural) in enumerate(MODELS):
        train, test = data[kind]
        print(f"fitting {name} ...", flush=True)
        est = factory()
        with Timer() as t_fit:
            fit(est, kind, train, max_iter)
        known = np.asarray(est._user_index.ids)
        users = rng.choice(known, size=min(args.batch_users, len(known)), replace=False)

        path = tmp / f"model{idx}.safetensors"
        sklearn_recsys.save(est, path)
        loaded = sklearn_recsys.load(path)
        assert_same_recommend(est, loaded, users)
        sizes = read_metadata(path)["sizes"]
        params, ids, size = parameter_bytes(est), id_bytes(est), file_size(path)
        pickled = len(pickle.dumps(est))
        artifacts.append({
            "model": name, "split": kind, "fit_time_s": t_fit.elapsed,
            "parameter_bytes": params, "id_bytes": ids, "file_bytes": size,
            "file_over_params_ids": size / (params + ids),
            "stored_parameter_bytes": sizes["parameter_bytes"],
            "stored_id_bytes": sizes["id_bytes"],
            "stored_other_bytes": sizes["other_bytes"],
            "pickle_bytes": pickled, "pickle_over_file": pickled / size,
            "load_save_recommend_identical": True,
        })
        if not neural:
            continue

        path8 = tmp / f"model{idx}.int8.safetensors"
        sklearn_recsys.save(est, path8, quantize="int8")
        storage8 = sklearn_recsys.load(path8)
        compute8 = sklearn_recsys.load(path8, quantize="int8")
        n_lin = n_linear(loaded)
        if n_lin == 0:  # quantize="int8" at load leaves such a network unchanged
            assert_same_recommend(storage8, compute8, users)
        ndcg32 = NDCG(loaded, test)
        ndcg_s8 = NDCG(storage8, test)
        ndcg_c8 = NDCG(compute8, test)
        (lat32, lat8), raw = latencies([loaded, compute8], users, args.warmup, args.repeats)
        int8_rows.append({
            "model": name, "n_linear_layers": n_lin,
            "ndcg@10_float32": ndcg32, "ndcg@10_int8_storage": ndcg_s8,
            "ndcg@10_int8_storage_compute": ndcg_c8,
            "rel_change_int8_storage_pct": 100 * (ndcg_s8 - ndcg32) / ndcg32,
            "rel_change_int8_storage_compute_pct": 100 * (ndcg_c8 - ndcg32) / ndcg32,
            "file_bytes_float32": size, "file_bytes_int8": file_size(path8),
            "file_ratio_int8_over_float32": file_size(path8) / size,
            "stored_parameter_bytes_int8": read_metadata(path8)["sizes"]["parameter_bytes"],
            "latency_ms_float32": 1e3 * lat32, "latency_ms_int8_compute": 1e3 * lat8,
            "speedup_int8_compute": lat32 / lat8,
            "latency_runs_s": {"float32": raw[0], "int8_compute": raw[1]},
            "int8_compute_changes_nothing": n_lin == 0,
        })
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    total = time.perf_counter() - start

    n_batch = min(args.batch_users, X["user"].nunique())
    print(f"\n{format_environment(env)}\ntotal {total:.0f} s")
    print_table(
        f"Artifact sizes ({dataset}, package defaults)",
        [{**r, "params_kib": kib(r["parameter_bytes"]), "ids_kib": kib(r["id_bytes"]),
          "file_kib": kib(r["file_bytes"]),
          "ratio": f"{r['file_over_params_ids']:.2f}",
          "stored": f"{kib(r['stored_parameter_bytes'])} / {kib(r['stored_id_bytes'])} / "
                    f"{kib(r['stored_other_bytes'])}",
          "pickle_kib": kib(r["pickle_bytes"]),
          "pickle_ratio": f"{r['pickle_over_file']:.2f}", "same": "yes"}
         for r in artifacts],
        [("model", "model"), ("params_kib", "parameters (KiB)"), ("ids_kib", "id maps (KiB)"),
         ("file_kib", "artifact file (KiB)"), ("ratio", "file / (params + ids)"),
         ("stored", "stored params / ids / other (KiB)"), ("pickle_kib", "pickle (KiB)"),
         ("pickle_ratio", "pickle / file"), ("same", "load(save(m)).recommend identical")],
        note="Parameters: network state_dict tensors (float32), or EASE coef_, ItemKNN "
        "similarity_ (data + indices + indptr), Popularity item_popularity_. Id maps: "
        "in-memory user and item id arrays. Stored: the artifact's own accounting "
        "(ids and integer arrays in the smallest integer type; 'other' is the seen-item "
        "matrix, and for sequence models the training histories; the artifact counts "
        "a baseline's fitted arrays as 'other', and stores their integer index arrays "
        "in the smallest integer type, hence ItemKNN's ratio below 1). CNNRecommender has "
        "no item content here (id-only). Recommend equality asserted on "
        f"{n_batch} known users, ids and scores bit for bit.",
    )
    print_table(
        f"int8 ({dataset}): NDCG@10 on the test split, file size, "
        f"recommend latency ({n_batch} users, k=10, median of {args.repeats}, 1 call "
        "= all users)",
        [{"model": r["model"], "lin": r["n_linear_layers"],
          "f32": f"{r['ndcg@10_float32']:.4f}",
          "s8": f"{r['ndcg@10_int8_storage']:.4f} ({r['rel_change_int8_storage_pct']:+.2f}%)",
          "c8": f"{r['ndcg@10_int8_storage_compute']:.4f} "
                f"({r['rel_change_int8_storage_compute_pct']:+.2f}%)"
                + (" = storage (no nn.Linear)" if r["int8_compute_changes_nothing"] else ""),
          "files": f"{kib(r['file_bytes_float32'])} -> {kib(r['file_bytes_int8'])} "
                   f"({r['file_ratio_int8_over_float32']:.2f}x)",
          "l32": f"{r['latency_ms_float32']:.2f}",
          "l8": f"{r['latency_ms_int8_compute']:.2f}",
          "sp": f"{r['speedup_int8_compute']:.2f}"
                + (" (no nn.Linear: nothing changes)" if r["int8_compute_changes_nothing"]
                   else "")}
         for r in int8_rows],
        [("model", "model"), ("lin", "nn.Linear layers"), ("f32", "NDCG@10 float32"),
         ("s8", "int8 storage"), ("c8", "int8 storage + int8 linear"),
         ("files", "file KiB float32 -> int8"), ("l32", "latency float32 (ms)"),
         ("l8", "latency int8 compute (ms)"), ("sp", "float32 / int8 time")],
        note="int8 storage: save(quantize='int8') then load (weights dequantized to "
        "float32; scoring is float32). int8 linear: load(path, quantize='int8'), "
        "PyTorch dynamic int8 quantization of nn.Linear layers; a model without "
        "nn.Linear layers scores exactly as with int8 storage alone, and its latency "
        "difference is noise. Relative changes are against float32.",
    )

    payload = {
        "environment": env,
        "settings": {
            "quick": args.quick, "threads": args.threads, "batch_users": args.batch_users,
            "repeats": args.repeats, "warmup": args.warmup, "max_iter_override": max_iter,
        },
        "dataset": {"name": dataset, "n_users": int(X["user"].nunique()),
                    "n_items": int(X["item"].nunique()), "n_interactions": len(X)},
        "protocol": {
            "pairs": "all ratings as implicit positives; UserHoldout(test_size=0.2, "
                     "random_state=0); NDCG@10 from make_ranking_scorer('ndcg', k=10), "
                     "training items excluded, all other items ranked",
            "ratings": "MatrixFactorization() fitted on the ratings of the same "
                       "UserHoldout training rows (sizes only)",
            "sequences": "LeaveLastOut(n_test=1) by timestamp; recommend encodes each "
                         "user's training history; same scorer",
            "models": "package defaults, random_state=0; CNNRecommender without "
                      "item_content (id-only)",
            "latency": "recommend(users, k=10) on one batch of known users, float32 "
                       "(loaded float artifact) and int8 compute (int8 artifact loaded "
                       "with quantize='int8') interleaved, median after warm-up",
        },
        "artifacts": artifacts,
        "int8": int8_rows,
        "total_time_s": total,
    }
    out = write_json("deploy", payload, path=args.output)
    print(f"\nwrote {os.path.relpath(out)}")
    return payload


if __name__ == "__main__":
    main()
