"""Ranking evaluation of a fitted recommender on a test fold.

The core of :func:`~sklearn_recsys.metrics.make_ranking_scorer` and of the
estimators' ``score``: it ranks items with the estimator's ``recommend`` and
compares the top-k lists with the held-out interactions (see the scorer for
the protocol). It drives any recommender through its public API and the
fitted id maps, and imports no estimator.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight

from ._input import _column, as_input, check_ids
from ._ranking import _per_user_metric_from_topk

__all__ = ["ranking_score", "split_rows"]


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
    test_users = check_ids(
        _column(X, user_col, "user_col").to_numpy(), f"Test column {user_col!r}"
    )
    test_items = check_ids(
        _column(X, item_col, "item_col").to_numpy(), f"Test column {item_col!r}"
    )
    keep = np.ones(len(X), dtype=bool)
    if relevance_threshold is not None:
        if y is None:
            raise ValueError("relevance_threshold needs the test targets y.")
        keep = np.asarray(y, dtype=float) >= relevance_threshold
    rows = np.flatnonzero(keep)
    users, items = test_users[rows], test_items[rows]
    if exclude_seen:
        u_idx = estimator._user_index.transform(users)
        i_idx = estimator._item_index.transform(items)
        known = np.flatnonzero((u_idx >= 0) & (i_idx >= 0))
        seen = np.zeros(len(users), dtype=bool)
        if len(known):
            pairs = estimator._seen[u_idx[known], i_idx[known]]
            seen[known] = np.asarray(pairs).ravel() > 0
        users, items, rows = users[~seen], items[~seen], rows[~seen]
    return users, items, rows


def _relevance_csr(row_codes, item_codes, shape):
    data = np.ones(len(row_codes), dtype=np.float32)
    rel = sp.csr_array((data, (row_codes, item_codes)), shape=shape)
    rel.sum_duplicates()
    return rel


def ranking_score(
    estimator, X, y=None, *, metric="ndcg", k=10, exclude_seen=True,
    holdout_fraction=0.2, relevance_threshold=None, random_state=0, sample_weight=None,
):
    """Mean per-user ranking metric of ``estimator`` on a test fold.

    See :func:`~sklearn_recsys.metrics.make_ranking_scorer` for the
    protocol. A :class:`~sklearn.pipeline.Pipeline` is scored through its
    final recommender, on ``X`` transformed by the preceding steps. A fold
    with nothing to rank (no relevant interaction left) scores NaN, without
    a warning. ``sample_weight`` (one per row of ``X``) weights the users'
    metrics: a table row's weight goes to its user (the mean over the
    user's relevant rows), a matrix row is a user.
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
    X = as_input(X)
    weights = None if sample_weight is None else _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if isinstance(X, pd.DataFrame):
        ranked = _table_ranking(
            estimator, X, y, k, exclude_seen, relevance_threshold, weights
        )
    else:
        ranked = _matrix_ranking(
            estimator, X, k, exclude_seen, holdout_fraction, relevance_threshold,
            random_state, weights,
        )
    if ranked is None:
        return float("nan")
    topk, rel, user_weights = ranked
    values = _per_user_metric_from_topk(metric, topk, rel, k)
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if user_weights is None:
        return float(values[keep].mean())
    return float(np.average(values[keep], weights=user_weights[keep]))


def _table_ranking(estimator, X, y, k, exclude_seen, relevance_threshold, weights):
    """Top-k lists (as codes, -1 = none), relevance and user weights of a table."""
    users, items, rows = _table_relevance(estimator, X, y, relevance_threshold, exclude_seen)
    if len(users) == 0:
        return None
    user_codes, user_labels = pd.factorize(users)
    user_weights = None
    if weights is not None:  # a user's weight: the mean of its rows'
        total = np.bincount(user_codes, weights=weights[rows], minlength=len(user_labels))
        user_weights = total / np.bincount(user_codes, minlength=len(user_labels))
    rec_ids, rec_scores = estimator.recommend(user_labels, k=k, exclude_seen=exclude_seen)
    codes, uniques = pd.factorize(np.concatenate([items, rec_ids.ravel()]))
    topk = codes[len(items) :].reshape(rec_ids.shape)
    rel = _relevance_csr(user_codes, codes[: len(items)], (len(user_labels), len(uniques)))
    return np.where(np.isneginf(rec_scores), -1, topk), rel, user_weights


def _matrix_ranking(
    estimator, X, k, exclude_seen, holdout_fraction, relevance_threshold, random_state,
    weights,
):
    """Top-k lists (column indices, -1 = none), relevance and weights of a matrix."""
    H = estimator._check_matrix(X, reset=False)
    fold_in, held_out = split_rows(H, holdout_fraction, random_state)
    if relevance_threshold is not None:
        held_out.data = (held_out.data >= relevance_threshold).astype(np.float32)
        held_out.eliminate_zeros()
    rows = np.flatnonzero(np.diff(held_out.indptr) > 0)
    if len(rows) == 0:
        return None
    rec_ids, rec_scores = estimator.recommend(fold_in[rows], k=k, exclude_seen=exclude_seen)
    # raw item ids back to column positions (ids of a table-fitted model
    # need not be 0..n_items-1)
    topk = estimator._item_index.transform(rec_ids.ravel()).reshape(rec_ids.shape)
    rel = sp.csr_array(held_out[rows])
    return np.where(np.isneginf(rec_scores), -1, topk), rel, None if weights is None else weights[rows]
