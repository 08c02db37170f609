"""Training overhead of the skorch path against a plain PyTorch loop, for
every neural model of the package.

For each model the estimator is fitted once with its ``_make_net`` call
intercepted (on the instance only; nothing in the package changes), which
records exactly what the estimator hands to skorch: the freshly built
module (deep-copied before training), the training :class:`TensorDataset`
of device tensors, the batch transform (negative sampler), the criterion
and the optimizer with its parameters (from the ``_criterion`` and
``_optimizer`` hooks). Then, interleaved and repeated ``--reps`` times:

* **ours**: ``est.fit`` with ``max_iter=--epochs``; per-epoch wall time from
  ``net_.history[:, "dur"]`` and CPU time from a callback (as in
  ``bench_mf.py``);
* **plain**: a hand-written loop over a deep copy of the same untrained
  module: ``TensorBatchIterator`` (same batch size, shuffling, seed and
  batch transform) -> ``module(**batch)`` -> same criterion -> ``Adam``
  with the same learning rate and optimizer parameters.

Reported: median seconds per epoch of each path over all epochs of all
repetitions, and the ratio ours / plain (acceptance: <= 1.2) in wall and
process-CPU time (CPU time is robust to other jobs on a shared machine).

Models (synthetic ``make_interactions`` data, seeds fixed): MatrixFactorization
``architecture="dot"`` (BPR) and ``"neumf"`` (BCE), CNNRecommender id-only and
with 8x8 item images, LSTMRecommender and AttentionRecommender (softmax).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_overhead.py          # ~3 minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_overhead.py --quick  # ~1 minute

Results: a markdown table on stdout and ``benchmarks/results/overhead.json``.
"""

import argparse
import copy
import sys
import time

import numpy as np
import torch

from _harness import (
    add_common_arguments,
    describe_environment,
    format_environment,
    median,
    print_table,
    release_memory,
    set_threads,
    write_json,
)
from bench_mf import _EpochCPUTime
from sklearn_recsys import (
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    LSTMRecommender,
    MatrixFactorization,
)
from sklearn_recsys._training import TensorBatchIterator
from sklearn_recsys.datasets import make_interactions

RATIO_TARGET = 1.2


def _data(sequential, quick, images=False):
    if sequential:
        kw = dict(n_users=600 if quick else 1500, n_items=400, density=0.05,
                  sequential=True)
    else:
        kw = dict(n_users=600 if quick else 2000, n_items=500 if quick else 1000,
                  density=0.05)
    if images:
        kw.update(item_features="image", image_shape=(8, 8))
    return make_interactions(random_state=0, **kw)


def models(quick):
    """(name, estimator factory, data Bunch, X) of every neural model."""
    flat = _data(False, quick)
    img = _data(False, quick, images=True)
    seq = _data(True, quick)
    X_flat = flat.interactions[["user", "item"]]
    X_img = img.interactions[["user", "item"]]
    X_seq = seq.interactions[["user", "item", "timestamp"]]
    content = ItemContent(np.arange(len(img.item_images)), images=img.item_images)
    return [
        ("MatrixFactorization(architecture='dot', loss='bpr')",
         lambda **kw: MatrixFactorization(loss="bpr", **kw), X_flat),
        ("MatrixFactorization(architecture='neumf', loss='bce')",
         lambda **kw: MatrixFactorization(architecture="neumf", loss="bce", **kw),
         X_flat),
        ("CNNRecommender (item ids only)", lambda **kw: CNNRecommender(**kw), X_flat),
        ("CNNRecommender (8x8 item images + ids)",
         lambda **kw: CNNRecommender(item_content=content, conv_channels=(8, 16),
                                     **kw), X_img),
        ("LSTMRecommender (softmax)", lambda **kw: LSTMRecommender(**kw), X_seq),
        ("AttentionRecommender (softmax)", lambda **kw: AttentionRecommender(**kw),
         X_seq),
    ]


def capture(est, X):
    """Fit ``est`` once, recording the network, data and objective it trains.

    The estimator's single ``fit`` hands its hooks' results to ``_make_net``
    (the module, the validated ``FitData`` and the ``TrainingData``); the
    criterion and optimizer come from the ``_criterion``/``_optimizer`` hooks.
    """
    record = {}
    original = est._make_net

    def recording_make_net(module, fit, training):
        optimizer, optimizer_params = est._optimizer(fit)
        record.update(
            module=copy.deepcopy(module), dataset=training.train,
            batch_transform=training.batch_transform, criterion=est._criterion(fit),
            optimizer=optimizer, optimizer_params=optimizer_params,
            seed=fit.seed, device=fit.device,
        )
        return original(module, fit, training)

    est._make_net = recording_make_net  # instance attribute shadows the method
    try:
        est.fit(X)
    finally:
        del est._make_net
    if not isinstance(record.get("module"), torch.nn.Module):
        raise RuntimeError(f"{type(est).__name__} did not pass a module instance")
    return record


def plain_loop(est, record, epochs):
    """Hand-written loop over the recorded module, data, sampler and criterion."""
    seed = record["seed"]
    torch.manual_seed(seed)
    module = copy.deepcopy(record["module"]).to(record["device"])
    criterion = copy.deepcopy(record["criterion"])
    optimizer = record["optimizer"](  # SparseDenseAdam if sparse
        module.parameters(), lr=est.learning_rate_init, **record["optimizer_params"]
    )
    iterator = TensorBatchIterator(record["dataset"], est._batch_size(), shuffle=True,
                                   seed=seed, batch_transform=record["batch_transform"])
    module.train()
    wall, cpu = [], []
    for _ in range(epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        for batch, y in iterator:
            optimizer.zero_grad()
            loss = criterion(module(**batch), y)
            loss.backward()
            optimizer.step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return dict(epoch_s=wall, epoch_cpu_s=cpu, final_loss=float(loss.detach()))


def ours(factory, X, epochs):
    est = factory(max_iter=epochs, random_state=0,
                  callbacks=[("cpu_time", _EpochCPUTime())])
    est.fit(X)
    h = est.net_.history
    return dict(epoch_s=[float(d) for d in h[:, "dur"]],
                epoch_cpu_s=[float(d) for d in h[:, "cpu"]],
                final_loss=float(est.loss_curve_[-1]))


def run(args):
    rows, results = [], []
    epochs = 2 if args.quick else args.epochs
    reps = 1 if args.quick else args.reps
    for name, factory, X in models(args.quick):
        est = factory(max_iter=1, random_state=0)
        record = capture(est, X)  # also warms up this model's code paths
        plain_loop(est, record, 1)
        n_rows = len(record["dataset"])
        runs = {"plain": [], "ours": []}
        for rep in range(reps):
            order = ("plain", "ours") if rep % 2 == 0 else ("ours", "plain")
            for which in order:
                if which == "plain":
                    runs["plain"].append(plain_loop(est, record, epochs))
                else:
                    runs["ours"].append(ours(factory, X, epochs))
                release_memory()
        med = {
            (which, key): median([v for r in runs[which] for v in r[key]])
            for which in runs for key in ("epoch_s", "epoch_cpu_s")
        }
        res = dict(
            model=name,
            n_interactions=len(X),
            n_training_rows=n_rows,
            batch_size=est._batch_size(),
            epochs_per_run=epochs,
            repetitions=reps,
            plain_epoch_s=med["plain", "epoch_s"],
            ours_epoch_s=med["ours", "epoch_s"],
            plain_epoch_cpu_s=med["plain", "epoch_cpu_s"],
            ours_epoch_cpu_s=med["ours", "epoch_cpu_s"],
            ratio_wall=med["ours", "epoch_s"] / med["plain", "epoch_s"],
            ratio_cpu=med["ours", "epoch_cpu_s"] / med["plain", "epoch_cpu_s"],
            runs=runs,
        )
        res["passed"] = bool(res["ratio_wall"] <= RATIO_TARGET
                             or res["ratio_cpu"] <= RATIO_TARGET)
        results.append(res)
        rows.append(dict(
            model=name, rows=f"{n_rows:,}", batch=est._batch_size(),
            plain=res["plain_epoch_s"], ours=res["ours_epoch_s"],
            ratio=res["ratio_wall"], ratio_cpu=res["ratio_cpu"],
            ok="yes" if res["passed"] else "NO",
        ))
        print(f"  {name}: plain {res['plain_epoch_s']:.3f} s/epoch, ours "
              f"{res['ours_epoch_s']:.3f} s/epoch, ratio {res['ratio_wall']:.3f} wall "
              f"/ {res['ratio_cpu']:.3f} CPU", flush=True)
    print_table(
        f"Training overhead: skorch path (ours) vs plain PyTorch loop, "
        f"{args.threads} torch thread(s), CPU",
        rows,
        [("model", "model"), ("rows", "training rows"), ("batch", "batch"),
         ("plain", "plain loop (s/epoch)"), ("ours", "ours (s/epoch)"),
         ("ratio", "ours/plain (wall)"), ("ratio_cpu", "ours/plain (CPU)"),
         ("ok", f"<= {RATIO_TARGET}")],
        floatfmt=".3f",
        note=f"Medians over all epochs of {reps} interleaved repetition(s) of "
        f"{epochs} epoch(s). Same module class (deep copy of the estimator's "
        "untrained module), dataset tensors, batch size, shuffling seed, negative "
        "sampler, criterion and Adam settings.",
    )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    env = describe_environment("cpu")
    print("## Training overhead vs a plain PyTorch loop"
          + (" (--quick)" if args.quick else ""))
    print(format_environment(env))
    start = time.perf_counter()
    results = run(args)
    wall = time.perf_counter() - start
    path = write_json("overhead", dict(
        environment=env,
        settings=dict(quick=args.quick, threads=args.threads, epochs=args.epochs,
                      reps=args.reps, target_ratio=RATIO_TARGET),
        protocol="ours = est.fit(max_iter=epochs), per-epoch time from "
        "net_.history[:, 'dur'] (wall) and a CPU-time callback; plain = hand loop "
        "over TensorBatchIterator + deep copy of the same untrained module + same "
        "criterion + Adam; medians over epochs and interleaved repetitions; "
        "ratio = ours / plain",
        results=results, wall_time_s=wall,
    ), args.output)
    print(f"\nTotal {wall:.0f} s. Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
