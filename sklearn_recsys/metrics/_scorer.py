"""Ranking scorers that plug into ``GridSearchCV(scoring=...)``.

A scorer ranks items with the fitted estimator's ``recommend`` and compares
the top-k lists with the held-out interactions of the test fold:

* **interaction table** (``X_test`` a DataFrame): the relevant items of a user
  are its rows in ``X_test``; its items seen at fit are excluded from the
  ranking (and from the relevant set) when ``exclude_seen=True``. Users unseen
  at fit follow the estimator's ``handle_unknown`` policy.
* **user x item matrix** (``X_test`` rows are held-out users, the
  "strong generalization" protocol of :class:`~sklearn_recsys.model_selection.UserKFold`):
  each row's stored entries are split at random; ``1 - holdout_fraction`` of
  them are folded in as the user's history, the rest are the relevant items.
  Rows with fewer than two entries are skipped.
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._ranking import _METRICS, _per_user_metric_from_topk

__all__ = ["make_ranking_scorer"]


def split_rows(H, holdout_fraction, random_state=0):
    """Split each row's stored entries into a fold-in part and a held-out part.

    Every row with at least two entries keeps at least one entry on each side
    (``round(holdout_fraction * n)`` held out, clipped to ``[1, n - 1]``);
    rows with fewer entries are left whole in the fold-in part.

    Returns
    -------
    fold_in, held_out : scipy.sparse.csr_array
        Same shape as ``H``; disjoint, their sum is ``H``.
    """
    H = sp.csr_array(H)
    H.sort_indices()
    counts = np.diff(H.indptr)
    rng = check_random_state(random_state)
    rows = np.repeat(np.arange(H.shape[0]), counts)
    order = np.lexsort((rng.rand(H.nnz), rows))
    rank = np.empty(H.nnz, dtype=np.int64)
    rank[order] = np.arange(H.nnz) - np.repeat(H.indptr[:-1], counts)
    n_out = np.clip(np.rint(holdout_fraction * counts), 1, counts - 1)
    n_out[counts < 2] = 0
    out = rank < np.repeat(n_out, counts)

    def part(mask):
        return sp.csr_array(
            (H.data[mask], (rows[mask], H.indices[mask])), shape=H.shape
        )

    return part(~out), part(out)


def _table_relevance(estimator, X, y, relevance_threshold, exclude_seen):
    user_col, item_col = estimator.user_col, estimator.item_col
    for col, param in ((user_col, "user_col"), (item_col, "item_col")):
        if col not in X.columns:
            raise ValueError(
                f"The test table has no column {col!r} (the estimator's "
                f"{param}); columns: {list(X.columns)}."
            )
    keep = np.ones(len(X), dtype=bool)
    if relevance_threshold is not None:
        if y is None:
            raise ValueError("relevance_threshold needs the test targets y.")
        keep = np.asarray(y, dtype=float) >= relevance_threshold
    users = X[user_col].to_numpy()[keep]
    items = X[item_col].to_numpy()[keep]
    if exclude_seen:
        u_idx = estimator._user_index.transform(users)
        i_idx = estimator._item_index.transform(items)
        known = (u_idx >= 0) & (i_idx >= 0)
        seen = np.zeros(len(users), dtype=bool)
        seen[known] = estimator._seen[u_idx[known], i_idx[known]] > 0
        users, items = users[~seen], items[~seen]
    return users, items


def _relevance_csr(row_codes, item_codes, shape):
    data = np.ones(len(row_codes), dtype=np.float32)
    rel = sp.csr_array((data, (row_codes, item_codes)), shape=shape)
    rel.sum_duplicates()
    return rel


def ranking_score(
    estimator,
    X,
    y=None,
    *,
    metric="ndcg",
    k=10,
    exclude_seen=True,
    holdout_fraction=0.2,
    relevance_threshold=None,
    random_state=0,
):
    """Mean per-user ranking metric of ``estimator`` on a test fold.

    See :func:`make_ranking_scorer` for the protocol. A
    :class:`~sklearn.pipeline.Pipeline` is scored through its final
    recommender, on ``X`` transformed by the preceding steps.
    """
    if isinstance(estimator, Pipeline):
        if len(estimator) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    if not hasattr(estimator, "recommend"):
        raise TypeError(
            "A ranking scorer needs a recommender with a recommend method (or a "
            f"Pipeline ending in one); got {type(estimator).__name__}."
        )
    if isinstance(X, pd.DataFrame):
        users, items = _table_relevance(
            estimator, X, y, relevance_threshold, exclude_seen
        )
        if len(users) == 0:
            raise ValueError("The test fold has no relevant interaction to rank.")
        user_codes, user_labels = pd.factorize(users)
        rec_ids, rec_scores = estimator.recommend(
            user_labels, k=k, exclude_seen=exclude_seen
        )
        codes, uniques = pd.factorize(np.concatenate([items, rec_ids.ravel()]))
        item_codes = codes[: len(items)]
        topk = codes[len(items) :].reshape(rec_ids.shape)
        rel = _relevance_csr(user_codes, item_codes, (len(user_labels), len(uniques)))
    else:
        H = estimator._check_matrix(X, reset=False)
        fold_in, held_out = split_rows(H, holdout_fraction, random_state)
        if relevance_threshold is not None:
            held_out.data = (held_out.data >= relevance_threshold).astype(np.float32)
            held_out.eliminate_zeros()
        rows = np.flatnonzero(np.diff(held_out.indptr) > 0)
        if len(rows) == 0:
            raise ValueError(
                "No test row has two or more stored entries to split into a "
                "fold-in history and held-out items."
            )
        rec_ids, rec_scores = estimator.recommend(
            fold_in[rows], k=k, exclude_seen=exclude_seen
        )
        # raw item ids back to column positions (ids of a table-fitted model
        # need not be 0..n_items-1)
        topk = estimator._item_index.transform(rec_ids.ravel()).reshape(rec_ids.shape)
        rel = sp.csr_array(held_out[rows])
    topk = np.where(np.isneginf(rec_scores), -1, topk)
    values = _per_user_metric_from_topk(metric, topk, rel, k)
    return float(np.nanmean(values))


class _RankingScorer:
    """Callable ``scorer(estimator, X, y=None) -> float`` (greater is better)."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs

    def __call__(self, estimator, X, y=None):
        return ranking_score(estimator, X, y, **self._kwargs)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"make_ranking_scorer({args})"


@validate_params(
    {
        "metric": [StrOptions(set(_METRICS))],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "exclude_seen": ["boolean"],
        "holdout_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "relevance_threshold": [numbers.Real, None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ranking_scorer(
    metric="ndcg",
    k=10,
    *,
    exclude_seen=True,
    holdout_fraction=0.2,
    relevance_threshold=None,
    random_state=0,
):
    """Make a scorer that ranks items with a fitted recommender.

    The scorer is a callable ``scorer(estimator, X, y=None)`` returning the
    mean per-user metric (greater is better), usable as
    ``GridSearchCV(..., scoring=scorer)`` or in ``cross_validate``. Users of
    the test fold without a relevant item are skipped.

    * **Interaction table** test fold: a user's relevant items are its test
      rows (those with ``y >= relevance_threshold`` when a threshold is
      given); items it interacted with at fit are excluded from the ranking
      and from the relevant set when ``exclude_seen=True``.
    * **User x item matrix** test fold (held-out users, strong
      generalization): each row's stored entries are split at random
      (``random_state``); ``holdout_fraction`` of them are the relevant items,
      the rest are folded in as the user's history and excluded from the
      ranking.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate", "mrr", "map"}, default="ndcg"
        Ranking metric, as in :mod:`sklearn_recsys.metrics`.
    k : int, default=10
        Length of the recommendation lists.
    exclude_seen : bool, default=True
        Rank only items the user has not interacted with at fit / in the
        folded-in history.
    holdout_fraction : float, default=0.2
        Matrix test folds: fraction of each row's entries held out.
    relevance_threshold : float, default=None
        When given, only test interactions whose target (``y`` for a table,
        the stored value for a matrix) is at least this value are relevant.
    random_state : int, RandomState instance or None, default=0
        Seed of the row split for matrix test folds.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import MatrixFactorization
    >>> from sklearn_recsys.metrics import make_ranking_scorer
    >>> train = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 20, 10, 30, 20]})
    >>> test = pd.DataFrame({"user": [1, 3], "item": [30, 10]})
    >>> mf = MatrixFactorization(loss="bpr", n_components=2, max_iter=3,
    ...                          random_state=0).fit(train)
    >>> scorer = make_ranking_scorer("hit_rate", k=2)
    >>> scorer(mf, test)
    1.0
    """
    return _RankingScorer(
        metric=metric,
        k=k,
        exclude_seen=exclude_seen,
        holdout_fraction=holdout_fraction,
        relevance_threshold=relevance_threshold,
        random_state=random_state,
    )
