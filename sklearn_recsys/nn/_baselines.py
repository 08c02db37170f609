"""Scoring modules of the non-neural baselines: popularity, item-kNN, EASE.

They hold fitted arrays as buffers (nothing is trained, there are no
parameters) and follow the scoring protocol of
:mod:`sklearn_recsys.nn._protocol` (index ``n_users`` is an unknown user
with an empty history); ``forward(users, items=None)`` is ``score_all`` of
known users.

Item-based models represent a user by its history, **packed** into one dense
tensor of shape ``(B, 2 * L)`` where ``L`` is the longest history of the
batch: columns ``[:L]`` hold item indices (as floats; exact up to ``2**24``
items in float32, float64 is used beyond), columns ``[L:]`` their weights;
padding entries have index 0 and weight 0. A packed block is expanded to a
dense ``(B, n_items)`` history only inside ``score_all``, so representing
many users costs ``O(n_users * L)`` memory instead of ``O(n_users * n_items)``.
A user whose history has no non-zero weight (an unknown user, an empty
fold-in row) is scored by item popularity.
"""

import warnings

import torch

from ._protocol import Scorer

# Float32 represents every integer up to 2**24 exactly.
_FLOAT32_EXACT = 2**24


def pack_histories(indptr, indices, values, rows, n_items):
    """Pack rows of a CSR matrix given as tensors into ``(len(rows), 2 * L)``.

    Parameters
    ----------
    indptr : torch.Tensor of shape (n_rows + 1,)
        int64 row pointers.
    indices : torch.Tensor of shape (nnz,)
        int64 item indices.
    values : torch.Tensor of shape (nnz,)
        Weights; their floating dtype is the dtype of the packed tensor.
    rows : torch.Tensor of shape (B,)
        Rows to pack.
    n_items : int
        Number of items (float64 is used for more than ``2**24``).

    Returns
    -------
    packed : torch.Tensor of shape (B, 2 * L)
        ``L >= 1`` is the longest packed history.
    """
    dtype = values.dtype if n_items <= _FLOAT32_EXACT else torch.float64
    n = len(rows)
    if indices.numel() == 0 or n == 0:
        return torch.zeros((n, 2), dtype=dtype, device=indptr.device)
    start = indptr[rows]
    length = indptr[rows + 1] - start
    width = max(1, int(length.max()))
    offsets = torch.arange(width, device=indptr.device)
    mask = offsets[None, :] < length[:, None]
    pos = torch.where(mask, start[:, None] + offsets[None, :], 0)
    idx = torch.where(mask, indices[pos], 0).to(dtype)
    weights = torch.where(mask, values[pos], 0).to(dtype)
    return torch.cat([idx, weights], dim=1)


def unpack_histories(user_repr):
    """``(item_indices, weights)``, both of shape ``(B, L)``, of a packed block."""
    width = user_repr.shape[1] // 2
    return user_repr[:, :width].long(), user_repr[:, width:]


class PopularityScorer(Scorer):
    """Scores every user's items by a fixed item popularity.

    Parameters
    ----------
    popularity : torch.Tensor of shape (n_items,)
        Score of each item. Index ``n_items`` (an unknown item) scores 0.
    """

    def __init__(self, popularity):
        super().__init__()
        self.n_items = len(popularity)
        padded = torch.cat([popularity, popularity.new_zeros(1)])  # unknown item
        self.register_buffer("popularity", padded)

    def user_representation(self, users):
        """An empty ``(B, 0)`` representation: all users score alike."""
        return self.popularity.new_zeros((len(users), 0))

    def _item_scores(self, items=None):
        if items is None:
            return self.popularity[: self.n_items]
        return self.popularity[items]

    def score_all(self, user_repr, items=None):
        scores = self._item_scores(items)
        return scores[None, :].expand(user_repr.shape[0], -1).clone()

    def score_pairs(self, user_repr, items):
        return self._item_scores(items).clone()

    def forward(self, users, items=None):
        return self.score_all(self.user_representation(users), items)


class _HistoryScorer(Scorer):
    """Item-based scoring of packed histories against an item-item matrix.

    Holds the training histories (CSR buffers, one extra empty row for unknown
    users) and the item popularity used for users with an empty history.
    Subclasses implement ``_score_dense(dense_histories, items)``,
    ``_score_entries(items, history_items)`` (the item-item weights of each
    history entry for each pair's item) and the ``_dtype`` of their weights.
    """

    # Dense history + scores: about two floats per (user, item) when scoring.
    score_cost = 2

    def __init__(self, history_indptr, history_indices, history_values, popularity):
        super().__init__()
        self.n_items = len(popularity)
        self.n_users = len(history_indptr) - 1
        indptr = torch.cat([history_indptr, history_indptr[-1:]])  # unknown user
        self.register_buffer("history_indptr", indptr)
        self.register_buffer("history_indices", history_indices)
        self.register_buffer("history_values", history_values)
        self.register_buffer("popularity", popularity)

    def user_representation(self, users):
        return pack_histories(
            self.history_indptr, self.history_indices, self.history_values,
            users, self.n_items,
        )

    def dense_histories(self, user_repr, dtype):
        """Expand a packed block to a dense ``(B, n_items)`` history."""
        idx, weights = unpack_histories(user_repr)
        dense = torch.zeros(
            (user_repr.shape[0], self.n_items), dtype=dtype, device=user_repr.device
        )
        return dense.scatter_add_(1, idx, weights.to(dtype))

    def _fallback(self, scores, weights, items):
        empty = ~(weights != 0).any(dim=1)
        if bool(empty.any()):
            pop = self.popularity if items is None else self.popularity[items]
            if scores.ndim == 1:  # score_pairs: one item per row
                pop = pop[empty]
            scores[empty] = pop.to(scores.dtype)
        return scores

    def score_all(self, user_repr, items=None):
        dense = self.dense_histories(user_repr, self._dtype)
        scores = self._score_dense(dense, items)
        return self._fallback(scores, unpack_histories(user_repr)[1], items)

    def score_pairs(self, user_repr, items):
        idx, weights = unpack_histories(user_repr)
        entries = self._score_entries(items, idx)
        scores = (entries * weights.to(entries.dtype)).sum(dim=1)
        return self._fallback(scores, weights, items)

    def forward(self, users, items=None):
        return self.score_all(self.user_representation(users), items)


class ItemKNNScorer(_HistoryScorer):
    """Item-based k-nearest-neighbours: ``score = history @ S``.

    Parameters
    ----------
    neighbors_indptr, neighbors_indices, neighbors_values : torch.Tensor
        ``S.T`` in CSR form, shape ``(n_items, n_items)``: row ``j`` holds the
        similarities of the neighbours of item ``j`` (sorted indices).
    history_indptr, history_indices, history_values : torch.Tensor
        Training user x item histories in CSR form.
    popularity : torch.Tensor of shape (n_items,)
        Scores of users with an empty history.
    """

    def __init__(
        self,
        neighbors_indptr,
        neighbors_indices,
        neighbors_values,
        history_indptr,
        history_indices,
        history_values,
        popularity,
    ):
        super().__init__(history_indptr, history_indices, history_values, popularity)
        self.register_buffer("neighbors_indptr", neighbors_indptr)
        self.register_buffer("neighbors_indices", neighbors_indices)
        self.register_buffer("neighbors_values", neighbors_values)

    @property
    def _dtype(self):
        return self.neighbors_values.dtype

    def _similarity_t(self):
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.neighbors_indptr,
                self.neighbors_indices,
                self.neighbors_values,
                size=(self.n_items, self.n_items),
            )

    def _score_dense(self, dense, items):
        if self.neighbors_values.numel() == 0:
            scores = dense.new_zeros(dense.shape)
        else:
            scores = torch.sparse.mm(self._similarity_t(), dense.T).T.contiguous()
        return scores if items is None else scores[:, items]

    def _score_entries(self, items, history_items):
        """``S[history_items, items[:, None]]`` by binary search in ``S.T``."""
        n, nnz = self.n_items, self.neighbors_values.numel()
        if nnz == 0:
            return self.neighbors_values.new_zeros(history_items.shape)
        rows = torch.repeat_interleave(
            torch.arange(n, device=items.device), self.neighbors_indptr.diff()
        )
        keys = rows * n + self.neighbors_indices
        query = items[:, None] * n + history_items
        pos = torch.searchsorted(keys, query).clamp_(max=nnz - 1)
        return torch.where(keys[pos] == query, self.neighbors_values[pos], 0)


class EASEScorer(_HistoryScorer):
    """EASE (Steck, 2019): ``score = history @ B`` with a dense ``B``.

    Parameters
    ----------
    coef : torch.Tensor of shape (n_items, n_items)
        The item-item weight matrix ``B`` (zero diagonal).
    history_indptr, history_indices, history_values : torch.Tensor
        Training user x item histories in CSR form.
    popularity : torch.Tensor of shape (n_items,)
        Scores of users with an empty history.
    """

    def __init__(
        self, coef, history_indptr, history_indices, history_values, popularity
    ):
        super().__init__(history_indptr, history_indices, history_values, popularity)
        self.register_buffer("coef", coef)

    @property
    def _dtype(self):
        return self.coef.dtype

    def _score_dense(self, dense, items):
        coef = self.coef if items is None else self.coef.index_select(1, items)
        return dense @ coef

    def _score_entries(self, items, history_items):
        return self.coef[history_items, items[:, None]]
