"""Approximate top-k recommendation over large catalogues (HNSW index).

:meth:`~sklearn_recsys.MatrixFactorization.recommend` is exact: it scores
every item for every user, in blocks of users so that the user x item matrix
is never held in memory. Its cost grows with the catalogue (one dot product
per item and user). :class:`ApproximateIndex` answers the same question in
time roughly logarithmic in the number of items, from a hierarchical
navigable small-world graph (HNSW, through `hnswlib
<https://github.com/nmslib/hnswlib>`_), at the price of sometimes missing
one of the true top-k items (see :meth:`ApproximateIndex.recall_at_k`).

**Which models.** Those whose score is linear in the user representation,
``score(u, i) = user_repr[u] @ item_vector[i] + item_offset[i]``:
:class:`~sklearn_recsys.MatrixFactorization` with ``architecture="dot"``
(``item_vector`` holds the item factors and a 1 for the user bias, the offset
is the item bias plus the global bias), :class:`~sklearn_recsys.CNNRecommender`
(the same from the item towers) and the sequence models
:class:`~sklearn_recsys.LSTMRecommender` and
:class:`~sklearn_recsys.AttentionRecommender` (the encoder state after the
history times the output item embeddings, plus the output bias). NeuMF and
the closed-form baselines score through a network or a matrix that is not of
that form and are refused.

**How.** Top-k by score is a maximum inner product search over the item
vectors ``x_i = [item_vector[i], item_offset[i]]`` for the query
``q = [user_repr, 1]``. The index holds the centred vectors ``x_i - m``
(``m`` the mean item vector: subtracting one vector from every item lowers
all the scores of a user by the same ``q . m``, so the ranking is unchanged)
in hnswlib's inner-product space, and is searched with ``q``. An
inner-product graph (ip-NSW, Morozov and Babenko, NeurIPS 2018) is used
rather than the reduction to a Euclidean search by an extra norm coordinate
(Bachrach et al., RecSys 2014): on the nearly random 64-d factors of the
10^5-item model of ``benchmarks/bench_catalogue.py --quick`` the reduction
found 55% of the exact top-10 at ``ef_search=800`` where the inner-product
graph of this module found 98%. Seen items are left out by fetching, for
each user, ``k`` plus the number of items it has seen (rounded up to a power
of two) and dropping those; the scores of the items returned are recomputed
exactly by the model, and they are ranked as :meth:`recommend` ranks them
(score, then item index). A user whose fetch would reach a quarter of the
catalogue is ranked exactly instead.

Installing the backend: ``pip install -c constraints.txt "sklearn_recsys[ann]"``
(hnswlib builds from source, which needs a C++ compiler).
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
import scipy.sparse as sp
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender
from ._input import as_input, check_k
from ._topk import topk
from .nn._protocol import LinearItemScorer
from .nn._sequence import _SequenceEncoder

__all__ = ["ApproximateIndex"]

_EXTRA = 'pip install -c constraints.txt "sklearn_recsys[ann]"'

# Items whose vectors are computed and added to the index at once.
_ADD_BLOCK = 2**16
# Upper bound on the floats of one block of gathered user representations
# when the exact scores of the fetched items are recomputed.
_PAIR_BLOCK = 2**22
# Users whose over-fetch reaches this fraction of the catalogue are ranked
# exactly (an HNSW search that large costs more than scoring every item).
_EXACT_FRACTION = 0.25


def _import_hnswlib():
    try:
        import hnswlib
    except ImportError as exc:
        raise ImportError(
            "ApproximateIndex(backend='hnswlib') needs hnswlib, which is not "
            f"installed. Install the ann extra: {_EXTRA}."
        ) from exc
    return hnswlib


def _item_terms(module, items):
    """``(vectors, offset)`` of ``items``: ``score = user_repr @ vectors.T + offset``."""
    if isinstance(module, LinearItemScorer):
        return module.item_linear_terms(items)
    weight, bias = module._output_terms()  # with attributes and registered items
    return weight[items], bias[items]


def _check_linear(module):
    """Raise a TypeError for a network not linear in the user representation."""
    if isinstance(module, (LinearItemScorer, _SequenceEncoder)):
        return
    raise TypeError(
        f"ApproximateIndex needs a model whose scores are linear in the user "
        f"representation (user_repr @ item_vectors.T + item_offset); this one "
        f"scores through a {type(module).__name__}, which is not. Use "
        "MatrixFactorization(architecture='dot'), CNNRecommender, LSTMRecommender "
        "or AttentionRecommender, or the exact estimator.recommend."
    )


def _linear_module(estimator):
    """The fitted scoring network of ``estimator``, checked to be linear."""
    if not isinstance(estimator, BaseRecommender):
        raise TypeError(
            "ApproximateIndex indexes a fitted recommender of sklearn_recsys "
            "(MatrixFactorization, CNNRecommender, LSTMRecommender, "
            f"AttentionRecommender); got a {type(estimator).__name__}."
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise NotFittedError(
            f"This {type(estimator).__name__} is not fitted yet: fit it before "
            "building an ApproximateIndex on it."
        ) from exc
    module = estimator._module()
    _check_linear(module)
    return module


class ApproximateIndex(BaseEstimator):
    """Approximate top-k recommendation from an HNSW index of the item vectors.

    Built by :meth:`fit` from a fitted recommender whose scores are linear in
    the user representation (see the module documentation), it returns what
    the estimator's ``recommend`` returns, for known users or histories of
    new users, without scoring every item: the candidates come from the
    index, their scores are recomputed exactly by the model.

    Parameters
    ----------
    estimator : object
        A fitted :class:`~sklearn_recsys.MatrixFactorization` (with
        ``architecture="dot"``), :class:`~sklearn_recsys.CNNRecommender`,
        :class:`~sklearn_recsys.LSTMRecommender` or
        :class:`~sklearn_recsys.AttentionRecommender`. It is not copied nor
        refitted; refit it (or register items) and the index must be built
        again.
    backend : {"hnswlib"}, default="hnswlib"
        Library that builds and searches the graph.
    M : int, default=16
        Links per node of the graph (hnswlib's ``M``): more links, better
        recall, more memory (about ``8 * M`` bytes per item) and a slower
        build.
    ef_construction : int, default=200
        Size of the candidate list while building (hnswlib's
        ``ef_construction``): higher is a better graph and a slower build.
    ef_search : int, default=100
        Size of the candidate list while searching (hnswlib's ``ef``; at
        least the number of items fetched for a user): higher is better
        recall and slower queries. It may be changed with ``set_params``
        after :meth:`fit` without building the index again.
    n_jobs : int, default=None
        Threads building and searching the index. ``None`` means 1, ``-1``
        all the processors (joblib's convention).
    random_state : int, RandomState instance or None, default=None
        Seed of the levels drawn for the items when building. With
        ``n_jobs=1`` two builds with the same seed give the same index.

    Attributes
    ----------
    index_ : hnswlib.Index
        The graph over the centred item vectors (inner-product space of
        dimension ``n_dims_``).
    n_items_ : int
        Number of items indexed (the estimator's ``item_ids_``).
    n_dims_ : int
        Dimension of the indexed vectors: the width of a user representation
        plus one (the item offset).
    item_mean_ : ndarray, one entry per indexed dimension
        Mean of the items' ``[item_vector, item_offset]``, subtracted from
        each before indexing.

    See Also
    --------
    sklearn_recsys.MatrixFactorization.recommend : The exact top-k.

    Notes
    -----
    Not safe to call from several threads at once (the search parameter of
    the index is set before each search). The index holds about
    ``4 * n_dims_ + 8 * M + 40`` bytes per item on top of the model. Items
    are added with ``n_jobs`` threads; with more than one, the graph (hence
    the approximate results) may differ between two builds.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys import MatrixFactorization
    >>> from sklearn_recsys.ann import ApproximateIndex
    >>> from sklearn_recsys.datasets import make_interactions
    >>> X = make_interactions(n_users=100, n_items=300, random_state=0).interactions
    >>> mf = MatrixFactorization(loss="softmax", max_iter=5, random_state=0).fit(X)
    >>> index = ApproximateIndex(mf, random_state=0).fit()
    >>> item_ids, scores = index.recommend([0, 1, 2], k=5)
    >>> item_ids.shape, scores.shape
    ((3, 5), (3, 5))
    >>> index.recall_at_k(np.arange(100), k=10) >= 0.95
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["recommend", "fit"])],
        "backend": [StrOptions({"hnswlib"})],
        "M": [Interval(numbers.Integral, 2, None, closed="left")],
        "ef_construction": [Interval(numbers.Integral, 1, None, closed="left")],
        "ef_search": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator, *, backend="hnswlib", M=16, ef_construction=200,
        ef_search=100, n_jobs=None, random_state=None,
    ):
        self.estimator = estimator
        self.backend = backend
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Build the index from the item vectors of the fitted estimator.

        Parameters
        ----------
        X : None
            Ignored: the estimator is already fitted and is not refitted.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The index, built.
        """
        hnswlib = _import_hnswlib()
        estimator = self.estimator
        module = _linear_module(estimator)
        n_threads = effective_n_jobs(self.n_jobs)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        n_items = len(estimator._item_index)
        device = estimator._device()
        with module.scoring():
            blocks = [
                torch.arange(s, min(s + _ADD_BLOCK, n_items), device=device)
                for s in range(0, n_items, _ADD_BLOCK)
            ]
            # first pass: the mean item vector; second: the centred vectors
            total = 0.0
            for items in blocks:
                total = total + self._item_block(module, items).sum(0, dtype=np.float64)
            mean = (total / n_items).astype(np.float32)
            n_dims = len(mean)
            index = hnswlib.Index(space="ip", dim=n_dims)
            index.init_index(
                max_elements=n_items, ef_construction=self.ef_construction, M=self.M,
                random_seed=seed,
            )
            for items in blocks:
                data = self._item_block(module, items) - mean
                index.add_items(data, items.cpu().numpy(), num_threads=n_threads)
        index.set_ef(self.ef_search)
        self.index_ = index
        self.n_items_ = n_items
        self.n_dims_ = n_dims
        self.item_mean_ = mean
        self._ef = self.ef_search
        self._indexed_module = module
        return self

    @staticmethod
    def _item_block(module, items):
        """``[item_vector, item_offset]`` of ``items`` as float32 numpy."""
        vectors, offset = _item_terms(module, items)
        x = torch.cat([vectors.float(), offset.float()[:, None]], dim=1)
        return np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)

    def _check_current(self):
        check_is_fitted(self, "index_")
        estimator = self.estimator
        current = estimator._module() if hasattr(estimator, "_fitted_names") else None
        if current is not self._indexed_module or len(estimator._item_index) != self.n_items_:
            raise ValueError(
                f"The {type(estimator).__name__} changed since this index was built "
                "(refitted, loaded or items registered): call fit again to rebuild it."
            )
        return current

    def __getstate__(self):
        # the estimator's network does not keep its identity through pickle
        state = dict(super().__getstate__())
        state.pop("_indexed_module", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "index_" in state:
            self._indexed_module = self.estimator._module()

    def recommend(self, users, k=10, *, exclude_seen=True):
        """Approximate top-``k`` items for each user, best first.

        The output is that of the estimator's ``recommend`` (same ids, same
        scores for the same items, ties ranked by item index), except that
        an item of the exact top-``k`` may be missing, replaced by the next
        best one the index found.

        Parameters
        ----------
        users : array-like of shape (n_users,), DataFrame or matrix
            Raw ids of users (handled as the estimator's ``recommend``
            handles them: unknown ids follow its ``handle_unknown``), or
            histories of new users to fold in: a user x item matrix, an
            interaction table or, for the sequence models, a list of lists
            of item ids.
        k : int, default=10
            Number of items per user. Clipped to the number of items.
        exclude_seen : bool, default=True
            Leave out items the user interacted with at fit (or in the given
            history).

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids, best first.
        scores : ndarray of shape (n_users, k)
            Their scores, computed exactly by the model. A user with fewer
            than ``k`` eligible items gets its remaining slots filled with
            excluded items scored ``-inf``.
        """
        module = self._check_current()
        k = min(check_k(k), self.n_items_)
        estimator = self.estimator
        with module.scoring():
            reprs, seen = estimator._user_reprs_for(as_input(users))
            top, top_scores = self._top_k(module, reprs, seen if exclude_seen else None, k)
        return estimator._item_index.inverse_transform(top), top_scores

    def _top_k(self, module, reprs, seen, k):
        n_users, n_items = reprs.shape[0], self.n_items_
        n_seen = np.zeros(n_users, dtype=np.int64) if seen is None else np.diff(seen.indptr)
        need = np.minimum(k + n_seen, n_items)
        # fetch sizes rounded up to powers of two: few searches, each of one size
        fetch = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), n_items)
        out_idx = np.empty((n_users, k), dtype=np.int64)
        out_scores = np.empty((n_users, k), dtype=np.float32)
        queries = None
        if self._ef != self.ef_search:
            self.index_.set_ef(self.ef_search)
            self._ef = self.ef_search
        n_threads = effective_n_jobs(self.n_jobs)
        for size in np.unique(fetch):
            rows = np.flatnonzero(fetch == size)
            part_seen = None if seen is None else seen[rows]
            labels = None
            if size < _EXACT_FRACTION * n_items:
                if queries is None:
                    queries = self._queries(reprs)
                try:
                    labels, _ = self.index_.knn_query(
                        queries[rows], k=int(size), num_threads=n_threads
                    )
                except RuntimeError:  # the graph gave fewer than ``size`` items
                    labels = None
            rows_t = torch.as_tensor(rows, device=reprs.device)
            if labels is None:
                idx, scores = self.estimator._top_k(reprs[rows_t], part_seen, None, k)
            else:
                idx, scores = self._rerank(module, reprs[rows_t], part_seen, labels, k)
            out_idx[rows], out_scores[rows] = idx, scores
        return out_idx, out_scores

    def _queries(self, reprs):
        """``[user_repr, 1]`` of each user, float32 numpy."""
        q = reprs.detach().float().cpu().numpy()
        return np.ascontiguousarray(
            np.concatenate([q, np.ones((q.shape[0], 1), np.float32)], 1)
        )

    def _rerank(self, module, reprs, seen, labels, k):
        """Exact scores of the fetched items; seen ones left out; top ``k``."""
        labels = np.sort(labels.astype(np.int64), axis=1)  # ties: lower index first
        m, size = labels.shape
        device = reprs.device
        flat_items = torch.as_tensor(labels.ravel(), device=device)
        scores = torch.empty(m * size, dtype=torch.float32, device=device)
        block = max(1, _PAIR_BLOCK // max(1, reprs.shape[1]))
        for s in range(0, m * size, block):
            e = min(s + block, m * size)
            rows = torch.arange(s, e, device=device) // size
            scores[s:e] = module.score_pairs(reprs[rows], flat_items[s:e]).float()
        scores = scores.view(m, size)
        if seen is not None and seen.nnz:
            seen = sp.csr_array(seen)
            n = np.int64(self.n_items_)
            seen_keys = np.repeat(np.arange(m, dtype=np.int64), np.diff(seen.indptr)) * n
            seen_keys += seen.indices
            keys = np.arange(m, dtype=np.int64)[:, None] * n + labels
            excluded = np.isin(keys, seen_keys)
            scores[torch.as_tensor(excluded, device=device)] = -torch.inf
        top_scores, top = topk(scores, k)
        top = top.cpu().numpy()
        return np.take_along_axis(labels, top, axis=1), top_scores.cpu().numpy()

    def recall_at_k(self, users, k=10, *, exclude_seen=True):
        """Mean fraction of the exact top-``k`` items that the index returns.

        Compares :meth:`recommend` with the estimator's exact ``recommend``
        for the same users (items scored ``-inf``, i.e. padding for users
        with fewer than ``k`` eligible items, are not counted).

        Parameters
        ----------
        users : array-like of shape (n_users,), DataFrame or matrix
            Users, as :meth:`recommend` takes them.
        k : int, default=10
            Number of items per user.
        exclude_seen : bool, default=True
            Leave out items the user interacted with.

        Returns
        -------
        recall : float
            In [0, 1]; 1 when the index finds every exact top-``k`` item.
        """
        approx, _ = self.recommend(users, k, exclude_seen=exclude_seen)
        exact, exact_scores = self.estimator.recommend(users, k, exclude_seen=exclude_seen)
        return _recall_against(approx, exact, exact_scores)


def _recall_against(approx_ids, exact_ids, exact_scores=None):
    """Mean fraction of each row of ``exact_ids`` found in ``approx_ids``.

    Entries of ``exact_ids`` whose ``exact_scores`` are ``-inf`` are not
    counted; a row with none counts as 1.
    """
    approx_ids, exact_ids = np.asarray(approx_ids), np.asarray(exact_ids)
    valid = (
        np.ones(exact_ids.shape, dtype=bool) if exact_scores is None
        else np.isfinite(np.asarray(exact_scores))
    )
    recalls = np.empty(len(exact_ids))
    for i, (a, e, ok) in enumerate(zip(approx_ids, exact_ids, valid)):
        wanted = e[ok]
        recalls[i] = 1.0 if len(wanted) == 0 else np.isin(wanted, a).mean()
    return float(recalls.mean())
