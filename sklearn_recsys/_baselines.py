"""The closed-form baselines: Popularity, ItemKNN and EASE.

They share :class:`~sklearn_recsys._base.BaseRecommender` with the neural
models (the one ``fit``, input conventions, unknown ids, ``predict``,
``recommend``, fold-in, ``score``) but solve in closed form, without skorch.
A model implements two hooks:

* ``_solve(fit) -> dict``: its public fitted arrays (``item_popularity_``,
  ``similarity_`` or ``coef_``) and whatever else scoring needs;
* ``_build_module(state) -> Scorer``: its scoring module
  (:mod:`sklearn_recsys.nn._baselines`), built from a mapping of the fitted
  state (sharing the arrays' memory on the CPU).

The scoring module is not pickled but rebuilt from the fitted arrays when the
estimator is loaded.
"""

import datetime
import numbers
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender, available_device
from ._input import check_k, interactions_to_csr
from .nn._baselines import (
    EASEScorer,
    ItemKNNScorer,
    PopularityScorer,
    pack_histories,
)

__all__ = ["EASE", "ItemKNN", "Popularity"]

# Floats of one dense block when computing item-item products (64 MiB in
# float32): the Gram / similarity matrices are built in blocks of items.
_ITEM_BLOCK = 2**24


class _BaselineRecommender(BaseRecommender):
    """Closed-form recommenders: a cached scoring module instead of ``net_``."""

    _parameter_constraints = {
        **BaseRecommender._parameter_constraints,
        "implicit": ["boolean"],
    }

    def _fit(self, fit):
        state = {"_fitted_device": fit.device, **self._solve(fit)}
        state["_scorer"] = self._scorer_for(state)
        return state

    def _solve(self, fit):
        raise NotImplementedError

    def _build_module(self, state):
        raise NotImplementedError

    def _interaction_matrix(self, fit, dtype=np.float32):
        """User x item CSR: ones (``implicit``) or summed interaction values."""
        data = fit.data
        values = None if self.implicit else data.values
        X = interactions_to_csr(data.users, data.items, values, (fit.n_users, fit.n_items))
        if self.implicit:
            X.data[:] = 1.0
        return X.astype(dtype, copy=False)

    @staticmethod
    def _sample_weighted(X, fit):
        """``X`` with each entry scaled by the square root of its sample weight.

        The item-item products ``X.T @ X`` then weigh each user's (row's)
        co-occurrences by its weight, as repeating the row would (an entry of
        a table takes the mean weight of its interactions).
        """
        data = fit.data
        if data.weights is None:
            return X
        mean = interactions_to_csr(data.users, data.items, data.weights, X.shape)
        mean.data /= interactions_to_csr(data.users, data.items, None, X.shape).data
        return sp.csr_array(X.multiply(np.sqrt(mean))).astype(X.dtype)

    def _module(self):
        return self._scorer

    def _scorer_for(self, state):
        """The scoring module of a fitted state, on the fit device."""
        device = available_device(state["_fitted_device"], "scoring")
        return self._build_module(state).to(device).eval()

    _NOT_PORTABLE = ("_scorer",)  # rebuilt from the fitted arrays

    def _pickle_state(self):
        state = dict(super()._pickle_state())  # may be self.__dict__ itself
        state.pop("_scorer", None)  # rebuilt from the fitted arrays on loading
        return state

    def _restored(self, state, device):
        state["_fitted_device"] = str(device)
        state["_scorer"] = self._scorer_for(state)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_fitted_device" in state:
            self._scorer = self._scorer_for(self.__dict__)

    @staticmethod
    def _as_tensor(array):
        array = np.asarray(array)
        if not array.flags.writeable:  # e.g. a read-only memory map
            array = array.copy()
        return torch.from_numpy(array)

    def _user_features(self, reprs):
        """Scores of every item (what ``transform`` returns for a baseline)."""
        module = self._module()
        n_items = len(self._item_index)
        out = np.empty((reprs.shape[0], n_items), dtype=np.float32)
        block = self._user_block(n_items)
        with module.scoring():
            for s in range(0, reprs.shape[0], block):
                scores = module.score_all(reprs[s : s + block])
                out[s : s + block] = scores.float().cpu().numpy()
        return torch.from_numpy(out)

    def similar_items(self, items, k=10):
        """Items recommended to a user whose history is the single given item.

        For :class:`ItemKNN` the scores are the stored similarities, for
        :class:`EASE` the weights of ``coef_``'s row, for
        :class:`Popularity` the popularities.

        Parameters
        ----------
        items : array-like of shape (n_queries,)
            Raw ids of items seen at fit.
        k : int, default=10
            Number of items per query (the query item itself excluded).

        Returns
        -------
        item_ids : ndarray of shape (n_queries, k)
        scores : ndarray of shape (n_queries, k)
        """
        check_is_fitted(self)
        k = check_k(k)
        idx = self._map_items(items)
        n_items = len(self._item_index)
        if n_items < 2:
            raise ValueError("similar_items needs at least two fitted items.")
        history = sp.csr_array(
            (np.ones(len(idx), dtype=np.float32), (np.arange(len(idx)), idx)),
            shape=(len(idx), n_items),
        )
        return self.recommend(history, k=min(k, n_items - 1), exclude_seen=True)


class _ItemBasedRecommender(_BaselineRecommender):
    """Scores a user from its (weighted) history row: ``history @ item matrix``.

    Users are represented by their packed histories (see
    :mod:`sklearn_recsys.nn._baselines`); new users are folded in by packing
    their history rows, with no refit.
    """

    @staticmethod
    def _histories_state(fit, X):
        """The training histories ``X`` (CSR) and the item counts."""
        popularity = np.asarray(fit.seen().sum(axis=0)).ravel()
        return {"_history": X, "_popularity": popularity}

    def _history_tensors(self, H):
        return (
            torch.as_tensor(H.indptr.astype(np.int64)),
            torch.as_tensor(H.indices.astype(np.int64)),
            self._as_tensor(H.data),
        )

    def _fold_in(self, histories):
        """Packed histories of new users (binarized when ``implicit``)."""
        H = histories.to_csr(len(self._item_index))
        values = np.ones_like(H.data) if self.implicit else H.data
        device = self._device()
        indptr, indices, values = (
            torch.as_tensor(a, device=device)
            for a in (
                H.indptr.astype(np.int64),
                H.indices.astype(np.int64),
                values.astype(self._history.dtype, copy=False),
            )
        )
        rows = torch.arange(H.shape[0], device=device)
        return pack_histories(indptr, indices, values, rows, H.shape[1])

    def _score_pairs(self, user_repr, items, rows=None):
        """Scores of (row of ``user_repr``, item) pairs.

        A packed history costs ``O(L)`` per pair, so pairs are grouped by row
        and scored by ``score_all`` over blocks of distinct rows; unknown items
        (index ``n_items``) score 0.
        """
        module = self._module()
        device = self._device()
        items = np.asarray(items, dtype=np.int64)
        rows = np.arange(len(items)) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.empty(len(items), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        uniq, starts = np.unique(rows[order], return_index=True)
        bounds = np.append(starts, len(order))
        block = self._user_block(len(self._item_index))
        with module.scoring():
            for s in range(0, len(uniq), block):
                e = min(s + block, len(uniq))
                sel = order[bounds[s] : bounds[e]]
                local = torch.as_tensor(np.searchsorted(uniq[s:e], rows[sel]), device=device)
                scores = module.score_all(user_repr[torch.as_tensor(uniq[s:e], device=device)])
                scores = torch.nn.functional.pad(scores.float(), (0, 1))
                picked = scores[local, torch.as_tensor(items[sel], device=device)]
                out[sel] = picked.cpu().numpy()
        return out


class Popularity(_BaselineRecommender):
    """Recommends the most popular items, optionally with time decay.

    An item's score is its number of interactions (or the sum of their
    values when ``implicit=False``), each interaction weighted by
    ``0.5 ** (age / half_life)`` when ``half_life`` is set, its age being
    measured from the latest interaction of the training data. Every user
    gets the same scores; ``recommend`` still excludes each user's seen items.

    Input follows the package's two conventions: an **interaction table**
    (DataFrame with ``user_col``, ``item_col`` and, for time decay,
    ``time_col``; optional ``y`` as interaction values) or a **user x item
    matrix** (stored entries = interactions, values = their values).

    Parameters
    ----------
    implicit : bool, default=True
        Count interactions (``True``) or sum their values: ``y`` for a
        table (counts when ``y`` is None), the stored values of a matrix.
    half_life : float, datetime.timedelta, numpy.timedelta64 or None, default=None
        Half-life of the exponential time decay, in the units of the time
        column (e.g. seconds for Unix timestamps); a timedelta for a datetime
        column. ``None``: no decay. Needs an interaction table with a
        ``time_col`` column.
    time_col : str, int or None, default="timestamp"
        Time column of an interaction table (read only when present).
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids not seen at fit: ``"fallback"`` scores unknown users by popularity
        like everyone else and unknown items 0; ``"error"`` raises a
        ValueError naming them.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    device : str, default="cpu"
        Torch device to score on: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        or ``"auto"``.

    Attributes
    ----------
    item_popularity_ : ndarray of shape (n_items,)
        The (decayed) popularity of each item, float64.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order (row indices for a matrix).
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (column indices for a matrix).
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    ItemKNN : Item-based nearest neighbours.
    EASE : Linear item-item autoencoder in closed form.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import Popularity
    >>> X = pd.DataFrame({"user": ["ann", "ann", "bob", "bob", "cy"],
    ...                   "item": ["a", "b", "a", "c", "a"]})
    >>> pop = Popularity().fit(X)
    >>> pop.item_popularity_
    array([3., 1., 1.])
    >>> item_ids, scores = pop.recommend(["cy"], k=2)
    >>> item_ids.shape
    (1, 2)
    """

    _parameter_constraints = {
        **_BaselineRecommender._parameter_constraints,
        # timedeltas first: np.timedelta64 also passes as a numbers.Real
        "half_life": [
            datetime.timedelta,
            np.timedelta64,
            Interval(numbers.Real, 0, None, closed="neither"),
            None,
        ],
        "time_col": [str, numbers.Integral, None],
    }

    def __init__(
        self, *, implicit=True, half_life=None, time_col="timestamp",
        handle_unknown="fallback", user_col="user", item_col="item", device="cpu",
    ):
        self.implicit = implicit
        self.half_life = half_life
        self.time_col = time_col
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device

    def _fit_time_col(self):
        # the time column matters only for the time decay
        return None if self.half_life is None else self.time_col

    def _half_life_in_time_units(self, times_are_datetimes):
        """``half_life`` as a number in the units of the time keys."""
        is_timedelta = isinstance(self.half_life, (datetime.timedelta, np.timedelta64))
        if times_are_datetimes:
            if not is_timedelta:
                raise TypeError(
                    f"The time column {self.time_col!r} holds datetimes: give "
                    "half_life as a timedelta (e.g. pd.Timedelta(days=30)), got "
                    f"{self.half_life!r}."
                )
            half_life = pd.Timedelta(self.half_life).value  # nanoseconds
        elif is_timedelta:
            raise TypeError(
                f"The time column {self.time_col!r} is numeric: give half_life "
                f"as a number in its units, got {self.half_life!r}."
            )
        else:
            half_life = float(self.half_life)
        if not half_life > 0:
            raise ValueError(f"half_life must be positive, got {self.half_life!r}.")
        return float(half_life)

    def _solve(self, fit):
        """Count the (decayed) interactions of every item."""
        data = fit.data
        weights = np.ones(len(data.users))
        if not self.implicit and data.values is not None:
            weights = data.values.astype(np.float64)
        if data.weights is not None:
            weights = weights * data.weights
        if self.half_life is not None:
            if data.times is None:
                raise ValueError(
                    "half_life needs the interaction times: fit on an interaction "
                    f"table with the time column {self.time_col!r} (time_col), or "
                    "set half_life=None."
                )
            half_life = self._half_life_in_time_units(data.times_are_datetimes)
            times = data.times.astype(np.float64)
            weights = weights * np.exp2(-(times.max() - times) / half_life)
        popularity = np.bincount(data.items, weights=weights, minlength=fit.n_items)
        return {"item_popularity_": popularity}

    def _build_module(self, state):
        popularity = torch.as_tensor(state["item_popularity_"], dtype=torch.float32)
        return PopularityScorer(popularity)

    def _fold_in(self, histories):
        return torch.zeros((histories.n_rows, 0), device=self._device())


class ItemKNN(_ItemBasedRecommender):
    """Item-based k-nearest-neighbours with cosine similarity.

    The similarity of items ``i`` and ``j`` is the cosine of their columns
    in the user x item matrix ``X`` (binary when ``implicit=True``)::

        S[i, j] = x_i . x_j / (||x_i|| ||x_j|| + shrinkage)

    with ``S[j, j] = 0``. Column ``j`` of ``S`` keeps the ``n_neighbors``
    largest similarities (the neighbourhood of item ``j``) and a user with
    history row ``h`` scores ``h @ S``: the summed similarities of its items
    within each candidate's neighbourhood. ``S`` is built in blocks of items
    with sparse products, never as a dense ``n_items x n_items`` matrix.

    New users are scored from their history rows (a matrix or an interaction
    table passed to ``recommend``/``predict``/``transform``) without refit;
    users with an empty history (unknown users under
    ``handle_unknown="fallback"``) are scored by item popularity.

    Parameters
    ----------
    n_neighbors : int, default=200
        Neighbours kept per item (clipped to ``n_items - 1``).
    shrinkage : float, default=0.0
        Added to the denominator of the cosine; damps similarities supported
        by few users.
    implicit : bool, default=True
        Binarize ``X`` (every interaction weighs 1). ``False``: use the
        values (``y`` of a table, summed over duplicate pairs; the stored
        values of a matrix) for the similarities and as history weights.
        Histories given to ``recommend`` as a table always have unit weights.
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids not seen at fit: ``"fallback"`` scores unknown users by
        popularity and unknown items 0; ``"error"`` raises a ValueError
        naming them.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    device : str, default="cpu"
        Torch device to score on (the similarities are computed with SciPy
        on the CPU): ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_array of shape (n_items, n_items)
        ``S``: column ``j`` holds the similarities of item ``j``'s
        neighbours (float32).
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order (row indices for a matrix).
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (column indices for a matrix).
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    EASE : Dense item-item model in closed form, usually more accurate.
    Popularity : Non-personalised baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys import ItemKNN
    >>> X = np.array([[1, 1, 0, 0],
    ...               [1, 1, 1, 0],
    ...               [0, 0, 1, 1],
    ...               [0, 1, 1, 1]])
    >>> knn = ItemKNN(n_neighbors=2).fit(X)
    >>> knn.similarity_.shape
    (4, 4)
    >>> item_ids, scores = knn.recommend([0], k=1)
    >>> item_ids
    array([[2]])
    """

    _parameter_constraints = {
        **_ItemBasedRecommender._parameter_constraints,
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "shrinkage": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(
        self, *, n_neighbors=200, shrinkage=0.0, implicit=True,
        handle_unknown="fallback", user_col="user", item_col="item", device="cpu",
    ):
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage
        self.implicit = implicit
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device

    def _solve(self, fit):
        """The top-``n_neighbors`` cosine similarities of the items."""
        X = self._interaction_matrix(fit)
        similarity = self._cosine_neighbors(self._sample_weighted(X, fit))
        return {"similarity_": similarity, **self._histories_state(fit, X)}

    def _cosine_neighbors(self, X):
        """``S`` with the top-``n_neighbors`` entries of each column kept.

        Columns are computed in blocks: ``X[:, block].T @ X`` is the block's
        rows of the (symmetric) co-occurrence matrix, i.e. its columns.
        """
        n_items = X.shape[1]
        k = min(self.n_neighbors, n_items - 1)
        Xt = sp.csr_array(X.T)
        squares = np.asarray(Xt.multiply(Xt).sum(axis=1), dtype=np.float64)
        norms = np.sqrt(squares).ravel()
        cols, rows, vals = [], [], []
        block = max(1, _ITEM_BLOCK // 4 // max(1, n_items))
        for s in range(0, n_items if k > 0 else 0, block):
            e = min(s + block, n_items)
            sims = (Xt[s:e] @ X).toarray().astype(np.float64)
            denom = norms[s:e, None] * norms[None, :] + self.shrinkage
            np.divide(sims, denom, out=sims, where=denom > 0)
            sims[denom <= 0] = 0.0
            local = np.arange(e - s)
            sims[local, s + local] = 0.0  # an item is not its own neighbour
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top_vals = np.take_along_axis(sims, top, axis=1)
            keep = top_vals != 0
            cols.append(np.repeat(np.arange(s, e), keep.sum(axis=1)))
            rows.append(top[keep])
            vals.append(top_vals[keep])
        if cols:
            rows, cols, vals = map(np.concatenate, (rows, cols, vals))
        S = sp.csr_array(
            (np.asarray(vals, dtype=np.float32), (np.asarray(rows, dtype=np.int64),
             np.asarray(cols, dtype=np.int64))),
            shape=(n_items, n_items),
        )
        S.sort_indices()
        return S

    def _build_module(self, state):
        St = sp.csr_array(state["similarity_"].T)
        St.sort_indices()
        return ItemKNNScorer(
            torch.as_tensor(St.indptr.astype(np.int64)),
            torch.as_tensor(St.indices.astype(np.int64)),
            self._as_tensor(St.data.astype(np.float32, copy=False)),
            *self._history_tensors(state["_history"]),
            torch.as_tensor(state["_popularity"], dtype=torch.float32),
        )


class EASE(_ItemBasedRecommender):
    """EASE: embarrassingly shallow autoencoder (Steck, 2019), closed form.

    Learns an item-item weight matrix ``B`` with a zero diagonal by ridge
    regression of every item's column on the others::

        P = (X.T @ X + l2_reg * I)^-1
        B = I - P @ diag(1 / diag(P))

    computed with :mod:`torch.linalg` (Cholesky) on ``device``. A user with
    history row ``h`` scores ``h @ B``. Memory and time grow with
    ``n_items ** 2`` and ``n_items ** 3``: about ``2 * n_items ** 2`` floats
    are needed on ``device``; ``fit`` checks this against the available
    memory (or ``max_memory``) before allocating and raises a MemoryError
    suggesting :class:`ItemKNN` when it does not fit.

    New users are scored from their history rows (a matrix or an interaction
    table passed to ``recommend``/``predict``/``transform``) without refit;
    users with an empty history (unknown users under
    ``handle_unknown="fallback"``) are scored by item popularity.

    Parameters
    ----------
    l2_reg : float, default=500.0
        L2 regularisation ``lambda``; a few hundred suits MovieLens-sized
        data (more for denser data).
    implicit : bool, default=True
        Binarize ``X`` (every interaction weighs 1). ``False``: use the
        values (``y`` of a table, summed over duplicate pairs; the stored
        values of a matrix) in ``X.T @ X`` and as history weights. Histories
        given to ``recommend`` as a table always have unit weights.
    dtype : {"float32", "float64"}, default="float32"
        Floating point precision of the Gram matrix, its inverse and
        ``coef_``.
    max_memory : float, default=None
        Memory budget in bytes for the fit; ``None`` uses the memory
        available on ``device`` (psutil, ``/proc/meminfo`` or
        ``os.sysconf`` on the CPU, ``torch.cuda.mem_get_info`` on CUDA).
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids not seen at fit: ``"fallback"`` scores unknown users by
        popularity and unknown items 0; ``"error"`` raises a ValueError
        naming them.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    device : str, default="cpu"
        Torch device of the inversion and of scoring: ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ... or ``"auto"``. ``X.T @ X`` is computed with SciPy on
        the CPU.

    Attributes
    ----------
    coef_ : ndarray of shape (n_items, n_items)
        ``B``; ``coef_[i, j]`` is the weight of a past interaction with item
        ``i`` in the score of item ``j``. Zero diagonal.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order (row indices for a matrix).
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (column indices for a matrix).
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    ItemKNN : Sparse item-item model for catalogues too large for EASE.
    Popularity : Non-personalised baseline.

    References
    ----------
    H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", The Web
    Conference (WWW), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys import EASE
    >>> X = np.array([[1, 1, 0, 0],
    ...               [1, 1, 1, 0],
    ...               [0, 0, 1, 1],
    ...               [0, 1, 1, 1]])
    >>> ease = EASE(l2_reg=1.0).fit(X)
    >>> ease.coef_.shape
    (4, 4)
    >>> item_ids, scores = ease.recommend([0], k=1)
    >>> item_ids
    array([[2]])
    """

    _parameter_constraints = {
        **_ItemBasedRecommender._parameter_constraints,
        "l2_reg": [Interval(numbers.Real, 0, None, closed="neither")],
        "dtype": [StrOptions({"float32", "float64"})],
        "max_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self, *, l2_reg=500.0, implicit=True, dtype="float32", max_memory=None,
        handle_unknown="fallback", user_col="user", item_col="item", device="cpu",
    ):
        self.l2_reg = l2_reg
        self.implicit = implicit
        self.dtype = dtype
        self.max_memory = max_memory
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device

    def _solve(self, fit):
        """Solve for the item-item weights ``coef_``.

        Raises a MemoryError when the item-item matrices would not fit in
        ``max_memory`` or in the memory available on the device.
        """
        dtype = np.dtype(self.dtype)
        X = self._interaction_matrix(fit, dtype)
        n_items = X.shape[1]
        _check_memory(n_items, dtype.itemsize, torch.device(fit.device), self.max_memory)
        gram = torch.from_numpy(_gram(self._sample_weighted(X, fit))).to(fit.device)
        if not bool(torch.isfinite(gram).all()):
            raise ValueError(
                f"X.T @ X overflows {self.dtype}: the interaction values are too "
                "large; rescale them, use implicit=True or dtype='float64'."
            )
        gram.diagonal().add_(self.l2_reg)
        chol, info = torch.linalg.cholesky_ex(gram)
        del gram
        if int(info) != 0:
            raise ValueError(
                f"X.T @ X + l2_reg * I is not positive definite in {self.dtype} "
                f"(l2_reg={self.l2_reg!r}); increase l2_reg or use dtype='float64'."
            )
        P = torch.cholesky_inverse(chol)
        del chol
        P.div_(-P.diagonal().clone()[None, :])  # B = I - P diag(1 / diag(P))
        P.diagonal().zero_()
        return {"coef_": P.cpu().numpy(), **self._histories_state(fit, X)}

    def _build_module(self, state):
        coef = state["coef_"]
        dtype = torch.float64 if coef.dtype == np.float64 else torch.float32
        return EASEScorer(
            self._as_tensor(coef),
            *self._history_tensors(state["_history"]),
            torch.as_tensor(state["_popularity"], dtype=dtype),
        )


def _gram(X):
    """Dense ``X.T @ X`` of a sparse user x item matrix, in blocks of items."""
    n_items = X.shape[1]
    Xt = sp.csr_array(X.T)
    gram = np.empty((n_items, n_items), dtype=X.dtype)
    block = max(1, _ITEM_BLOCK // max(1, n_items))
    for s in range(0, n_items, block):
        gram[s : s + block] = (Xt[s : s + block] @ X).toarray()
    return gram


def _available_memory(device):
    """Free memory of ``device`` in bytes, or None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(n_items, itemsize, device, max_memory):
    """Raise a MemoryError when EASE's dense matrices would not fit.

    The inversion holds two ``n_items x n_items`` matrices on ``device`` (the
    Gram matrix and its Cholesky factor, then the factor and the inverse);
    with CUDA the Gram matrix and ``coef_`` also live on the host.
    """
    square = float(n_items) ** 2 * itemsize
    # the Gram matrix is built in blocks of at most _ITEM_BLOCK floats
    workspace = 4 * min(float(n_items) ** 2, _ITEM_BLOCK) * itemsize
    needs = [(device, 2 * square + workspace)]
    if device.type == "cuda":
        needs.append((torch.device("cpu"), square + workspace))
    for dev, need in needs:
        if max_memory is not None:
            limit, source = float(max_memory), f"max_memory={max_memory!r} allows"
        else:
            limit = _available_memory(dev)
            where = "CUDA" if dev.type == "cuda" else "RAM"
            source = f"{where}: available is"
        if limit is not None and need > limit:
            raise MemoryError(
                f"EASE with {n_items} items needs about {need / 1e9:.2f} GB "
                f"({n_items} x {n_items} item-item matrices) but {source} "
                f"{limit / 1e9:.2f} GB. Use ItemKNN, whose memory grows with "
                "n_items * n_neighbors, for a catalogue this large (or prune "
                "rare items)."
            )
