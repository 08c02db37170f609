"""
Tune matrix factorization for next-item ranking
===============================================

:class:`~sklearn.model_selection.GridSearchCV` tunes the number of factors
and the L2 penalty of an implicit-feedback
:class:`~sklearn_recsys.MatrixFactorization` with the package's evaluation
objects: :class:`~sklearn_recsys.model_selection.LeaveLastOut` holds out
each user's most recent interaction, and
:func:`~sklearn_recsys.metrics.make_ranking_scorer` ranks every item the user
has not seen and scores NDCG@10 against that held-out item.

The example uses MovieLens-100K when a local copy exists in
``../shared/data`` (relative to the repository root); otherwise it falls back
to synthetic interactions from
:func:`~sklearn_recsys.datasets.make_interactions` and says so.
"""

# %%
# Data
# ----
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import fetch_movielens, make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import LeaveLastOut

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery runs examples from their folder, without __file__
    HERE = Path.cwd()
DATA_HOME = HERE.parent.parent / "shared" / "data"

try:
    X = fetch_movielens("100k", data_home=DATA_HOME, download_if_missing=False).interactions
    source = "MovieLens-100K"
except OSError:
    X = make_interactions(n_users=943, n_items=500, density=0.1, random_state=0).interactions
    source = "synthetic interactions (no local MovieLens-100K copy found)"
X = X[["user", "item", "timestamp"]]
print(f"{source}: {len(X)} interactions")

# %%
# Grid search
# -----------
# Every candidate is fitted on all but each user's last interaction and
# scored on ranking that last item. A few epochs keep the example quick;
# the ranking of the candidates is what matters here.
grid = GridSearchCV(
    MatrixFactorization(loss="bpr", max_iter=5, random_state=0),
    {"n_components": [16, 64], "alpha": [0.003, 0.01, 0.03]},
    cv=LeaveLastOut(n_test=1),
    scoring=make_ranking_scorer("ndcg", k=10),
    n_jobs=2,
)
grid.fit(X)
print("best parameters:", grid.best_params_, f"NDCG@10 = {grid.best_score_:.4f}")

# %%
# Results
# -------
results = pd.DataFrame(grid.cv_results_["params"])
results["ndcg@10"] = grid.cv_results_["mean_test_score"]
table = results.pivot(index="n_components", columns="alpha", values="ndcg@10")

fig, ax = plt.subplots(figsize=(6, 3.5))
image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
ax.set_xticks(np.arange(table.shape[1]), [f"{a:g}" for a in table.columns])
ax.set_yticks(np.arange(table.shape[0]), [str(n) for n in table.index])
ax.set_xlabel("alpha (L2 penalty)")
ax.set_ylabel("n_components")
middle = np.nanmean([np.nanmin(table.to_numpy()), np.nanmax(table.to_numpy())])
for (i, j), value in np.ndenumerate(table.to_numpy()):
    # dark text on the bright end of viridis, light text on the dark end
    color = "black" if value > middle else "white"
    ax.text(j, i, f"{value:.3f}", ha="center", va="center", color=color)
fig.colorbar(image, ax=ax, label="NDCG@10 (leave-last-out)")
ax.set_title(f"GridSearchCV on {source.split(' (')[0]}")
fig.tight_layout()
plt.show()
