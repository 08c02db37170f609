"""
Implicit feedback: a sparse user x item matrix through a Pipeline
=================================================================

The second input convention is a *user x item matrix*: one row per user, one
column per item, the stored entries are the interactions. Here the stored
values are 1-5 star ratings and we treat "rated 4 or more" as a positive
signal: a :class:`~sklearn.preprocessing.Binarizer` turns the sparse ratings
into sparse 0/1 clicks (the matrix stays sparse; entries that become 0 are
dropped), and :class:`~sklearn_recsys.MatrixFactorization` learns from them
with the BPR or BCE loss, negatives being sampled on the training device.

Model selection follows the *strong generalization* protocol:
:class:`~sklearn_recsys.model_selection.UserKFold` holds out whole users; at
test time 80% of each held-out user's clicks are folded in (no refit) and the
remaining 20% must come up in the user's top 10, which
:func:`~sklearn_recsys.metrics.make_ranking_scorer` measures with NDCG@10.
"""

# %%
# A sparse matrix of ratings
# --------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer

from sklearn_recsys import EASE, MatrixFactorization, Popularity
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserKFold

data = make_interactions(
    n_users=600,
    n_items=300,
    n_components=5,
    density=0.06,
    feedback="explicit",
    random_state=0,
)
df = data.interactions
X = sp.csr_array(
    (df["rating"].astype(np.float32), (df["user"], df["item"])), shape=(600, 300)
)
print(f"{X.shape[0]} users x {X.shape[1]} items, {X.nnz} stored ratings")
print(f"{(X.data >= 4).mean():.0%} of them are 4 or 5 stars")

# The last 100 users are kept aside as "new" users, never seen in training.
X_train, X_new = X[:500], X[500:]

# %%
# The pipeline and the ranking scorer
# -----------------------------------
# The scorer asks the fitted recommender for top-10 lists, so it is given the
# final step of the pipeline and the binarized test rows.
pipe = make_pipeline(
    Binarizer(threshold=3.5),
    MatrixFactorization(
        loss="bpr", max_iter=15, learning_rate_init=0.02, alpha=1e-3, random_state=0
    ),
)
ndcg_at_10 = make_ranking_scorer("ndcg", k=10)


def pipeline_ndcg_at_10(pipeline, X_test, y=None):
    """NDCG@10 of the pipeline's recommender on its preprocessed test rows."""
    return ndcg_at_10(pipeline[-1], pipeline[:-1].transform(X_test))


# %%
# Grid search over the loss and the factor dimension
# --------------------------------------------------
param_grid = {
    "matrixfactorization__loss": ["bpr", "bce"],
    "matrixfactorization__n_components": [4, 16, 64],
}
cv = UserKFold(n_splits=3, random_state=0)
search = GridSearchCV(pipe, param_grid, cv=cv, scoring=pipeline_ndcg_at_10)
search.fit(X_train)
results = pd.DataFrame(search.cv_results_)
print("best parameters:", search.best_params_)
results.pivot(
    index="param_matrixfactorization__n_components",
    columns="param_matrixfactorization__loss",
    values="mean_test_score",
)

# %%
# Two baselines scored the same way: a non-personalised one tells how much
# the factorization learned about individual users, and
# :class:`~sklearn_recsys.EASE`, a closed-form linear item-item model, is a
# strong reference for implicit feedback.
baselines = {
    "Popularity": Popularity(),
    "EASE": EASE(l2_reg=50.0),
}
baseline_scores = {
    name: np.mean([
        pipeline_ndcg_at_10(
            make_pipeline(Binarizer(threshold=3.5), model).fit(X_train[train]),
            X_train[test],
        )
        for train, test in cv.split(X_train)
    ])
    for name, model in baselines.items()
}
pd.Series(baseline_scores, name="NDCG@10").round(3).to_frame()

# %%
# The factorization needs enough factors to beat popularity; on this small,
# low-rank data the closed-form EASE is stronger still.
fig, ax = plt.subplots(figsize=(6, 4))
width = 0.38
positions = np.arange(len(param_grid["matrixfactorization__n_components"]))
for offset, (loss, group) in zip(
    (-width / 2, width / 2), results.groupby("param_matrixfactorization__loss")
):
    ax.bar(
        positions + offset,
        group["mean_test_score"],
        width,
        yerr=group["std_test_score"],
        capsize=3,
        label=f'loss="{loss}"',
    )
for (name, score), style in zip(baseline_scores.items(), ["--", ":"]):
    ax.axhline(score, color="black", linestyle=style, label=name)
ax.set_xticks(positions, [str(n) for n in param_grid["matrixfactorization__n_components"]])
ax.set_xlabel("n_components")
ax.set_ylabel("NDCG@10 on held-out users (higher is better)")
ax.set_title("Implicit MF, 3-fold UserKFold")
ax.legend(loc="lower right")
fig.tight_layout()

# %%
# Recommending to new users
# -------------------------
# Users the model never saw are folded in from their history rows, without
# refitting; their known items are excluded from the top-k.
best = search.best_estimator_
item_ids, scores = best[-1].recommend(best[:-1].transform(X_new[:3]), k=5)
item_ids
