"""
Privacy and utility: NDCG@10 against epsilon
============================================

With ``differential_privacy=DifferentialPrivacy(epsilon=...)``, a
:class:`~sklearn_recsys.MatrixFactorization` (``loss="softmax"``) trains with
user-level DP-SGD: each step samples users at random, clips each sampled
user's gradient and adds Gaussian noise, calibrated so that the whole fit
spends exactly ``epsilon`` (at ``delta = 1 / n_users`` by default). A smaller
``epsilon`` is a stronger guarantee and costs more noise, hence quality.

This example fits the same model at several budgets on synthetic data from
:func:`~sklearn_recsys.datasets.make_interactions` and plots NDCG@10 on a
per-user holdout against epsilon, with the non-private model and the
popularity baseline as references. See :ref:`privacy` for what the
guarantee covers and for the same curve on MovieLens-100K.
"""

# %%
# Data and split
# --------------
# 1,000 synthetic users with about 10 interactions each among 100 items;
# 20% of each user's interactions are held out for scoring. DP-SGD averages
# the noise over the users of a step: it needs many users, and the more the
# better (the curve on MovieLens-100K is in :ref:`privacy`).
import matplotlib.pyplot as plt

from sklearn_recsys import DifferentialPrivacy, MatrixFactorization, Popularity
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserHoldout

X = make_interactions(
    n_users=1000, n_items=100, n_components=4, density=0.1,
    popularity_exponent=0.5, random_state=0,
).interactions[["user", "item"]]
train_rows, test_rows = next(UserHoldout(test_size=0.2, random_state=0).split(X))
train, test = X.iloc[train_rows], X.iloc[test_rows]
ndcg_at_10 = make_ranking_scorer("ndcg", k=10)
print(f"{len(train)} training and {len(test)} test interactions")

# %%
# The references
# --------------
# The model without differential privacy (package defaults), and the most
# popular items.
non_private = ndcg_at_10(
    MatrixFactorization(loss="softmax", random_state=0).fit(train), test
)
popularity = ndcg_at_10(Popularity().fit(train), test)
print(f"non-private NDCG@10 {non_private:.3f}, popularity {popularity:.3f}")

# %%
# Private fits
# ------------
# Each fit spends exactly its budget: ``epsilon_`` reports what it spent,
# ``noise_multiplier_`` the noise it took (relative to ``max_grad_norm``).
# Each user's gradient is clipped to ``max_grad_norm=0.03`` and each step
# samples users with probability ``sample_rate=0.1``. A private fit is slower
# than a plain one (it computes each sampled user's gradient separately), so
# the example trains only 4 epochs, with a larger learning rate than the
# default; DP-SGD profits from one (on MovieLens, 0.01 with the default 30
# epochs).
epsilons = [0.5, 2, 8, 32]
scores = []
for epsilon in epsilons:
    model = MatrixFactorization(
        loss="softmax",
        max_iter=4,
        learning_rate_init=0.03,
        differential_privacy=DifferentialPrivacy(
            epsilon=epsilon, max_grad_norm=0.03, sample_rate=0.1
        ),
        random_state=0,
    ).fit(train)
    scores.append(ndcg_at_10(model, test))
    print(
        f"epsilon={epsilon:<4g} NDCG@10 {scores[-1]:.3f}  "
        f"(epsilon_={model.epsilon_:.2f}, noise_multiplier_="
        f"{model.noise_multiplier_:.2f})"
    )

# %%
# The curve
# ---------
# Utility grows with the budget towards the non-private level; at small
# budgets the noise drowns the item factors and the model falls back towards
# popularity. A budget of 32 is a weak guarantee, shown for the trend.
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(epsilons, scores, "o-", label="MatrixFactorization, DP-SGD")
ax.axhline(non_private, color="tab:green", linestyle="--", label="not private")
ax.axhline(popularity, color="tab:gray", linestyle=":", label="popularity")
ax.set_xscale("log", base=2)
ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
ax.set_xlabel("privacy budget epsilon (delta = 1 / n_users)")
ax.set_ylabel("NDCG@10 on held-out interactions")
ax.set_title("Privacy against utility, synthetic data")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
