"""Sequential recommenders: ``LSTMRecommender`` and ``AttentionRecommender``.

Both models read each user's interactions as a sequence ordered in time and
learn to predict the next item. They share one data path (this module) and
one encoder protocol (:mod:`sklearn_recsys.nn._sequence`):

* **order** -- an interaction table is ordered by its ``time_col`` column
  (ties keep their row order); without that column, the row order is the
  order. A user x item matrix is ordered by its stored values: a smaller
  value is an earlier interaction (ties by column index), so a matrix of
  timestamps or ranks works as it is;
* **sequences** -- each user's history, truncated to its ``max_len`` most
  recent items, is stored as a row of item indices shifted by one (item
  ``i`` becomes ``i + 1``) and left-padded with the padding index 0;
* **training** -- one row per user with at least two interactions: the
  history without its last item as input and the history without its first
  item as targets (the next item at every position). Padded positions carry
  no target and are left out of the loss. The rows are built once as tensors
  on the training device and sliced per batch by the shared training core.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from ._base import _SCORE_BLOCK, BaseRecommender
from ._input import IdIndex, is_table, table_to_interactions
from ._neural import NeuralRecommenderMixin
from ._training import NegativeSampler, TensorDataset
from .nn._sequence import LSTMEncoder, SelfAttentionEncoder

__all__ = ["AttentionRecommender", "LSTMRecommender"]

# Sequences encoded at once when computing user representations.
_ENCODE_BLOCK = 256


# ---------------------------------------------------------------------------
# The sequence data path
# ---------------------------------------------------------------------------


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


class SequenceNegativeSampler(NegativeSampler):
    """Negatives for every position of a batch of sequences, on the device.

    Adds ``neg_items`` of shape ``(B, L, n_negatives)`` (0-based item
    indices drawn uniformly among the items the user never interacted with
    in training) and removes ``users`` from the batch. With
    ``n_negatives=0`` only ``users`` is removed (full-softmax training).
    """

    def __call__(self, batch, generator):
        users = batch.pop("users")
        if self.n_negatives:
            batch_size, length = batch["targets"].shape
            negs = self.sample(users.repeat_interleave(length), generator)
            batch["neg_items"] = negs.view(batch_size, length, self.n_negatives)
        return batch


class SequenceLoss(nn.Module):
    """Next-item loss on the encoder output ``(scores, labels)``.

    * ``"softmax"``: cross-entropy of the next item over the whole
      catalogue, averaged over the non-padded positions;
    * ``"bce"``: binary cross-entropy with logits, the next item labelled 1
      and each sampled negative 0 (summed per position), averaged over the
      non-padded positions.
    """

    def __init__(self, loss="softmax"):
        super().__init__()
        self.loss = loss

    def forward(self, y_pred, y_true=None):
        scores, labels = y_pred
        if scores.shape[0] == 0:  # a batch without any target
            return scores.sum() * 0.0
        if self.loss == "softmax":
            return F.cross_entropy(scores, labels)
        return (F.softplus(-scores[:, 0]) + F.softplus(scores[:, 1:]).sum(dim=1)).mean()


class _RowSplit:
    """skorch ``train_split``: the first ``n_train`` rows train, the rest validate."""

    def __init__(self, n_train):
        self.n_train = n_train

    def __call__(self, dataset, y=None, **fit_params):
        n = len(dataset)
        return (
            dataset.subset(np.arange(self.n_train)),
            dataset.subset(np.arange(self.n_train, n)),
        )


def _check_history_ids(values, position):
    """Validate the raw item ids of one history given as a list."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(
            f"History {position} must be a flat sequence of item ids, got an "
            f"array of shape {values.shape}."
        )
    if len(values) and pd.isna(values).any():
        raise ValueError(f"History {position} contains missing item ids (NaN/None).")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise ValueError(f"History {position} contains infinite item ids.")
        if np.any(values != np.round(values)):
            raise ValueError(
                f"History {position} holds non-integer float item ids "
                f"({values[values != np.round(values)][:5].tolist()}); item ids "
                "must be integers, strings or other exact hashable values."
            )
    elif values.dtype.kind == "b":
        raise TypeError(f"History {position} holds booleans, not item ids.")
    return values


def _is_history_list(X):
    """Whether ``X`` is a list of histories (lists of item ids)."""
    return (
        isinstance(X, (list, tuple))
        and len(X) > 0
        and all(isinstance(h, (list, tuple, np.ndarray, pd.Series)) for h in X)
    )


# ---------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------


class _SequenceRecommender(NeuralRecommenderMixin, BaseRecommender):
    """Shared fit, history handling and scoring of the sequential models."""

    # matrix values give the order: keep float64 so that nearby Unix
    # timestamps stay distinct (float32 steps are 128 s around 1.7e9)
    _matrix_dtype = np.float64

    _parameter_constraints = {
        **BaseRecommender._parameter_constraints,
        **NeuralRecommenderMixin._training_constraints,
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_len": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "loss": [StrOptions({"softmax", "bce"})],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left")],
        "time_col": [str, numbers.Integral, None],
    }

    def _check_params(self):
        """Cross-parameter checks (none by default)."""

    def _make_module(self, n_items):
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------------

    def _order_keys(self, data):
        return data.values if self._convention == "matrix" else data.times

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to predict each next item of the users' sequences.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Interaction table (one row per interaction, ordered by
            ``time_col``, or by row order when the table has no such column)
            or user x item matrix whose stored values give the order
            (smaller = earlier; ties by column index).
        y : None
            Ignored (implicit feedback).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        previous = self._previous_ids()
        data = self._validate_fit_input(X, y)
        self._check_same_ids(previous)
        n_users, n_items = len(self._user_index), len(self._item_index)
        self._history_items, self._history_indptr = order_histories(
            data.users, data.items, self._order_keys(data), n_users
        )
        seed, device = self._seed_and_device()
        counts = np.diff(self._history_indptr)
        if not (counts >= 2).any():
            raise ValueError(
                f"{type(self).__name__} learns from item transitions and needs "
                "at least one user with two or more interactions; every user "
                f"has at most one (n_users = {n_users}, n_features = {n_items} "
                "items)."
            )
        valid_users = ()
        if self.early_stopping:
            eligible = np.flatnonzero(counts >= 3)
            n_valid = int(round(self.validation_fraction * len(eligible)))
            if n_valid == 0:
                raise ValueError(
                    "early_stopping=True validates on the last item of "
                    f"validation_fraction={self.validation_fraction} of the "
                    f"users with 3+ interactions ({len(eligible)} here), i.e. "
                    "on no user. Increase validation_fraction or disable early "
                    "stopping."
                )
            rng = np.random.RandomState(seed)
            valid_users = np.sort(rng.choice(eligible, n_valid, replace=False))
        users, seqs, targets, n_train = training_sequences(
            self._history_items, self._history_indptr, self.max_len, valid_users
        )
        targets = torch.as_tensor(targets, device=device)
        # The module reads the targets (to score the non-padded positions
        # only); skorch needs them as y as well.
        dataset = TensorDataset(
            {
                "users": torch.as_tensor(users, device=device),
                "seqs": torch.as_tensor(seqs, device=device),
                "targets": targets,
            },
            targets,
        )
        keys = torch.as_tensor(
            np.unique(data.users * n_items + data.items), device=device
        )
        sampler = SequenceNegativeSampler(
            keys, n_items, self.n_negatives if self.loss == "bce" else 0
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._make_module(n_items)
        self._train(
            module,
            dataset,
            loss=self.loss,
            seed=seed,
            device=device,
            batch_transform=sampler,
            criterion=SequenceLoss(self.loss),
            train_split=_RowSplit(n_train),
            optimizer_params={"weight_decay": self.alpha},
        )
        return self

    # -- histories -------------------------------------------------------------

    def _histories_of(self, X, *, id_lists=False):
        """Ordered histories of new users: ``(flat, indptr, labels)``.

        ``X`` is an interaction table (users in order of first appearance,
        ordered by ``time_col`` or row order), a user x item matrix (values
        give the order) or, with ``id_lists=True``, a list of lists of raw
        item ids (each oldest first). Unknown items raise under
        ``handle_unknown="error"`` and are dropped under ``"fallback"``.
        """
        if id_lists and _is_history_list(X):
            raw = [_check_history_ids(h, i) for i, h in enumerate(X)]
            lengths = np.array([len(h) for h in raw], dtype=np.int64)
            flat_raw = (
                np.concatenate([np.asarray(h, dtype=object) for h in raw])
                if lengths.sum()
                else np.array([], dtype=object)
            )
            items = self._item_index.transform(flat_raw) if len(flat_raw) else (
                np.array([], dtype=np.int64)
            )
            self._unknown("item", flat_raw, items < 0)
            rows = np.repeat(np.arange(len(raw)), lengths)
            keep = items >= 0
            flat, indptr = order_histories(rows[keep], items[keep], None, len(raw))
            return flat, indptr, np.arange(len(raw))
        if is_table(X):
            data, _, _ = table_to_interactions(
                X,
                None,
                user_col=self.user_col,
                item_col=self.item_col,
                time_col=self.time_col,
                user_index=IdIndex(np.array([], dtype=object)),
                item_index=self._item_index,
            )
            self._unknown("item", X[self.item_col].to_numpy(), data.items < 0)
            rows, labels = pd.factorize(X[self.user_col].to_numpy(), sort=False)
            keep = data.items >= 0
            times = None if data.times is None else data.times[keep]
            flat, indptr = order_histories(
                rows[keep], data.items[keep], times, len(labels)
            )
            return flat, indptr, np.asarray(labels)
        H = self._check_matrix(X, reset=False)
        flat, indptr = self._matrix_histories(H)
        return flat, indptr, np.arange(H.shape[0])

    @staticmethod
    def _matrix_histories(H):
        coo = H.tocoo()
        return order_histories(
            coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data, H.shape[0]
        )

    def _seen_of(self, flat, indptr):
        n = len(indptr) - 1
        rows = np.repeat(np.arange(n), np.diff(indptr))
        seen = sp.csr_array(
            (np.ones(len(flat), dtype=np.float32), (rows, flat)),
            shape=(n, len(self._item_index)),
        )
        seen.sum_duplicates()
        seen.data[:] = 1.0
        return seen

    @torch.no_grad()
    def _encode(self, flat, indptr):
        """Final states ``(n_histories, embedding_dim)`` of ordered histories."""
        module = self._module()
        module.eval()
        device = self._device()
        n = len(indptr) - 1
        seqs = left_padded(flat, indptr[:-1], indptr[1:], self.max_len)
        out = []
        for s in range(0, n, _ENCODE_BLOCK):
            block = torch.as_tensor(seqs[s : s + _ENCODE_BLOCK], device=device)
            out.append(module.user_representation(block))
        if not out:
            return torch.zeros(0, module.embedding_dim, device=device)
        return torch.cat(out)

    @torch.no_grad()
    def _known_user_repr(self, users_idx):
        """States of known users after their training history.

        Index ``n_users`` (an unknown user under ``"fallback"``) gets the
        zero state: scores then come from the item biases alone.
        """
        users_idx = np.asarray(users_idx, dtype=np.int64)
        indptr = np.r_[self._history_indptr, self._history_indptr[-1]]
        starts, ends = indptr[users_idx], indptr[users_idx + 1]
        lengths = ends - starts
        sub_indptr = np.r_[0, np.cumsum(lengths)]
        take = np.repeat(starts - sub_indptr[:-1], lengths) + np.arange(lengths.sum())
        return self._encode(self._history_items[take], sub_indptr)

    def _fold_in(self, H):
        """States of the rows of a user x item matrix (values = order)."""
        flat, indptr = self._matrix_histories(H)
        return self._encode(flat, indptr)

    def _user_reprs_for(self, users):
        if _is_history_list(users) or is_table(users) or sp.issparse(users) or (
            getattr(users, "ndim", 1) == 2
        ):
            flat, indptr, _ = self._histories_of(users, id_lists=True)
            return self._encode(flat, indptr), self._seen_of(flat, indptr)
        return self._known_user_reprs(users)

    # -- scoring -----------------------------------------------------------------

    @torch.no_grad()
    def _score_pairs(self, user_repr, items, rows=None):
        """Log-probabilities of (row of user_repr, item) pairs.

        ``loss="softmax"``: ``log P(next item = i | history)`` (log-softmax
        over the catalogue); ``loss="bce"``: ``log sigmoid(logit)``. An item
        unseen at fit (index ``n_items``) gets logit 0.
        """
        module = self._module()
        module.eval()
        device = self._device()
        n_items = len(self._item_index)
        items = np.asarray(items, dtype=np.int64)
        rows = np.arange(len(items)) if rows is None else np.asarray(rows, dtype=np.int64)
        known = items < n_items
        items_t = torch.as_tensor(np.where(known, items, 0), device=device)
        rows_t = torch.as_tensor(rows, device=device)
        logits = torch.empty(len(items), device=device)
        block = max(1, _SCORE_BLOCK // user_repr.shape[1])
        for s in range(0, len(items), block):
            sl = slice(s, s + block)
            logits[sl] = module.score_pairs(user_repr[rows_t[sl]], items_t[sl])
        logits = logits * torch.as_tensor(known, device=device)
        if self.loss == "softmax":
            lse = torch.empty(user_repr.shape[0], device=device)
            block = self._user_block(n_items)
            for s in range(0, user_repr.shape[0], block):
                lse[s : s + block] = torch.logsumexp(
                    module.score_all(user_repr[s : s + block]), dim=1
                )
            out = logits - lse[rows_t]
        else:
            out = F.logsigmoid(logits)
        return out.float().cpu().numpy()

    # -- public API ----------------------------------------------------------------

    def predict(self, X):
        """Log-probability that each item is the user's next one.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            An interaction table: each (user, item) row is scored given the
            user's training history (an unknown user under
            ``handle_unknown="fallback"`` has an empty history). Or a user x
            item matrix of new histories (values give the order): each row
            is encoded and its stored entries are scored.

        Returns
        -------
        scores : ndarray of shape (n_rows,) or sparse matrix of shape (n_users, n_items)
            ``log P(next = item | history)`` under ``loss="softmax"``
            (log-softmax over the catalogue), ``log sigmoid(logit)`` under
            ``loss="bce"``. For a matrix: the same sparsity pattern (a dense
            array with zeros elsewhere for dense input).
        """
        return super().predict(X)

    def transform(self, X):
        """Final hidden state of each history.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Histories: an interaction table (users in order of first
            appearance, ordered by ``time_col`` or row order), or a user x
            item matrix whose stored values give the order. As everywhere in
            scikit-learn, a list of lists is an array-like matrix here (only
            ``recommend`` reads lists of item ids).

        Returns
        -------
        states : ndarray of shape (n_histories, embedding_dim)
            The encoder state after the last item of each history (zeros
            for an empty one).
        """
        check_is_fitted(self)
        flat, indptr, _ = self._histories_of(X)
        return self._encode(flat, indptr).float().cpu().numpy()

    def recommend(self, users, k=10, *, exclude_seen=True, items=None):
        """Top-``k`` next items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,), list of lists, DataFrame or matrix
            Raw ids of users seen at fit (their whole training history is
            encoded; unknown users follow ``handle_unknown``); or histories
            of new users, scored without refitting: a list of lists of raw
            item ids (oldest first), an interaction table (users in order of
            first appearance, ordered by ``time_col`` or row order) or a
            user x item matrix whose stored values give the order.
        k : int, default=10
            Number of items per user, clipped to the number of candidates.
        exclude_seen : bool, default=True
            Leave out the items of the user's history (the training history
            for known users, the given history otherwise).
        items : array-like of shape (n_candidates,), default=None
            Raw ids of the candidate items; all fitted items when None.

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids, best first.
        scores : ndarray of shape (n_users, k)
            Their logits; excluded items fill the slots of users with fewer
            than ``k`` eligible items, scored ``-inf``.
        """
        return super().recommend(users, k, exclude_seen=exclude_seen, items=items)

    @property
    def item_embeddings_(self):
        """ndarray of shape (n_items, embedding_dim): output item embeddings."""
        check_is_fitted(self, "net_")
        return self._module().item_embeddings().detach().float().cpu().numpy().copy()


class LSTMRecommender(_SequenceRecommender):
    """Next-item recommender with a stacked LSTM over the user's sequence.

    Each user's interactions, ordered in time, are read by an LSTM over
    item embeddings; the state after each item scores the catalogue for the
    next one (``h . e_i + b_i`` with the input item embeddings tied to the
    output ones). Training maximises the likelihood of the next item at every
    position of every user's sequence, on mini-batches of padded sequences
    sliced from tensors on ``device``.

    Input follows the package's two conventions, with an order:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col``, ``item_col`` and ``time_col``): each user's rows
      ordered by time (ties keep their row order). Without a ``time_col``
      column the row order is the order;
    * a **user x item matrix** (scipy sparse or dense): rows are users,
      stored (non-zero, for dense) entries are interactions and their
      values give the order -- a smaller value is an earlier interaction,
      ties by column index (e.g. a matrix of timestamps or of ranks).

    Parameters
    ----------
    embedding_dim : int, default=64
        Dimension of the item embeddings and of the LSTM states.
    max_len : int, default=50
        Number of most recent items of a history the model reads; longer
        histories are truncated (in training and at recommendation time).
    n_layers : int, default=2
        Number of stacked LSTM layers.
    dropout : float, default=0.3
        Dropout on the embeddings, between LSTM layers and on the states.
    loss : {"softmax", "bce"}, default="softmax"
        ``"softmax"``: cross-entropy of the next item over the whole
        catalogue. ``"bce"``: binary cross-entropy of the next item against
        ``n_negatives`` negatives sampled per position (cheaper for large
        catalogues).
    n_negatives : int, default=1
        Negatives sampled per position for ``loss="bce"``, uniformly among
        the items the user never interacted with.
    alpha : float, default=0.0
        L2 penalty (Adam's weight decay) on all the weights.
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=64
        Sequences (users) per mini-batch.
    learning_rate_init : float, default=2e-3
        Adam's learning rate.
    early_stopping : bool, default=False
        Hold out the last item of a random ``validation_fraction`` of the
        users with three or more interactions (their training sequences stop
        one item earlier) and stop when the loss of predicting those items
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; the best
        epoch's weights are kept.
    validation_fraction : float, default=0.1
        Fraction of the users whose last item validates.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the validation loss.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (same users
        and items required).
    handle_unknown : {"fallback", "error"}, default="fallback"
        Unknown user ids: ``"fallback"`` gives them an empty history (zero
        state, so items are ranked by their learned bias, a popularity
        prior); ``"error"`` raises. Unknown items in new histories are
        dropped under ``"fallback"``; unknown items in ``predict`` get logit
        0.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    time_col : str or None, default="timestamp"
        Time column of an interaction table (numbers or datetimes). When the
        table has no such column, or ``time_col=None``, rows are in order.
    device : str, default="cpu"
        Torch device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch ``NeuralNet``.
    verbose : int, default=0
        0: silent; 1 or more: skorch's per-epoch log.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout, negatives and the
        validation users. Same integer seed, same model on CPU.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is an
        :class:`~sklearn_recsys.nn.LSTMEncoder`.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order.
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order.
    item_embeddings_ : ndarray of shape (n_items, embedding_dim)
        Output (tied) item embeddings.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when ``early_stopping=True``.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    AttentionRecommender : The same task with causal self-attention (SASRec).

    Notes
    -----
    ``recommend`` also accepts histories of users unseen at fit (a list of
    lists of item ids, an interaction table or a matrix) and encodes them
    without refitting; ``transform`` returns the state after each history.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import LSTMRecommender
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3, 3, 3],
    ...                   "item": ["a", "b", "c", "a", "b", "b", "c", "a"],
    ...                   "timestamp": [1, 2, 3, 1, 2, 1, 2, 3]})
    >>> model = LSTMRecommender(embedding_dim=8, max_iter=2, random_state=0)
    >>> model = model.fit(X)
    >>> item_ids, scores = model.recommend([2], k=1)
    >>> item_ids.shape
    (1, 1)
    >>> item_ids, scores = model.recommend([["a"], ["b", "c"]], k=2)
    >>> item_ids.shape
    (2, 2)
    >>> new = pd.DataFrame({"user": ["x", "x"], "item": ["a", "b"],
    ...                     "timestamp": [5, 6]})
    >>> model.transform(new).shape
    (1, 8)
    """

    _parameter_constraints = {
        **_SequenceRecommender._parameter_constraints,
        "n_layers": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        embedding_dim=64,
        max_len=50,
        n_layers=2,
        dropout=0.3,
        loss="softmax",
        n_negatives=1,
        alpha=0.0,
        max_iter=20,
        batch_size=64,
        learning_rate_init=2e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        warm_start=False,
        handle_unknown="fallback",
        user_col="user",
        item_col="item",
        time_col="timestamp",
        device="cpu",
        callbacks=None,
        verbose=0,
        random_state=None,
    ):
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.n_layers = n_layers
        self.dropout = dropout
        self.loss = loss
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state

    def _make_module(self, n_items):
        return LSTMEncoder(
            n_items,
            embedding_dim=self.embedding_dim,
            max_len=self.max_len,
            n_layers=self.n_layers,
            dropout=self.dropout,
        )


class AttentionRecommender(_SequenceRecommender):
    """Next-item recommender with causal self-attention (SASRec).

    Each user's interactions, ordered in time, are read by a stack of
    ``n_blocks`` transformer blocks (causal multi-head self-attention and a
    feed-forward network, with learned positional embeddings, layer norm and
    dropout; Kang & McAuley, 2018); the state after each item scores the
    catalogue for the next one (``h . e_i + b_i``, item embeddings tied
    between input and output). Training maximises the likelihood of the next
    item at every position of every user's sequence.

    Input follows the package's two conventions, with an order:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col``, ``item_col`` and ``time_col``): each user's rows
      ordered by time (ties keep their row order). Without a ``time_col``
      column the row order is the order;
    * a **user x item matrix** (scipy sparse or dense): rows are users,
      stored (non-zero, for dense) entries are interactions and their
      values give the order -- a smaller value is an earlier interaction,
      ties by column index (e.g. a matrix of timestamps or of ranks).

    Parameters
    ----------
    embedding_dim : int, default=64
        Model dimension (item and positional embeddings, hidden states);
        divisible by ``n_heads``.
    max_len : int, default=50
        Number of most recent items of a history the model reads (and of
        positional embeddings); longer histories are truncated.
    n_blocks : int, default=2
        Number of transformer blocks.
    n_heads : int, default=1
        Attention heads per block.
    dropout : float, default=0.3
        Dropout on the embeddings and the residual branches (not on the
        attention weights).
    loss : {"softmax", "bce"}, default="softmax"
        ``"softmax"``: cross-entropy of the next item over the whole
        catalogue. ``"bce"``: binary cross-entropy of the next item against
        ``n_negatives`` negatives sampled per position (SASRec's loss).
    n_negatives : int, default=1
        Negatives sampled per position for ``loss="bce"``, uniformly among
        the items the user never interacted with.
    alpha : float, default=0.0
        L2 penalty (Adam's weight decay) on all the weights.
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=64
        Sequences (users) per mini-batch.
    learning_rate_init : float, default=2e-3
        Adam's learning rate.
    early_stopping : bool, default=False
        Hold out the last item of a random ``validation_fraction`` of the
        users with three or more interactions (their training sequences stop
        one item earlier) and stop when the loss of predicting those items
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; the best
        epoch's weights are kept.
    validation_fraction : float, default=0.1
        Fraction of the users whose last item validates.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the validation loss.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (same users
        and items required).
    handle_unknown : {"fallback", "error"}, default="fallback"
        Unknown user ids: ``"fallback"`` gives them an empty history (zero
        state, so items are ranked by their learned bias, a popularity
        prior); ``"error"`` raises. Unknown items in new histories are
        dropped under ``"fallback"``; unknown items in ``predict`` get logit
        0.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    time_col : str or None, default="timestamp"
        Time column of an interaction table (numbers or datetimes). When the
        table has no such column, or ``time_col=None``, rows are in order.
    device : str, default="cpu"
        Torch device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch ``NeuralNet``.
    verbose : int, default=0
        0: silent; 1 or more: skorch's per-epoch log.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout, negatives and the
        validation users. Same integer seed, same model on CPU.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is a
        :class:`~sklearn_recsys.nn.SelfAttentionEncoder`.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order.
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order.
    item_embeddings_ : ndarray of shape (n_items, embedding_dim)
        Output (tied) item embeddings.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when ``early_stopping=True``.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    LSTMRecommender : The same task with a stacked LSTM.

    Notes
    -----
    ``recommend`` also accepts histories of users unseen at fit (a list of
    lists of item ids, an interaction table or a matrix) and encodes them
    without refitting; ``transform`` returns the state after each history.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys import AttentionRecommender
    >>> # user x item matrix: stored values give the order (1 = first)
    >>> X = np.array([[1, 2, 3, 0],
    ...               [0, 1, 2, 3],
    ...               [3, 0, 1, 2]])
    >>> model = AttentionRecommender(embedding_dim=8, max_iter=2, random_state=0)
    >>> model = model.fit(X)
    >>> item_ids, scores = model.recommend([0, 1], k=1)
    >>> item_ids.shape
    (2, 1)
    >>> model.recommend([[2, 3]], k=2)[0].shape
    (1, 2)
    >>> model.predict(X).shape
    (3, 4)
    """

    _parameter_constraints = {
        **_SequenceRecommender._parameter_constraints,
        "n_blocks": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        embedding_dim=64,
        max_len=50,
        n_blocks=2,
        n_heads=1,
        dropout=0.3,
        loss="softmax",
        n_negatives=1,
        alpha=0.0,
        max_iter=20,
        batch_size=64,
        learning_rate_init=2e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        warm_start=False,
        handle_unknown="fallback",
        user_col="user",
        item_col="item",
        time_col="timestamp",
        device="cpu",
        callbacks=None,
        verbose=0,
        random_state=None,
    ):
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.dropout = dropout
        self.loss = loss
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state

    def _check_params(self):
        if self.embedding_dim % self.n_heads:
            raise ValueError(
                f"embedding_dim={self.embedding_dim} must be divisible by "
                f"n_heads={self.n_heads}."
            )

    def _make_module(self, n_items):
        return SelfAttentionEncoder(
            n_items,
            embedding_dim=self.embedding_dim,
            max_len=self.max_len,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            dropout=self.dropout,
        )
