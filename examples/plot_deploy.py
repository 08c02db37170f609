"""
Deploying a recommender: artifact, int8, ONNX and an HTTP service
==================================================================

The last step of the workflow: a fitted model leaves the notebook as a
file, is checked, made smaller, exported, and answers requests over HTTP.

* :func:`sklearn_recsys.save` writes one safetensors file (weights and id
  maps as tensors, parameters as JSON); :func:`sklearn_recsys.load` reads it
  back without running pickled code, with the same predictions.
* ``save(..., quantize="int8")`` stores the weight matrices as per-row int8:
  a smaller file, nearly the same ranking.
* :func:`sklearn_recsys.export.to_onnx` writes the scoring graph, which
  onnxruntime runs without PyTorch.
* :func:`sklearn_recsys.serving.create_app` serves the artifact (here
  in-process through FastAPI's test client; ``python -m sklearn_recsys serve
  model.safetensors`` runs the same application with uvicorn).

The example uses MovieLens-100K when a local copy exists in
``../shared/data`` (relative to the repository root); otherwise synthetic
interactions from :func:`~sklearn_recsys.datasets.make_interactions`.
"""

# %%
# Data and model
# --------------
import pickle
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sklearn_recsys
from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import fetch_movielens, make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserHoldout

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery runs examples from their folder, without __file__
    HERE = Path.cwd()
DATA_HOME = HERE.parent.parent / "shared" / "data"

try:
    X = fetch_movielens("100k", data_home=DATA_HOME, download_if_missing=False).interactions
    source = "MovieLens-100K"
except OSError:
    X = make_interactions(
        n_users=900, n_items=600, density=0.05, feedback="implicit", random_state=0
    ).interactions
    source = "synthetic interactions (no local MovieLens-100K copy found)"
X = X[["user", "item"]]
train_idx, test_idx = next(UserHoldout(test_size=0.2, random_state=0).split(X))
train, test = X.iloc[train_idx], X.iloc[test_idx]
model = MatrixFactorization(loss="softmax", random_state=0).fit(train)
ndcg = make_ranking_scorer("ndcg", k=10)
print(f"{source}: {len(train):,} training interactions")
print(f"NDCG@10 of the fitted model: {ndcg(model, test):.4f}")

# %%
# A safe artifact, and an int8 one
# --------------------------------
# Loading reads tensors and JSON only. The loaded model predicts and
# recommends exactly as the fitted one.
folder = Path(tempfile.mkdtemp())
path = sklearn_recsys.save(model, folder / "mf.safetensors")
path_int8 = sklearn_recsys.save(model, folder / "mf-int8.safetensors", quantize="int8")
loaded = sklearn_recsys.load(path)
loaded_int8 = sklearn_recsys.load(path_int8)

users = model.user_ids_[:100]
assert np.array_equal(model.recommend(users, k=10)[1], loaded.recommend(users, k=10)[1])
sizes = {
    "pickle": len(pickle.dumps(model)),
    "artifact": path.stat().st_size,
    "artifact, int8": path_int8.stat().st_size,
}
scores = {"float32": ndcg(loaded, test), "int8": ndcg(loaded_int8, test)}
for name, size in sizes.items():
    print(f"{name:15s} {size / 1024:8.1f} KiB")
print(f"NDCG@10 float32 {scores['float32']:.4f}, int8 {scores['int8']:.4f}")
print("stored by save:", sklearn_recsys._artifact.read_metadata(path)["sizes"])

# %%
# ONNX export
# -----------
# The graph maps user indices to the scores of every item; onnxruntime gives
# the scores ``predict`` gives.
import onnxruntime  # noqa: E402

from sklearn_recsys.export import prepare_inputs, to_onnx  # noqa: E402

to_onnx(model, folder / "mf.onnx")
session = onnxruntime.InferenceSession(str(folder / "mf.onnx"))
inputs = prepare_inputs(model, users[:5])
onnx_scores = session.run(None, inputs)[0]
pairs = {"user": np.repeat(users[:5], len(model.item_ids_)),
         "item": np.tile(model.item_ids_, 5)}
import pandas as pd  # noqa: E402

expected = model.predict(pd.DataFrame(pairs)).reshape(5, -1)
print(f"ONNX vs predict: max |difference| {np.abs(onnx_scores - expected).max():.2e}")

# %%
# The HTTP service
# ----------------
# ``create_app`` builds the FastAPI application that ``python -m
# sklearn_recsys serve`` runs; the test client calls it in-process.
import warnings  # noqa: E402

from sklearn_recsys.serving import create_app  # noqa: E402

with warnings.catch_warnings():  # starlette's notice about its httpx client
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

with TestClient(create_app(path, token="s3cret")) as client:
    auth = {"Authorization": "Bearer s3cret"}
    print(client.get("/health").json())
    answer = client.post(
        "/recommend", json={"users": users[:2].tolist(), "k": 5}, headers=auth
    )
    print(answer.status_code, answer.json())
    print(client.post("/recommend", json={"users": [1], "k": 0}, headers=auth).json())
    print(client.post("/recommend", json={"users": [1]}).status_code, "without the token")
    metrics = client.get("/metrics", headers=auth).text
    print("\n".join(line for line in metrics.splitlines() if "requests_total{" in line))

# %%
# Sizes and quality
# -----------------
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
ax1.bar(list(sizes), [v / 1024 for v in sizes.values()], color=["grey", "C0", "C1"])
ax1.set_ylabel("file size (KiB)")
ax1.set_title("What a model costs to ship")
ax2.bar(list(scores), list(scores.values()), color=["C0", "C1"])
ax2.set_ylim(0, max(scores.values()) * 1.2)
ax2.set_ylabel("NDCG@10 (test)")
ax2.set_title("int8 storage keeps the ranking")
fig.tight_layout()
plt.show()
