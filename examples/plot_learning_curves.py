"""
Learning curves and early stopping
==================================

Every neural recommender records its training loss per epoch in
``loss_curve_`` (the names follow scikit-learn's
:class:`~sklearn.neural_network.MLPRegressor`). With ``early_stopping=True``
it also holds out ``validation_fraction`` of each user's interactions,
records ``validation_loss_curve_``, stops after ``n_iter_no_change`` epochs
without improvement and restores the weights of the best epoch.

The curves below compare three L2 penalties ``alpha`` of
:class:`~sklearn_recsys.MatrixFactorization` on explicit ratings. The example
uses MovieLens-100K when a local copy exists in ``../shared/data`` (relative
to the repository root); otherwise it falls back to synthetic ratings from
:func:`~sklearn_recsys.datasets.make_interactions` and says so.
"""

# %%
# Data
# ----
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import fetch_movielens, make_interactions

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery runs examples from their folder, without __file__
    HERE = Path.cwd()
DATA_HOME = HERE.parent.parent / "shared" / "data"

try:
    ratings = fetch_movielens(
        "100k", data_home=DATA_HOME, download_if_missing=False
    ).interactions
    source = "MovieLens-100K"
except OSError:
    ratings = make_interactions(
        n_users=943,
        n_items=500,
        n_components=8,
        density=0.1,
        feedback="explicit",
        random_state=0,
    ).interactions
    source = "synthetic ratings (no local MovieLens-100K copy found)"
X = ratings[["user", "item"]]
y = ratings["rating"].to_numpy(dtype=np.float32)
print(f"{source}: {len(X)} ratings")

# %%
# Three fits with early stopping
# ------------------------------
# The losses include the L2 penalty ``alpha * ||factors||^2`` of the batch, so
# the curves of different ``alpha`` start at different heights.
alphas = [1e-3, 1e-1, 1.0]
models = {}
for alpha in alphas:
    models[alpha] = MatrixFactorization(
        n_components=32,
        alpha=alpha,
        max_iter=40,
        batch_size=4096,
        learning_rate_init=0.01,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=3,
        random_state=0,
    ).fit(X, y)
    print(f"alpha={alpha:g}: {models[alpha].n_iter_} epochs")

# %%
# Plot the curves
# ---------------
# The dot marks the epoch whose weights were kept. A small ``alpha`` drives
# the training loss down while the validation loss turns up after a few
# epochs (overfitting); a large one keeps both high (underfitting).
fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
for alpha, model in models.items():
    epochs = np.arange(1, model.n_iter_ + 1)
    (line,) = ax_train.plot(epochs, model.loss_curve_, label=f"alpha={alpha:g}")
    ax_valid.plot(epochs, model.validation_loss_curve_, color=line.get_color())
    best = int(np.argmin(model.validation_loss_curve_))
    ax_valid.plot(
        epochs[best], model.validation_loss_curve_[best], "o", color=line.get_color()
    )
ax_train.set_title("training loss (loss_curve_)")
ax_valid.set_title("validation loss (validation_loss_curve_)")
for ax in (ax_train, ax_valid):
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE + L2 penalty")
    ax.grid(alpha=0.3)
ax_train.legend()
fig.suptitle(f"MatrixFactorization on {source.split(' (')[0]}")
fig.tight_layout()

# %%
# Continuing a fit
# ----------------
# With ``warm_start=True`` a second ``fit`` on the same users and items
# continues from the fitted weights (``max_iter`` more epochs); ``loss_curve_``
# and ``n_iter_`` then cover all the epochs run so far.
model = MatrixFactorization(
    n_components=32, alpha=0.1, max_iter=3, batch_size=4096,
    learning_rate_init=0.01, warm_start=True, random_state=0,
)
model.fit(X, y)
first = list(model.loss_curve_)
model.fit(X, y)
print("first fit: ", np.round(first, 3))
print("second fit:", np.round(model.loss_curve_, 3), "- n_iter_ =", model.n_iter_)
