"""Exported scoring graphs (``sklearn_recsys.export``) of every neural model.

Each neural model is fitted briefly with its default hyperparameters
(``--epochs``, 1 by default: the export's cost does not depend on how well
a model is trained) on MovieLens-100K (from ``../shared/data``; synthetic
``make_interactions`` data of the same size when it is missing), then:

* ``to_torch_export`` and ``to_onnx`` wall time (the ONNX time includes its
  own ``torch.export``), and the ONNX file size;
* scoring latency of a batch of ``--batch`` users (every item scored, the
  graph's output): the ``torch.export`` program (``program.module()``) and
  onnxruntime (CPU provider, ``--threads`` intra-op threads, as torch),
  median over ``--reps`` calls after ``--warmup`` calls; the batch is the
  graph's input prepared once (``prepare_inputs``), so preparation is not
  timed. For reference, the estimator's own ``recommend(users, k=10)`` for
  the same users (id mapping, history encoding, scoring, seen-item
  exclusion and top-k included);
* the largest absolute difference between the onnxruntime and torch scores.

Models: MatrixFactorization (``"dot"``, mse on the ratings; ``"neumf"``,
bce), CNNRecommender id-only (ML-100K has no item images) and with 8x8
synthetic item images (``make_interactions(item_features="image")``, 943 x
1682 items, 5% density), LSTMRecommender and AttentionRecommender.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_export.py          # ~2 minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_export.py --quick  # fewer reps

Results: a markdown table on stdout and ``benchmarks/results/export.json``.
"""

import argparse
import os
import sys
import tempfile

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
    release_memory,
    set_threads,
    write_json,
)
from sklearn_recsys import (
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    LSTMRecommender,
    MatrixFactorization,
)
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.export import prepare_inputs, to_onnx, to_torch_export

N_USERS, N_ITEMS = 943, 1682  # MovieLens-100K's sizes


def datasets(data_home):
    """``(name, X, ratings)`` of the interactions, and the image data set."""
    ml = load_movielens_100k(data_home)
    if ml is not None:
        inter = ml.interactions
        main = ("MovieLens-100K", inter[["user", "item", "timestamp"]],
                inter["rating"].to_numpy(dtype=np.float64))
    else:
        print("Using synthetic data of MovieLens-100K's size instead.", file=sys.stderr)
        syn = make_interactions(n_users=N_USERS, n_items=N_ITEMS, density=0.063,
                                feedback="explicit", sequential=True, random_state=0)
        inter = syn.interactions
        main = ("synthetic (943 x 1682, 6.3%)", inter[["user", "item", "timestamp"]],
                inter["rating"].to_numpy(dtype=np.float64))
    img = make_interactions(n_users=N_USERS, n_items=N_ITEMS, density=0.05,
                            item_features="image", image_shape=(8, 8), random_state=0)
    images = ("synthetic with 8x8 images (943 x 1682, 5%)",
              img.interactions[["user", "item"]],
              ItemContent(np.arange(len(img.item_images)), images=img.item_images))
    return main, images


def models(main, images, epochs):
    """``(name, data name, estimator, X, y)`` of every neural model."""
    data_name, X, ratings = main
    img_name, X_img, content = images
    flat = X[["user", "item"]]
    kw = dict(max_iter=epochs, random_state=0)
    return [
        ("MatrixFactorization('dot', loss='mse')", data_name,
         MatrixFactorization(**kw), flat, ratings),
        ("MatrixFactorization('neumf', loss='bce')", data_name,
         MatrixFactorization(architecture="neumf", loss="bce", **kw), flat, None),
        ("CNNRecommender (ids only)", data_name, CNNRecommender(**kw), flat, None),
        ("CNNRecommender (8x8 images + ids)", img_name,
         CNNRecommender(item_content=content, **kw), X_img, None),
        ("LSTMRecommender", data_name, LSTMRecommender(**kw), X, None),
        ("AttentionRecommender", data_name, AttentionRecommender(**kw), X, None),
    ]


def latency_ms(call, warmup, reps):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(reps):
        with Timer() as t:
            call()
        times.append(t.elapsed * 1e3)
    return median(times)


def measure(est, folder, session_options, batch, warmup, reps):
    """Export times, ONNX size and scoring latencies of a fitted estimator."""
    import onnxruntime as ort

    with Timer() as export_t:
        program = to_torch_export(est)
    path = os.path.join(folder, "model.onnx")
    with Timer() as onnx_t:
        to_onnx(est, path)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    session = ort.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])
    users = est.user_ids_[:batch]
    feeds = prepare_inputs(est, users)
    ((key, value),) = feeds.items()
    tensor = torch.as_tensor(value)
    module = program.module()

    def torch_call():
        with torch.no_grad():
            return module(tensor)

    def onnx_call():
        return session.run(["scores"], feeds)[0]

    diff = float(np.abs(onnx_call() - torch_call().numpy()).max())
    result = dict(
        input=key, input_shape=list(value.shape), torch_export_s=export_t.elapsed,
        to_onnx_s=onnx_t.elapsed, onnx_mb=size / 2**20,
        torch_export_ms=latency_ms(torch_call, warmup, reps),
        onnxruntime_ms=latency_ms(onnx_call, warmup, reps),
        recommend_ms=latency_ms(lambda: est.recommend(users, k=10), warmup, reps),
        onnx_vs_torch_max_abs_diff=diff,
    )
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    return result


def run(args):
    import onnxruntime as ort

    main, images = datasets(args.data_home)
    warmup, reps = (2, 5) if args.quick else (args.warmup, args.reps)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as folder:
        for name, data_name, est, X, y in models(main, images, args.epochs):
            with Timer() as fit_t:
                est.fit(X, y)
            res = dict(
                model=name, data=data_name, n_users=len(est.user_ids_),
                n_items=len(est.item_ids_), fit_s=fit_t.elapsed,
                **measure(est, folder, options, args.batch, warmup, reps),
            )
            results.append(res)
            rows.append(dict(
                model=name, export=f"{res['torch_export_s']:.2f}",
                onnx=f"{res['to_onnx_s']:.2f}", size=f"{res['onnx_mb']:.2f}",
                torch=f"{res['torch_export_ms']:.2f}", ort=f"{res['onnxruntime_ms']:.2f}",
                speedup=f"{res['torch_export_ms'] / res['onnxruntime_ms']:.2f}",
                rec=f"{res['recommend_ms']:.2f}",
                diff=f"{res['onnx_vs_torch_max_abs_diff']:.1e}",
            ))
            print(f"  {name}: export {res['torch_export_s']:.2f} s, onnx "
                  f"{res['to_onnx_s']:.2f} s, torch {res['torch_export_ms']:.2f} ms, "
                  f"onnxruntime {res['onnxruntime_ms']:.2f} ms", flush=True)
            release_memory()
    return rows, results, dict(warmup=warmup, reps=reps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default: 1)")
    parser.add_argument("--batch", type=int, default=256, help="users per scoring call")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument("--reps", type=int, default=30, help="timed calls (median)")
    args = parser.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('SKIPPED: needs onnxruntime (pip install -c constraints.txt '
              '"sklearn_recsys[export]").', file=sys.stderr)
        return
    set_threads(args.threads)
    env = describe_environment("cpu")
    rows, results, timing = run(args)
    print_table(
        f"Exported scoring graphs: export time, ONNX size, scoring {args.batch} users",
        rows,
        [
            ("model", "model"),
            ("export", "torch.export (s)"),
            ("onnx", "to_onnx (s)"),
            ("size", "ONNX file (MB)"),
            ("torch", f"torch.export program, {args.batch} users (ms)"),
            ("ort", "onnxruntime (ms)"),
            ("speedup", "torch / onnxruntime"),
            ("rec", "estimator recommend k=10, reference (ms)"),
            ("diff", "max |onnxruntime - torch|"),
        ],
        note=(
            f"Median of {timing['reps']} calls after {timing['warmup']} warm-up calls; "
            f"{args.threads} thread(s) for torch and onnxruntime. Each graph scores "
            "every item of each user (float32 (batch, n_items)); recommend also "
            "maps ids, excludes seen items and takes the top 10.\n\n"
            + format_environment(env)
        ),
    )
    path = write_json("export", dict(
        environment=env, batch_users=args.batch, epochs=args.epochs,
        threads=args.threads, **timing, results=results,
    ), args.output)
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
