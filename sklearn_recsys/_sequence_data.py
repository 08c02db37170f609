"""The sequence data path of the sequential recommenders.

* **order** -- an interaction table is ordered by its time column (ties keep
  their row order); without one, the row order is the order. A user x item
  matrix is ordered by its stored values: a smaller value is an earlier
  interaction (ties by column index), so a matrix of timestamps or ranks
  works as it is;
* **sequences** -- each user's history is stored as a row of item indices
  shifted by one (item ``i`` becomes ``i + 1``), left-padded with the padding
  index 0, most recent item last;
* **training rows** -- built once as arrays (then tensors on the training
  device) by :func:`training_sequences`.
"""

import numpy as np
import pandas as pd

from ._input import Interactions, check_ids


def order_histories(users, items, keys, n_users):
    """Group interactions by user, each user's items in ``keys`` order.

    Parameters
    ----------
    users, items : ndarray of shape (n_interactions,)
        Non-negative int64 indices.
    keys : ndarray of shape (n_interactions,) or None
        Sort keys within a user (times, or matrix values); ties keep the
        given order. None keeps the given order.
    n_users : int

    Returns
    -------
    flat : ndarray of shape (n_interactions,)
        Items, grouped by user, oldest first.
    indptr : ndarray of shape (n_users + 1,)
        User ``u``'s history is ``flat[indptr[u]:indptr[u + 1]]``.
    """
    if keys is None:
        order = np.argsort(users, kind="stable")
    else:
        order = np.lexsort((np.arange(len(users)), keys, users))
    counts = np.bincount(users, minlength=n_users)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return np.asarray(items, dtype=np.int64)[order], indptr


def left_padded(flat, starts, ends, max_len):
    """Windows ``flat[starts:ends]`` as left-padded rows of shifted items.

    Each row keeps the ``max_len`` last items of its window, stored as
    ``item + 1`` and right-aligned; the rest is the padding index 0.

    Returns
    -------
    seqs : ndarray of shape (n_rows, max_len)
    """
    starts, ends = np.asarray(starts), np.asarray(ends)
    lengths = np.clip(np.minimum(ends - starts, max_len), 0, None)
    out = np.zeros((len(ends), max_len), dtype=np.int64)
    total = int(lengths.sum())
    if total:
        rows = np.repeat(np.arange(len(ends)), lengths)
        offset = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = max_len - np.repeat(lengths, lengths) + offset
        src = np.repeat(ends - lengths, lengths) + offset
        out[rows, cols] = flat[src] + 1
    return out


def training_sequences(flat, indptr, max_len, valid_users=()):
    """Training rows (inputs and next-item targets) of every history.

    A user with ``c >= 2`` interactions gives one row: its history without
    the last item as input, without the first one as targets (both cut to
    their ``max_len`` most recent positions). A user of ``valid_users``
    (``c >= 3`` required) gives its last item to validation instead: its
    training row stops one item earlier, and a validation row holds the
    history without the last item as input and the last item as the only
    target.

    Returns
    -------
    users, seqs, targets : ndarrays of shape (n_rows,), (n_rows, max_len), (n_rows, max_len)
        Training rows first, then the validation rows.
    n_train : int
        Number of training rows.
    """
    n_users = len(indptr) - 1
    starts, ends = indptr[:-1].copy(), indptr[1:].copy()
    is_valid = np.zeros(n_users, dtype=bool)
    is_valid[np.asarray(valid_users, dtype=np.int64)] = True
    train_ends = ends - is_valid
    train_users = np.flatnonzero(train_ends - starts >= 2)
    s, e = starts[train_users], train_ends[train_users]
    seqs = left_padded(flat, s, e - 1, max_len)
    targets = left_padded(flat, s + 1, e, max_len)
    users = train_users
    n_train = len(train_users)
    valid = np.flatnonzero(is_valid)
    if len(valid):
        s, e = starts[valid], ends[valid]
        v_seqs = left_padded(flat, s, e - 1, max_len)
        v_targets = np.zeros_like(v_seqs)
        v_targets[:, -1] = flat[e - 1] + 1
        users = np.r_[users, valid]
        seqs = np.r_[seqs, v_seqs]
        targets = np.r_[targets, v_targets]
    return users, seqs, targets, n_train


def is_history_list(X):
    """Whether ``X`` is a list of histories (lists of item ids)."""
    return (
        isinstance(X, (list, tuple))
        and len(X) > 0
        and all(isinstance(h, (list, tuple, np.ndarray, pd.Series)) for h in X)
    )




def history_lists(X, item_index):
    """Interactions of a list of histories (lists of raw item ids, oldest first).

    Returns
    -------
    histories : Interactions
        ``users`` is the position of the history in ``X``, ``items`` the item
        indices (``-1`` for ids unknown to ``item_index``), in list order.
    raw_items : ndarray of shape (n_interactions,)
        The raw item ids, flattened.
    """
    raw = [check_ids(h, f"History {i}") for i, h in enumerate(X)]
    lengths = np.array([len(h) for h in raw], dtype=np.int64)
    flat_raw = np.empty(int(lengths.sum()), dtype=object)
    flat_raw[:] = [v for h in raw for v in h.tolist()]
    items = item_index.transform(flat_raw) if len(flat_raw) else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(raw), dtype=np.int64), lengths)
    return Interactions(rows, items, None, n_rows=len(raw)), flat_raw


def ordered(histories, keys=None):
    """``(flat, indptr)`` of an :class:`Interactions` record of histories.

    Each row's items are ordered by ``keys`` (by default the record's times;
    the given order when there are none), see :func:`order_histories`.
    """
    keys = histories.times if keys is None else keys
    return order_histories(histories.users, histories.items, keys, histories.n_rows)
