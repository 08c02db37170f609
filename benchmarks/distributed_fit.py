"""Data-parallel training: the launch recipe, run by the test suite on 2 CPUs.

Fits one estimator through Hugging Face Accelerate on every process of a
``torchrun`` (or ``accelerate launch``) run: each process trains on its share
of every epoch's batches, DDP all-reduces the gradients, and every process
ends with the same model. The main process then writes the fitted model
(``model/``, a safe artifact) and ``distributed.json``: the processes, the
training batches each process ran per epoch, the epochs, the quality on the
test split, the fit time and whether every process holds the same weights.

Launch (from the repository root)::

    # 2 processes on this machine's CPUs (gloo), as tests/test_distributed.py
    torchrun --standalone --nproc_per_node 2 benchmarks/distributed_fit.py --cpu --out DIR

    # every GPU of one machine (NCCL), bf16 mixed precision
    torchrun --standalone --nproc_per_node gpu benchmarks/distributed_fit.py \\
        --mixed-precision bf16 --out DIR

    # 2 nodes of 8 GPUs: run on each node, NODE_RANK 0 and 1, HOST the first node
    torchrun --nnodes 2 --node_rank NODE_RANK --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        benchmarks/distributed_fit.py --out DIR

    # the same through Accelerate's launcher
    accelerate launch --num_processes 2 benchmarks/distributed_fit.py --out DIR

Data: ``--data synthetic`` (default; ``make_interactions``, fixed seed) or
``--data ml-100k`` (read from ``--data-home``, never downloaded). Split: a
per-user 80/20 holdout (``UserHoldout``) for MF and the CNN, the last item of
every user (``LeaveLastOut``) for the sequence models; quality: NDCG@10 with
training items excluded. Run with one process (``--nproc_per_node 1``, or plain ``python``) for
the baseline.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_recsys import (
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    LSTMRecommender,
    MatrixFactorization,
    save,
)
from sklearn_recsys.datasets import fetch_movielens, make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import LeaveLastOut, UserHoldout

SEED = 0
MODELS = ("mf", "attention", "lstm", "cnn")


class BatchCounter(Callback):
    """Training batches this process ran in each epoch."""

    def initialize(self):
        self.per_epoch_ = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.per_epoch_.append(0)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            self.per_epoch_[-1] += 1


def load_data(name, data_home, sequential):
    """``(interactions with user/item/timestamp, item images or None)``."""
    if name == "ml-100k":
        ml = fetch_movielens("100k", data_home=data_home, download_if_missing=False)
        return ml.interactions[["user", "item", "timestamp"]], None
    data = make_interactions(
        n_users=600, n_items=300, density=0.05, sequential=sequential,
        item_features="image", image_shape=(8, 8), random_state=SEED,
    )
    return data.interactions[["user", "item", "timestamp"]], data.item_images


def estimator(model, accelerator, max_iter, images):
    common = dict(
        accelerator=accelerator, max_iter=max_iter, early_stopping=True, random_state=SEED,
    )
    if model == "mf":
        return MatrixFactorization(loss="bpr", batch_size=256, **common)
    if model == "attention":
        return AttentionRecommender(batch_size=64, **common)
    if model == "lstm":
        return LSTMRecommender(batch_size=64, **common)
    content = ItemContent(np.arange(len(images)), images=images)
    return CNNRecommender(item_content=content, loss="bpr", batch_size=256, **common)


def parameter_checksum(est):
    """One number per process: equal on every process when the models are."""
    with torch.no_grad():
        tensors = [*est.net_.module_.parameters(), *est.net_.module_.buffers()]
        return float(sum(t.double().abs().sum() for t in tensors if t.is_floating_point()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="mf")
    parser.add_argument("--data", choices=("synthetic", "ml-100k"), default="synthetic")
    parser.add_argument("--data-home", default=str(Path(__file__).parents[1].parent / "shared" / "data"))
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--cpu", action="store_true", help="train on the CPUs (gloo)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    parser.add_argument("--out", required=True, help="folder for model/ and distributed.json")
    args = parser.parse_args(argv)

    from accelerate import Accelerator

    accelerator = Accelerator(cpu=args.cpu, mixed_precision=args.mixed_precision)
    sequential = args.model in ("attention", "lstm")
    X, images = load_data(args.data, args.data_home, sequential)
    if images is None and args.model == "cnn":
        parser.error("--model cnn needs --data synthetic (item images)")
    splitter = LeaveLastOut(n_test=1) if sequential else UserHoldout(test_size=0.2, random_state=SEED)
    train, test = next(splitter.split(X))
    if not sequential:
        X = X[["user", "item"]]

    counter = BatchCounter()
    est = estimator(args.model, accelerator, args.max_iter, images)
    est.set_params(callbacks=[("batch_counter", counter)])
    start = time.perf_counter()
    est.fit(X.iloc[train])
    fit_s = time.perf_counter() - start
    ndcg = float(make_ranking_scorer("ndcg", k=10)(est, X.iloc[test]))

    # what every process saw, gathered to all
    from accelerate.utils import gather_object

    per_process = gather_object([{
        "process_index": accelerator.process_index,
        "batches_per_epoch": counter.per_epoch_,
        "checksum": parameter_checksum(est),
        "ndcg@10": ndcg,
    }])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save(est.set_params(callbacks=None, accelerator=None), out / "model")
        checksums = [p["checksum"] for p in per_process]
        result = {
            "model": args.model, "data": args.data,
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision,
            "n_train": len(train), "n_iter": est.n_iter_,
            "fit_s": fit_s,
            "samples_per_s": len(train) * est.n_iter_ / fit_s,
            "ndcg@10": ndcg,
            "processes": per_process,
            "same_model_on_every_process": bool(np.allclose(checksums, checksums[0], rtol=1e-6)),
            "loss_curve": est.loss_curve_,
            "command": " ".join(sys.argv),
            "torch": torch.__version__,
        }
        (out / "distributed.json").write_text(json.dumps(result, indent=2))
        print(json.dumps({k: result[k] for k in ("num_processes", "n_iter", "ndcg@10", "fit_s")}))


if __name__ == "__main__":
    main()
