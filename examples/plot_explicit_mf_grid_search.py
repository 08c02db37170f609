"""
Explicit ratings: tune matrix factorization with GridSearchCV
=============================================================

:class:`~sklearn_recsys.MatrixFactorization` is a scikit-learn estimator, so
its hyper-parameters are tuned with the usual
:class:`~sklearn.model_selection.GridSearchCV`. Here the data are synthetic
1-5 star ratings from :func:`~sklearn_recsys.datasets.make_interactions`
(users and items with 5 planted latent factors), given as an *interaction
table*: a DataFrame with one row per rating and the ratings as ``y``.

The splitters of :mod:`sklearn_recsys.model_selection` keep every user in the
training folds (a random per-user holdout here), and the estimator's default
``score`` for ``loss="mse"`` is the negative RMSE, so no ``scoring=`` is
needed.

The default solver for ratings samples a Bayesian MF (``solver="gibbs"``),
whose penalties are drawn from their posteriors: there is no ``alpha`` to
tune. This example tunes the L2 penalty of the Adam solver
(``solver="adam"``), and compares the result with the default at the end.
"""

# %%
# Data: an interaction table and its ratings
# ------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.model_selection import UserHoldout, train_test_split

data = make_interactions(
    n_users=400,
    n_items=200,
    n_components=5,
    density=0.1,
    feedback="explicit",
    noise=0.3,
    random_state=0,
)
X = data.interactions[["user", "item"]]
y = data.interactions["rating"]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, strategy="user", test_size=0.2, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test ratings")
X_train.head()

# %%
# Grid search over the factor dimension and the L2 penalty
# --------------------------------------------------------
# One validation split per candidate (20% of each user's ratings) keeps this
# example fast; ``UserHoldout(n_splits=5)`` or
# :class:`~sklearn_recsys.model_selection.InteractionKFold` give
# repeated estimates.
mf = MatrixFactorization(
    solver="adam", max_iter=20, batch_size=512, learning_rate_init=0.02, random_state=0
)
param_grid = {"n_components": [4, 32], "alpha": [1e-3, 1e-2, 1e-1, 1.0]}
search = GridSearchCV(
    mf, param_grid, cv=UserHoldout(test_size=0.2, random_state=0), n_jobs=1
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)

results = pd.DataFrame(search.cv_results_)
results["validation RMSE"] = -results["mean_test_score"]
results.pivot(index="param_alpha", columns="param_n_components", values="validation RMSE")

# %%
# Too little regularisation overfits (the training loss keeps falling while
# the validation error rises), too much shrinks every factor towards zero and
# leaves the biases alone. Predicting the global mean rating is the floor any
# model must beat.
baseline_rmse = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
test_rmse = -search.score(X_test, y_test)

fig, ax = plt.subplots(figsize=(6, 4))
for n_components, group in results.groupby("param_n_components"):
    ax.plot(
        group["param_alpha"].astype(float),
        group["validation RMSE"],
        marker="o",
        label=f"n_components={n_components}",
    )
ax.axhline(baseline_rmse, color="grey", linestyle="--", label="global mean rating")
ax.set_xscale("log")
ax.set_xlabel("alpha (L2 penalty)")
ax.set_ylabel("validation RMSE (lower is better)")
ax.set_title("MatrixFactorization: grid search on synthetic ratings")
ax.legend()
fig.tight_layout()

print(f"test RMSE of the refitted best model: {test_rmse:.3f}")
print(f"test RMSE of the global mean:         {baseline_rmse:.3f}")

# %%
# The default solver, with nothing to tune
# ----------------------------------------
# ``MatrixFactorization()`` samples the Bayesian model instead (10 components,
# 150 Gibbs sweeps): its regularisation adapts to the data without a search.
default = MatrixFactorization(random_state=0).fit(X_train, y_train)
print(f"test RMSE of MatrixFactorization():  {-default.score(X_test, y_test):.3f}")

# %%
# The refitted model recommends unseen items
# ------------------------------------------
# ``recommend`` returns raw item ids and scores (predicted ratings here), best
# first, leaving out the items each user rated in training.
best = search.best_estimator_
item_ids, scores = best.recommend([0, 1, 2], k=5)
pd.DataFrame(item_ids, index=pd.Index([0, 1, 2], name="user"))
