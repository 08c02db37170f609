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


def order_histories(users, items, keys, n_users, weights=None):
    """Group interactions by user, each user's items in ``keys`` order.

    Parameters
    ----------
    users, items : ndarray of shape (n_interactions,)
        Non-negative int64 indices.
    keys : ndarray of shape (n_interactions,) or None
        Sort keys within a user (times, or matrix values); ties keep the
        given order. None keeps the given order.
    n_users : int
    weights : ndarray of shape (n_interactions,), default=None
        Per-interaction weights, reordered like the items.

    Returns
    -------
    flat : ndarray of shape (n_interactions,)
        Items, grouped by user, oldest first.
    indptr : ndarray of shape (n_users + 1,)
        User ``u``'s history is ``flat[indptr[u]:indptr[u + 1]]``.
    flat_weights : ndarray of shape (n_interactions,)
        Only when ``weights`` is given: the weights in the order of ``flat``.
    """
    if keys is None:
        order = np.argsort(users, kind="stable")
    else:
        order = np.lexsort((np.arange(len(users)), keys, users))
    counts = np.bincount(users, minlength=n_users)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    flat = np.asarray(items, dtype=np.int64)[order]
    return (flat, indptr) if weights is None else (flat, indptr, weights[order])


def left_padded(flat, starts, ends, max_len, shift=1):
    """Windows ``flat[starts:ends]`` as left-padded rows of shifted items.

    Each row keeps the ``max_len`` last items of its window, stored as
    ``item + shift`` and right-aligned; the rest is the padding index 0.
    (``shift=0`` pads other per-position values, e.g. weights, alike.)

    Returns
    -------
    seqs : ndarray of shape (n_rows, max_len)
        Of ``flat``'s dtype.
    """
    starts, ends = np.asarray(starts), np.asarray(ends)
    lengths = np.clip(np.minimum(ends - starts, max_len), 0, None)
    out = np.zeros((len(ends), max_len), dtype=np.int64 if shift else flat.dtype)
    total = int(lengths.sum())
    if total:
        rows = np.repeat(np.arange(len(ends)), lengths)
        offset = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = max_len - np.repeat(lengths, lengths) + offset
        src = np.repeat(ends - lengths, lengths) + offset
        out[rows, cols] = flat[src] + shift
    return out


def training_windows(starts, ends, max_len, min_windows=0):
    """Windows covering every next-item target of each history once.

    A history ``flat[starts[u]:ends[u]]`` of ``c`` items has ``c - 1``
    targets (every item but the first); they are cut into windows of at most
    ``max_len`` targets, the most recent window first, so that training sees
    every position of long histories at a cost linear in their length.
    ``min_windows=1`` gives a history of one item an (empty) window too.

    Returns
    -------
    users, t_start, t_end : ndarrays of shape (n_windows,)
        The history and the half-open range of target positions of each
        window; its inputs are the positions ``t_start - 1 .. t_end - 2``.
    """
    n_targets = np.maximum(ends - starts - 1, 0)
    n_windows = -(-n_targets // max_len)
    if min_windows:
        n_windows = np.where(ends > starts, np.maximum(n_windows, min_windows), 0)
    users = np.repeat(np.arange(len(starts)), n_windows)
    rank = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    t_end = ends[users] - rank * max_len
    t_start = np.maximum(starts[users] + 1, t_end - max_len)
    return users, t_start, t_end


def training_sequences(flat, indptr, max_len, valid_users=(), flat_weights=None,
                       token_targets=0):
    """Training rows (inputs and next-item targets) of every history.

    A user with ``c >= 2`` interactions gives ``ceil((c - 1) / max_len)``
    rows (:func:`training_windows`): each holds up to ``max_len`` consecutive
    items as input and the items that follow them as targets. A user of
    ``valid_users`` (``c >= 3`` required) gives its last item to validation
    instead: its training rows stop one item earlier, and a validation row
    holds its ``max_len`` items before the last one as input and the last
    item as the only target.

    ``flat_weights`` (the interactions' sample weights, in the order of
    ``flat``) adds the weight of every target, zero at padded positions.

    ``token_targets`` (the user token of user attributes): ``targets`` get
    that many leading columns, the targets of the state read before any
    item: the user's first item in every training row (the fit draws other
    items of the user at every batch, see
    :class:`~sklearn_recsys._objectives.UserTokenTargets`), 0 in the
    validation rows; their weight is the mean weight of the user's training
    interactions. A user with a single interaction then gives a row too (no
    input, that item as the token's target).

    Returns
    -------
    users, seqs, targets : ndarrays of shape (n_rows,), (n_rows, max_len), (n_rows, max_len)
        Training rows first, then the validation rows (``targets`` of
        ``token_targets + max_len`` columns).
    n_train : int
        Number of training rows.
    weights : ndarray of shape (n_rows, max_len)
        Only with ``flat_weights``: the weight of each target (as many
        columns as ``targets``).
    """
    n_users = len(indptr) - 1
    starts, ends = indptr[:-1].copy(), indptr[1:].copy()
    is_valid = np.zeros(n_users, dtype=bool)
    is_valid[np.asarray(valid_users, dtype=np.int64)] = True
    users, t_start, t_end = training_windows(
        starts, ends - is_valid, max_len, min_windows=int(token_targets > 0)
    )
    seqs = left_padded(flat, t_start - 1, t_end - 1, max_len)
    targets = left_padded(flat, t_start, t_end, max_len)
    weights = None
    if flat_weights is not None:
        weights = left_padded(flat_weights, t_start, t_end, max_len, shift=0)
    if token_targets:
        first = np.repeat((flat[starts[users]] + 1)[:, None], token_targets, axis=1)
        targets = np.c_[first, targets]
        if weights is not None:  # the mean weight of the user's training items
            counts = ends - is_valid - starts
            owner = np.repeat(np.arange(n_users), ends - starts)
            training = np.arange(len(flat)) < (ends - is_valid)[owner]
            means = np.bincount(owner[training], weights=flat_weights[training],
                                minlength=n_users) / np.maximum(counts, 1)
            mean = means[users].astype(weights.dtype)[:, None]
            weights = np.c_[np.repeat(mean, token_targets, axis=1), weights]
    n_train = len(users)
    valid = np.flatnonzero(is_valid)
    if len(valid):
        s, e = starts[valid], ends[valid]
        v_seqs = left_padded(flat, s, e - 1, max_len)
        v_targets = np.zeros((len(valid), targets.shape[1]), dtype=v_seqs.dtype)
        v_targets[:, -1] = flat[e - 1] + 1
        users = np.r_[users, valid]
        seqs = np.r_[seqs, v_seqs]
        targets = np.r_[targets, v_targets]
        if weights is not None:
            v_weights = np.zeros(v_targets.shape, dtype=weights.dtype)
            v_weights[:, -1] = flat_weights[e - 1]
            weights = np.r_[weights, v_weights]
    if weights is None:
        return users, seqs, targets, n_train
    return users, seqs, targets, n_train, weights


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
