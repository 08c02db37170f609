"""
Cold-start items: recommending images nobody has clicked yet
============================================================

An id-based model such as :class:`~sklearn_recsys.MatrixFactorization` knows
nothing about an item until someone interacts with it. The hybrid
:class:`~sklearn_recsys.CNNRecommender` also reads the items' *content*
(images and/or token ids) through a CNN, so a brand-new item is scored from
its image alone.

The items here are the 1,797 handwritten digits of
:func:`sklearn.datasets.load_digits` (8x8 images). Each synthetic user likes
one or two digit classes and clicked 15 images, 10% of them at random. A
third of the images are "cold": nobody clicked them, but their images are
given to the model in an :class:`ItemContent` object. Can it recommend the
right cold digits to each user?
"""

# %%
# Users, clicks and cold items
# ----------------------------
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from sklearn_recsys import CNNRecommender, MatrixFactorization
from sklearn_recsys import ItemContent
from sklearn_recsys.metrics import precision_at_k

digits = load_digits()
images, labels = digits.images, digits.target
n_items = len(labels)
rng = np.random.RandomState(0)
perm = rng.permutation(n_items)
cold, warm = np.sort(perm[: n_items // 3]), np.sort(perm[n_items // 3 :])

n_users, n_clicks = 300, 15
liked = [rng.choice(10, rng.randint(1, 3), replace=False) for _ in range(n_users)]
rows = []
for user, classes in enumerate(liked):
    pool = warm[np.isin(labels[warm], classes)]
    clicks = np.r_[rng.choice(pool, n_clicks - 2, replace=False), rng.choice(warm, 2)]
    rows += [(user, item) for item in np.unique(clicks)]
X = pd.DataFrame(rows, columns=["user", "item"])

# The content covers every item, the cold ones included: they join the fitted
# item space with their images and no interaction.
content = ItemContent(np.arange(n_items), images=images)
print(content)
print(f"{len(X)} clicks on {X['item'].nunique()} warm items; {len(cold)} cold items")

# %%
# Fit the hybrid CNN and an id-only MF
# ------------------------------------
# ``id_dropout`` randomly hides the id embedding of items during training so
# that the image path learns to score items on its own, as it must for cold
# items.
cnn = CNNRecommender(
    item_content=content,
    conv_channels=(8, 16),
    dense_size=32,
    n_components=16,
    id_dropout=0.5,
    max_iter=10,
    batch_size=256,
    learning_rate_init=0.01,
    random_state=0,
).fit(X)
mf = MatrixFactorization(
    loss="bce", n_components=16, max_iter=10, learning_rate_init=0.02, random_state=0
).fit(X)
print("items without any click (cold_item_ids_):", len(cnn.cold_item_ids_))

# %%
# Rank the cold items for every user
# ----------------------------------
# ``items=`` restricts the candidates to the cold items. MF has no vector for
# them: every cold item gets the same fallback score, so its ranking is
# arbitrary.
users = np.arange(n_users)
relevance = np.array([np.isin(labels[cold], classes) for classes in liked])
scores = {
    "CNNRecommender": cnn.predict(
        pd.DataFrame({"user": np.repeat(users, len(cold)), "item": np.tile(cold, n_users)})
    ).reshape(n_users, len(cold)),
    "MatrixFactorization": mf.predict(
        pd.DataFrame({"user": np.repeat(users, len(cold)), "item": np.tile(cold, n_users)})
    ).reshape(n_users, len(cold)),
    "random": rng.rand(n_users, len(cold)),
}
precision = {
    name: precision_at_k(relevance, s, k=10) for name, s in scores.items()
}
pd.Series(precision, name="precision@10 among cold items").round(3).to_frame()

# %%
# What the CNN recommends
# -----------------------
# The top 6 cold images for four users, with the digit classes they like.
item_ids, _ = cnn.recommend(users[:4], k=6, items=cold)
fig, axes = plt.subplots(4, 6, figsize=(6.5, 5.2))
for row, user in enumerate(users[:4]):
    for col, item in enumerate(item_ids[row]):
        ax = axes[row, col]
        ax.imshow(images[item], cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(f"user {user}\nlikes {sorted(liked[user].tolist())}", fontsize=8)
fig.suptitle("Top 6 cold (never clicked) digits recommended by CNNRecommender")
fig.tight_layout()

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.barh(list(precision), list(precision.values()), color=["tab:blue", "tab:gray", "tab:gray"])
for y, value in enumerate(precision.values()):
    ax.text(value + 0.01, y, f"{value:.2f}", va="center")
ax.set_xlim(0, 1.1)
ax.invert_yaxis()
ax.set_xlabel("precision@10 among the cold items")
ax.set_title("Cold-start ranking from content")
fig.tight_layout()
