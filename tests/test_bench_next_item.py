"""Smoke test of ``benchmarks/bench_next_item.py`` (``--quick``).

The script's ``main`` is run in-process on a small synthetic sequential
table (its MovieLens loader replaced), and on MovieLens-100K when a local
copy is at ``../shared/data`` (skipped otherwise). Only the layout of the
result file is checked, not the numbers: ``--quick`` trains one epoch.
"""

import importlib
import json
from pathlib import Path

import pytest
import torch
from sklearn.utils import Bunch

from sklearn_recsys.datasets import make_interactions

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
DATA_HOME = REPO.parent / "shared" / "data"

OURS = {"AttentionRecommender", "LSTMRecommender"}
BASELINES = {"Popularity", "ItemKNN", "EASE"}
PEERS = ("AlternatingLeastSquares", "BayesianPersonalizedRanking", "WARP")
DATASET_KEYS = {"name", "n_interactions", "n_users", "n_items", "n_train", "n_test",
                "protocol", "rows", "verdict", "wall_time_s"}


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield importlib.import_module("bench_next_item")
    torch.set_num_threads(threads)  # main() sets one thread


def _check(path, datasets):
    data = json.loads(path.read_text())
    assert data["benchmark"] == "next_item"
    assert {"written_at", "command", "environment", "settings", "datasets",
            "wall_time_s"} <= set(data)
    assert data["settings"]["quick"] is True
    assert set(data["datasets"]) == set(datasets)
    for key, result in data["datasets"].items():
        assert DATASET_KEYS <= set(result), key
        assert result["n_test"] > 0 and result["n_train"] > result["n_test"]
        rows = result["rows"]
        models = " | ".join(r["model"] for r in rows)
        for name in OURS | BASELINES:
            assert f"sklearn_recsys {name} (defaults)" in models
        for name in PEERS:  # a row each, measured or saying why not
            assert any(name in r["model"] or "status" in r for r in rows), name
        for r in rows:
            assert {"model", "kind", "settings"} <= set(r)
            if "status" in r:
                continue
            assert {"ndcg@10", "hr@10", "fit_s", "fit_cpu_s"} <= set(r), r["model"]
            # one relevant item per user: NDCG@10 <= HR@10
            assert 0.0 <= r["ndcg@10"] <= r["hr@10"] <= 1.0, r["model"]
            assert r["fit_s"] >= 0 and r["fit_cpu_s"] >= 0
        assert {r["kind"] for r in rows} >= {"ours", "baseline"}
        assert "best of ours" in result["verdict"] or "no verdict" in result["verdict"]
    return data


def test_quick_on_synthetic_data(script, monkeypatch, tmp_path):
    X = make_interactions(n_users=60, n_items=40, density=0.2, sequential=True,
                          random_state=0).interactions
    monkeypatch.setattr(script, "load_movielens",
                        lambda variant, data_home=None: Bunch(interactions=X))
    out = tmp_path / "next_item.json"
    assert script.main(["--quick", "--dataset", "both", "--output", str(out)]) == 0
    data = _check(out, ["100k", "latest-small"])
    assert data["datasets"]["100k"]["n_users"] == 60
    assert data["datasets"]["100k"]["n_test"] == 60


def test_quick_on_movielens_100k(script, tmp_path):
    if not (DATA_HOME / "ml-100k" / "u.data").exists():
        pytest.skip("MovieLens-100K not found at ../shared/data/ml-100k (it is not "
                    "redistributed with the project)")
    out = tmp_path / "next_item.json"
    assert script.main(["--quick", "--dataset", "100k", "--data-home", str(DATA_HOME),
                        "--output", str(out)]) == 0
    data = _check(out, ["100k"])
    assert data["datasets"]["100k"]["n_users"] == script.QUICK_USERS
