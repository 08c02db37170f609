"""
A map of the learned item embeddings
====================================

:func:`~sklearn_recsys.datasets.make_interactions` plants a latent structure:
every item gets a vector of ``n_components`` factors and a popularity, and
users pick items whose factors match theirs. With two planted factors the
items lie on a plane; here we check that
:class:`~sklearn_recsys.MatrixFactorization`, fitted on the clicks alone,
recovers that plane in ``item_embeddings_``.

The learned embeddings have more dimensions (16) and an arbitrary rotation,
so we project them with a :class:`~sklearn.decomposition.PCA` and colour
every item by the *angle* of its planted factors: if the structure is
recovered, the colours form the same wheel in both maps.
"""

# %%
# Fit implicit MF on the clicks
# -----------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import make_interactions

data = make_interactions(
    n_users=1000,
    n_items=300,
    n_components=2,
    density=0.05,
    popularity_exponent=0.5,
    random_state=0,
)
X = data.interactions[["user", "item"]]
mf = MatrixFactorization(
    n_components=16,
    loss="bce",
    alpha=1e-3,
    max_iter=15,
    learning_rate_init=0.02,
    random_state=0,
).fit(X)

# Rows of item_embeddings_ follow item_ids_ (here the ids are 0..n_items-1).
planted = data.item_factors[mf.item_ids_]
popularity = data.item_popularity[mf.item_ids_]
learned = mf.item_embeddings_
print("item_embeddings_:", learned.shape)

# %%
# How much of the planted factors is linearly recoverable?
# ---------------------------------------------------------
# A cross-validated linear regression from the 16 learned dimensions to the
# 2 planted ones; R^2 = 1 would be a perfect recovery up to a linear map.
r2 = cross_val_score(LinearRegression(), learned, planted, cv=5, scoring="r2")
print(f"cross-validated R^2 (learned -> planted factors): {r2.mean():.2f}")

# %%
# Planted factors next to the PCA map of the learned embeddings
# -------------------------------------------------------------
angle = np.arctan2(planted[:, 1], planted[:, 0])
size = 8 + 400 * popularity / popularity.max()
projected = PCA(n_components=2, random_state=0).fit_transform(learned)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
for ax, points, title, labels in [
    (axes[0], planted, "planted item factors", ("factor 1", "factor 2")),
    (axes[1], projected, "learned item_embeddings_ (PCA)", ("PC 1", "PC 2")),
]:
    sc = ax.scatter(
        points[:, 0], points[:, 1], c=angle, cmap="hsv", s=size, alpha=0.8,
        edgecolors="none",
    )
    ax.set_title(title)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="datalim")
cbar = fig.colorbar(sc, ax=axes, shrink=0.9)
cbar.set_label("angle of the planted factors (radians)")
fig.suptitle(
    f"Marker size = item popularity; linear recovery R$^2$ = {r2.mean():.2f}"
)

# %%
# Neighbours in the embedding space
# ---------------------------------
# ``similar_items`` ranks items by the cosine similarity of their embeddings;
# the neighbours of an item should have nearby planted angles.
query = int(np.argmax(popularity))
neighbours, similarity = mf.similar_items([mf.item_ids_[query]], k=5)
print(f"item {mf.item_ids_[query]} (planted angle {angle[query]:+.2f} rad)")
for item, sim in zip(neighbours[0], similarity[0]):
    print(f"  item {item:3d}: cosine {sim:.2f}, planted angle {angle[item]:+.2f} rad")
