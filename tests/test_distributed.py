"""Data-parallel training through Hugging Face Accelerate (``accelerator=``).

The 2-process test runs the launch command of the docs (``docs/user_guide/
scaling.rst``) as written, with the gloo backend on this machine's CPUs.
"""

import importlib.util
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_recsys import (
    AttentionRecommender,
    CNNRecommender,
    DifferentialPrivacy,
    LSTMRecommender,
    MatrixFactorization,
    load,
)
from sklearn_recsys._training import TensorBatchIterator, TensorDataset
from sklearn_recsys.datasets import make_interactions

accelerate = pytest.importorskip("accelerate")

ROOT = Path(__file__).parents[1]
FAST = dict(max_iter=3, random_state=0)


@pytest.fixture
def accelerator():
    """A one-process Accelerator on the CPU; its shared state reset afterwards."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield accelerate.Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def table():
    data = make_interactions(60, 25, density=0.3, sequential=True, random_state=0)
    return data.interactions[["user", "item", "timestamp"]]


class _Processes:
    """Stands for an Accelerator of several processes (checks before training)."""

    num_processes = 2
    process_index = 0
    device = torch.device("cpu")

    def prepare(self, *objects):
        return objects

    def backward(self, loss):
        loss.backward()

    def unwrap_model(self, model):
        return model


# -- the batch iterator shares the batches out --------------------------------------------


@pytest.mark.parametrize("n_rows, batch_size, n_processes", [(10, 3, 2), (10, 3, 3), (12, 4, 3), (5, 8, 2)])
def test_each_process_gets_its_share_of_the_same_permutation(n_rows, batch_size, n_processes):
    data = TensorDataset({"rows": torch.arange(n_rows)}, torch.ones(n_rows))
    n_batches = math.ceil(n_rows / batch_size)
    seen = []
    for rank in range(n_processes):
        order = torch.Generator().manual_seed(7)  # alike in every process
        own = torch.Generator().manual_seed(rank)
        it = TensorBatchIterator(
            data, batch_size, shuffle=True, generator=own, order_generator=order,
            process_index=rank, num_processes=n_processes,
        )
        batches = [b["rows"] for b, _ in it]
        assert len(batches) == len(it) == math.ceil(n_batches / n_processes)
        seen.append(torch.cat(batches))
    # every row of the epoch is trained on; only the wrapped round repeats
    rows = torch.cat(seen)
    assert set(rows.tolist()) == set(range(n_rows))
    expected = math.ceil(n_batches / n_processes) * n_processes
    assert len(rows) <= expected * batch_size


def test_iterator_refuses_a_process_index_out_of_range():
    data = TensorDataset({"rows": torch.arange(4)}, torch.ones(4))
    with pytest.raises(ValueError, match="process_index=2"):
        TensorBatchIterator(data, 2, process_index=2, num_processes=2)


# -- one process: exactly the plain fit --------------------------------------------------


def _state(est):
    return est.net_.module_.state_dict()


@pytest.mark.parametrize("make", [
    lambda: MatrixFactorization(loss="bpr", n_components=4, **FAST),
    lambda: MatrixFactorization(loss="softmax", n_components=4, early_stopping=True, **FAST),
    lambda: LSTMRecommender(embedding_dim=8, **FAST),
    lambda: AttentionRecommender(embedding_dim=8, **FAST),
    lambda: CNNRecommender(loss="bpr", n_components=4, **FAST),
], ids=["mf-bpr", "mf-softmax-early-stopping", "lstm", "attention", "cnn"])
def test_one_process_accelerator_trains_the_plain_model(make, table, accelerator):
    X = table if isinstance(make(), (LSTMRecommender, AttentionRecommender)) else table[["user", "item"]]
    plain = make().fit(X)
    accelerated = make().set_params(accelerator=accelerator).fit(X)
    a, b = _state(plain), _state(accelerated)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert accelerated.loss_curve_ == plain.loss_curve_
    users = X["user"].unique()[:5]
    np.testing.assert_array_equal(accelerated.recommend(users, k=3)[0], plain.recommend(users, k=3)[0])


def test_accelerated_model_pickles_clones_and_saves(table, accelerator, tmp_path):
    import pickle

    est = MatrixFactorization(loss="bpr", n_components=4, accelerator=accelerator, **FAST)
    assert clone(est).accelerator is accelerator  # the process's accelerator, shared
    est.fit(table[["user", "item"]])
    clone(est).fit(table[["user", "item"]])
    # the fitted net keeps no reference to the accelerator, which forgets the fits
    assert type(est.net_).__name__ == "RecommenderNet"
    assert not accelerator._models and not accelerator._optimizers
    again = pickle.loads(pickle.dumps(est))
    users = table["user"].unique()[:4]
    np.testing.assert_array_equal(again.recommend(users, k=3)[0], est.recommend(users, k=3)[0])
    # an artifact holds the model, not this process's accelerator
    from sklearn_recsys import save

    save(est, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.accelerator is None
    np.testing.assert_array_equal(loaded.recommend(users, k=3)[0], est.recommend(users, k=3)[0])


def test_grid_search_with_an_accelerator(table, accelerator):
    grid = GridSearchCV(
        MatrixFactorization(loss="bpr", n_components=4, accelerator=accelerator, **FAST),
        {"n_components": [2, 4]}, cv=2,
    ).fit(table[["user", "item"]])
    assert grid.best_estimator_.accelerator is accelerator


def test_bf16_mixed_precision_trains(table):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        bf16 = accelerate.Accelerator(cpu=True, mixed_precision="bf16")
        est = AttentionRecommender(embedding_dim=8, accelerator=bf16, **FAST).fit(table)
        plain = AttentionRecommender(embedding_dim=8, **FAST).fit(table)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert np.all(np.isfinite(est.loss_curve_))
    np.testing.assert_allclose(est.loss_curve_, plain.loss_curve_, rtol=0.05)


# -- what an accelerator cannot do ----------------------------------------------------------


def test_accelerator_refuses_differential_privacy(table, accelerator):
    est = MatrixFactorization(
        loss="softmax", differential_privacy=DifferentialPrivacy(epsilon=5.0),
        accelerator=accelerator, **FAST,
    )
    with pytest.raises(ValueError, match="differential_privacy"):
        est.fit(table[["user", "item"]])


def test_accelerator_refuses_warm_start(table, accelerator):
    est = MatrixFactorization(loss="bpr", warm_start=True, accelerator=accelerator, **FAST)
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(table[["user", "item"]])
    assert not hasattr(est, "net_")


def test_device_contradicting_the_accelerator_is_refused(table, accelerator):
    est = MatrixFactorization(loss="bpr", device="cuda:3", accelerator=accelerator, **FAST)
    with pytest.raises(ValueError, match="device='cuda:3' but the accelerator"):
        est.fit(table[["user", "item"]])


def test_accelerator_must_be_an_accelerator(table):
    with pytest.raises(ValueError, match="accelerator"):
        MatrixFactorization(accelerator="yes", **FAST).fit(table[["user", "item"]])


def test_sparse_gradients_are_refused_with_several_processes(table):
    est = MatrixFactorization(loss="bpr", solver="sparse_adam", accelerator=_Processes(), **FAST)
    with pytest.raises(ValueError, match="sparse_adam"):
        est.fit(table[["user", "item"]])
    assert MatrixFactorization(loss="bpr", accelerator=_Processes())._sparse_solver(10**6, 10**6) is False


# -- two processes, gloo: the recipe of the docs ------------------------------------------


def _docs_command(n_processes):
    """The CPU launch command of the docs, for ``n_processes``."""
    text = (ROOT / "docs" / "user_guide" / "scaling.rst").read_text()
    match = re.search(r"^\s*(torchrun --standalone --nproc_per_node 2 benchmarks/distributed_fit\.py[^\n]*)$", text, re.MULTILINE)
    assert match, "the docs lost the 2-process CPU launch command"
    return match.group(1).replace("--nproc_per_node 2", f"--nproc_per_node {n_processes}")


def _run(command, out):
    """Run ``command`` (a torchrun line, or the script alone with plain python)."""
    args = shlex.split(command)
    args[args.index("--out") + 1] = str(out)
    if args[0] == "torchrun":
        torchrun = Path(sys.executable).parent / "torchrun"  # this environment's
        launcher = [str(torchrun)] if torchrun.exists() else [
            sys.executable, "-m", "torch.distributed.run"
        ]
        args = launcher + args[1:]
    else:
        args = [sys.executable, *args]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "distributed.json").read_text())


def test_two_processes_share_every_epoch_and_train_the_one_process_model(tmp_path):
    command = _docs_command(2)
    # the baseline: the same script in one plain process (a 1-process torchrun
    # initialises gloo for nothing, and was measured several times slower)
    alone = command.split("benchmarks/distributed_fit.py", 1)[1]
    one = _run("benchmarks/distributed_fit.py" + alone, tmp_path / "one")
    two = _run(command, tmp_path / "two")
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    assert one["distributed_type"] == "DistributedType.NO"
    assert two["distributed_type"] == "DistributedType.MULTI_CPU"
    # each process ran half of every epoch's batches (rounded up)
    alone = one["processes"][0]["batches_per_epoch"][0]
    for process in two["processes"]:
        assert len(process["batches_per_epoch"]) == two["n_iter"]
        assert set(process["batches_per_epoch"]) == {math.ceil(alone / 2)}
    # every process ends with the same model, the one the main process saved
    assert two["same_model_on_every_process"]
    assert len({p["ndcg@10"] for p in two["processes"]}) == 1
    # quality: the 1-process fit's, within seed noise (early stopping on both)
    assert abs(two["ndcg@10"] - one["ndcg@10"]) <= 0.03
    spec = importlib.util.spec_from_file_location("distributed_fit", ROOT / "benchmarks" / "distributed_fit.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    X, _ = script.load_data("synthetic", None, sequential=False)
    from sklearn_recsys.metrics import make_ranking_scorer
    from sklearn_recsys.model_selection import UserHoldout

    _, test = next(UserHoldout(test_size=0.2, random_state=script.SEED).split(X))
    model = load(tmp_path / "two" / "model")
    score = make_ranking_scorer("ndcg", k=10)(model, X[["user", "item"]].iloc[test])
    assert score == pytest.approx(two["ndcg@10"], abs=1e-6)


# -- model selection on several worker processes (the recipe of the docs, on CPUs) ---------


def _search():
    from sklearn_recsys.metrics import make_ranking_scorer
    from sklearn_recsys.model_selection import UserHoldout

    return GridSearchCV(
        MatrixFactorization(loss="bpr", **FAST), {"n_components": [2, 4]},
        scoring=make_ranking_scorer("ndcg", k=5),
        cv=UserHoldout(n_splits=2, random_state=0), n_jobs=-1,
    )


def test_grid_search_on_dask_worker_processes_equals_the_sequential_search(table):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    search = _search
    X = table[["user", "item"]]
    sequential = search().set_params(n_jobs=1).fit(X)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
    ) as cluster, distributed.Client(cluster), parallel_backend("dask"):
        spread = search().fit(X)
    np.testing.assert_array_equal(
        spread.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"]
    )


def test_grid_search_on_rays_joblib_backend_equals_the_sequential_search(table):
    ray = pytest.importorskip("ray")
    from joblib import parallel_backend
    from ray.util.joblib import register_ray

    X = table[["user", "item"]]
    sequential = _search().set_params(n_jobs=1).fit(X)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        with parallel_backend("ray"):
            spread = _search().fit(X)
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(
        spread.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"]
    )
