"""Vectorised top-k ranking metrics for implicit-feedback recommenders.

All ranking metrics share one core:

1. the scores of one chunk of users are copied to ``device`` (a torch
   device) and excluded items get score ``-inf`` (under the sampled protocol
   only the scores of the relevant and sampled items are gathered instead);
2. ``sklearn_recsys._topk.topk`` (:func:`torch.topk` with score ties
   broken in favour of the lower item index) gives the ``(n_users, k)``
   matrix of recommended item indices in rank order (``-1`` where fewer than
   ``k`` items can be ranked);
3. the ``(n_users, k)`` boolean *hit matrix* is obtained by looking the
   recommended items up in the CSR relevance matrix (binary search on the
   sorted keys ``user * n_items + item``);
4. the metric is computed from the hit matrix and the number of relevant
   items of each user.

There is no Python loop over users; users are processed in chunks so that
the memory used stays bounded whatever the number of users.

Ties in scores are broken by one documented rule: among items of equal score
the lower item index (column of ``y_score``) is ranked first, the convention
of the reference implementations (a stable sort by decreasing score).  The
rankings, hence the hit matrices, are therefore deterministic and identical
on CPU and CUDA (metric values can differ only by the rounding of sums).
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._topk import topk

_METRICS = ("ndcg", "recall", "precision", "hit_rate", "mrr", "map")

# Maximum number of (user, item) cells processed at once.  Each chunk holds a
# few dense arrays of shape (n_chunk_users, n_items) (scores, and under the
# sampled protocol random keys and boolean masks), i.e. some tens of MiB.
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _to_binary_csr(X, name, *, relevance):
    """Convert a 2D sparse or dense input into a canonical boolean CSR array.

    With ``relevance=True`` an entry is kept when it is > 0; otherwise (masks)
    when it is != 0.  The result has sorted indices, no duplicates and no
    explicit zeros.
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be 2D, got a sparse input of shape {X.shape}."
            )
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {X.dtype}.")
        csr = sp.csr_array(X, copy=True)
        csr.sum_duplicates()
        data = csr.data
    else:
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2D, got an array of shape {X.shape}.")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {X.dtype}.")
        data = X
    if data.dtype.kind == "f" and np.isnan(data).any():
        raise ValueError(f"{name} contains NaN.")
    if not sp.issparse(X):
        csr = sp.csr_array(X > 0 if relevance else X != 0)
    else:
        csr.data = ((data > 0) if relevance else (data != 0)).astype(np.int8)
        csr.eliminate_zeros()
        csr.data = csr.data.astype(bool)
    csr.sort_indices()
    csr.indptr = csr.indptr.astype(np.int64, copy=False)
    csr.indices = csr.indices.astype(np.int64, copy=False)
    return csr


def _check_scores(y_score):
    """Validate ``y_score``; return it as a 2D numpy array or torch tensor."""
    if sp.issparse(y_score):
        raise TypeError(
            "y_score must be a dense numpy array or torch tensor, got a sparse "
            "matrix; scores are needed for every (user, item) pair."
        )
    if isinstance(y_score, torch.Tensor):
        y_score = y_score.detach()
        if y_score.is_complex() or y_score.dtype == torch.bool:
            raise TypeError(f"y_score must be real-valued, got dtype {y_score.dtype}.")
    else:
        y_score = np.asarray(y_score)
        if y_score.dtype.kind not in "biuf":
            raise TypeError(f"y_score must be numeric, got dtype {y_score.dtype}.")
    if y_score.ndim != 2:
        raise ValueError(
            f"y_score must be 2D (n_users, n_items), got shape {tuple(y_score.shape)}."
        )
    return y_score


def _check_device(device):
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Invalid device {device!r}: {exc}") from exc


def _check_ranking_inputs(y_true, y_score, k, exclude, n_negatives):
    """Validate the inputs of the ranking metrics.

    Returns ``(relevant, y_score, excluded)`` where ``relevant`` is the
    canonical boolean CSR relevance matrix with excluded items removed and
    ``excluded`` the canonical boolean CSR mask (or None).
    """
    y_score = _check_scores(y_score)
    relevant = _to_binary_csr(y_true, "y_true", relevance=True)
    shape = tuple(y_score.shape)
    if relevant.shape != shape:
        raise ValueError(
            f"y_true and y_score must have the same shape, got y_true of shape "
            f"{relevant.shape} and y_score of shape {shape}."
        )
    n_users, n_items = shape
    if n_users == 0:
        raise ValueError("Empty input: y_true and y_score have 0 users (rows).")
    if k > n_items:
        raise ValueError(f"k={k} is larger than the number of items n_items={n_items}.")

    excluded = None
    if exclude is not None:
        excluded = _to_binary_csr(exclude, "exclude", relevance=False)
        if excluded.shape != shape:
            raise ValueError(
                f"exclude must have the same shape as y_score, got exclude of "
                f"shape {excluded.shape} and y_score of shape {shape}."
            )
        if excluded.nnz:
            # relevant \ excluded, structurally.
            overlap = relevant.multiply(excluded).astype(np.int8)
            relevant = _to_binary_csr(
                relevant.astype(np.int8) - overlap, "y_true", relevance=True
            )

    if n_negatives is not None:
        n_blocked = np.diff(relevant.indptr)
        if excluded is not None:
            n_blocked = n_blocked + np.diff(excluded.indptr)
        n_candidates = n_items - n_blocked
        too_few = n_candidates < n_negatives
        if too_few.any():
            raise ValueError(
                f"n_negatives={n_negatives} is larger than the number of "
                f"candidate negatives (items neither relevant nor excluded) of "
                f"{int(too_few.sum())} user(s); the smallest number of "
                f"candidates is {int(n_candidates.min())}."
            )
    return relevant, y_score, excluded


# --------------------------------------------------------------------------
# Core: top-k -> hit matrix -> metric
# --------------------------------------------------------------------------


def _chunks(n_users, n_cols):
    step = max(1, _CHUNK_ELEMENTS // max(1, n_cols))
    for start in range(0, n_users, step):
        yield start, min(start + step, n_users)


def _csr_chunk_coo(csr, start, stop, device):
    """Local (row, col) coordinates of the stored entries of rows start:stop."""
    lo, hi = int(csr.indptr[start]), int(csr.indptr[stop])
    rows = np.repeat(
        np.arange(stop - start, dtype=np.int64), np.diff(csr.indptr[start : stop + 1])
    )
    cols = csr.indices[lo:hi]
    return (
        torch.as_tensor(rows, device=device),
        torch.as_tensor(cols, dtype=torch.int64, device=device),
    )


def _score_chunk(y_score, start, stop, device):
    """Copy of y_score[start:stop] as a float32/float64 tensor on device."""
    chunk = y_score[start:stop]
    if isinstance(chunk, torch.Tensor):
        dtype = chunk.dtype if chunk.dtype in (torch.float32, torch.float64) else None
        out = chunk.to(device=device, dtype=dtype or torch.float64, copy=True)
    else:
        dtype = chunk.dtype if chunk.dtype in (np.float32, np.float64) else np.float64
        out = torch.tensor(np.asarray(chunk, dtype=dtype), device=device)
    if torch.isnan(out.amax()):  # amax propagates NaN; cheaper than isnan().any()
        raise ValueError("y_score contains NaN.")
    return out


def _padded_rows(csr, start, stop, device):
    """Column indices of rows start:stop as a (stop - start, width) matrix.

    Rows are padded with -1 to the length of the longest row of the chunk.
    """
    rows, cols = _csr_chunk_coo(csr, start, stop, device)
    counts = np.diff(csr.indptr[start : stop + 1])
    width = int(counts.max()) if counts.size else 0
    out = torch.full((stop - start, width), -1, dtype=torch.int64, device=device)
    if cols.numel():
        row_start = torch.as_tensor(
            csr.indptr[start:stop] - csr.indptr[start], device=device
        )
        pos = torch.arange(cols.numel(), device=device) - row_start[rows]
        out[rows, pos] = cols
    return out


def _sample_candidates(relevant, excluded, start, stop, n_negatives, rng, device):
    """Candidate items of the sampled protocol, (stop - start, width), -1 padded.

    Each row holds the user's relevant items followed by ``n_negatives``
    items drawn uniformly without replacement among the items that are
    neither relevant nor excluded: those with the largest uniform random
    keys.  Keys are drawn with numpy, so the sample depends neither on the
    device nor on the chunking.
    """
    candidates = _padded_rows(relevant, start, stop, device)
    if n_negatives == 0:
        return candidates
    n_items = relevant.shape[1]
    keys = torch.as_tensor(rng.random((stop - start, n_items)), device=device)
    for blocked in (relevant, excluded):
        if blocked is not None:
            rows, cols = _csr_chunk_coo(blocked, start, stop, device)
            keys[rows, cols] = -1.0
    sampled = torch.topk(keys, n_negatives, dim=1, sorted=False).indices
    return torch.cat([candidates, sampled], dim=1)


def _iter_topk(relevant, y_score, excluded, k, n_negatives, rng, device):
    """Yield ``(start, stop, topk_items)`` for consecutive chunks of users.

    ``topk_items`` is an int64 tensor of shape (stop - start, k) on
    ``device`` holding distinct item indices in rank order, -1 where no item
    can be ranked at that position (all remaining items have score -inf).
    Among items of equal score the lower item index comes first, under both
    protocols.
    """
    n_users, n_items = relevant.shape
    for start, stop in _chunks(n_users, n_items):
        scores = _score_chunk(y_score, start, stop, device)
        if n_negatives is None:
            if excluded is not None:
                rows, cols = _csr_chunk_coo(excluded, start, stop, device)
                scores[rows, cols] = -torch.inf
            values, items = topk(scores, k)
        else:
            # rank the (few) candidates only
            candidates = _sample_candidates(
                relevant, excluded, start, stop, n_negatives, rng, device
            )
            # candidates in increasing item order (-1 padding, of score -inf,
            # first), so that the lower column of cand_scores in a tie is the
            # lower item index
            candidates = torch.sort(candidates, dim=1).values
            if candidates.shape[1] < k:
                pad = torch.full(
                    (stop - start, k - candidates.shape[1]), -1,
                    dtype=torch.int64, device=device,
                )
                candidates = torch.cat([candidates, pad], dim=1)
            cand_scores = torch.gather(scores, 1, candidates.clamp(min=0))
            cand_scores.masked_fill_(candidates < 0, -torch.inf)
            values, order = topk(cand_scores, k)
            items = torch.gather(candidates, 1, order)
        items[values == -torch.inf] = -1
        yield start, stop, items


def _hits_from_topk(topk_items, relevant, start, stop):
    """Boolean hit matrix (stop - start, k) of a chunk of top-k lists.

    ``relevant`` is a canonical CSR matrix; the recommended items are looked
    up by binary search among the sorted keys ``row * n_items + col`` of the
    stored entries of rows start:stop.  Entries -1 are never hits.
    """
    device = topk_items.device
    n_items = relevant.shape[1]
    rows, cols = _csr_chunk_coo(relevant, start, stop, device)
    if cols.numel() == 0:
        return torch.zeros(topk_items.shape, dtype=torch.bool, device=device)
    keys = rows * n_items + cols  # sorted: canonical CSR
    local = torch.arange(stop - start, device=device).unsqueeze(1)
    query = local * n_items + topk_items
    pos = torch.searchsorted(keys, query.reshape(-1)).clamp_(max=keys.numel() - 1)
    hits = (keys[pos] == query.reshape(-1)).reshape(topk_items.shape)
    return hits & (topk_items >= 0)


def _metric_from_hits(metric, hits, n_relevant, k):
    """Per-user metric (float64 tensor, NaN where n_relevant == 0)."""
    device = hits.device
    hits_f = hits.to(torch.float64)
    n_rel = n_relevant.to(torch.float64)
    n_hits = hits_f.sum(dim=1)
    ranks = torch.arange(1, k + 1, dtype=torch.float64, device=device)
    if metric == "ndcg":
        discount = 1.0 / torch.log2(ranks + 1.0)
        dcg = hits_f @ discount
        ideal = torch.cumsum(discount, dim=0)
        n_ideal = torch.clamp(n_relevant, min=1, max=k) - 1
        value = dcg / ideal[n_ideal]
    elif metric == "recall":
        value = n_hits / n_rel
    elif metric == "precision":
        value = n_hits / k
    elif metric == "hit_rate":
        value = (n_hits > 0).to(torch.float64)
    elif metric == "mrr":
        # argmax returns the first maximal value, i.e. the first hit
        first = torch.argmax(hits.to(torch.int8), dim=1).to(torch.float64)
        value = torch.where(n_hits > 0, 1.0 / (first + 1.0), 0.0)
    elif metric == "map":
        precision_at_r = torch.cumsum(hits_f, dim=1) / ranks
        value = (precision_at_r * hits_f).sum(dim=1) / torch.clamp(n_rel, max=k)
    else:  # pragma: no cover - guarded by callers
        raise ValueError(f"Unknown metric {metric!r}; expected one of {_METRICS}.")
    return torch.where(n_relevant > 0, value, torch.nan)


def _metric_per_user(metric, relevant, topk_chunks, k, device):
    """Per-user metric (float64 ndarray, NaN where no item is relevant).

    ``topk_chunks`` yields ``(start, stop, topk_items)`` for consecutive
    chunks of users covering all the rows of ``relevant``.
    """
    n_relevant = torch.as_tensor(np.diff(relevant.indptr), device=device)
    out = np.empty(relevant.shape[0], dtype=np.float64)
    for start, stop, items in topk_chunks:
        hits = _hits_from_topk(items, relevant, start, stop)
        values = _metric_from_hits(metric, hits, n_relevant[start:stop], k)
        out[start:stop] = values.cpu().numpy()
    return out


def _drop_duplicates(topk_items):
    """Replace repeated items of each row by -1, keeping the best rank."""
    sorted_items, order = torch.sort(topk_items, dim=1, stable=True)
    dup_sorted = torch.zeros_like(topk_items, dtype=torch.bool)
    dup_sorted[:, 1:] = sorted_items[:, 1:] == sorted_items[:, :-1]
    dup = torch.zeros_like(dup_sorted).scatter_(1, order, dup_sorted)
    return topk_items.masked_fill(dup, -1)


def _check_topk_items(topk_items, n_users, n_items, k, device):
    """Validate top-k lists; return them as an int64 (n_users, k) tensor.

    Lists are cut or padded with -1 to ``k`` columns, and repeated items of
    a list are replaced by -1 after their best rank.
    """
    if isinstance(topk_items, torch.Tensor):
        items = topk_items.detach()
        if items.is_floating_point() or items.is_complex() or items.dtype == torch.bool:
            raise TypeError(f"topk_items must hold integers, got dtype {items.dtype}.")
        items = items.to(device=device, dtype=torch.int64)
    else:
        items = np.asarray(topk_items)
        if items.dtype.kind not in "iu" and items.size:
            raise TypeError(f"topk_items must hold integers, got dtype {items.dtype}.")
        items = torch.as_tensor(items.astype(np.int64), device=device)
    if items.ndim != 2 or items.shape[0] != n_users:
        raise ValueError(
            f"topk_items must have shape (n_users, k) with n_users={n_users} "
            f"(rows of y_true), got shape {tuple(items.shape)}."
        )
    if items.numel() and (int(items.min()) < -1 or int(items.max()) >= n_items):
        raise ValueError(
            f"topk_items must hold item indices in [0, {n_items}) or -1 for padding."
        )
    if items.shape[1] >= k:
        items = items[:, :k]
    else:
        pad = torch.full(
            (n_users, k - items.shape[1]), -1, dtype=torch.int64, device=device
        )
        items = torch.cat([items, pad], dim=1)
    return _drop_duplicates(items)


def _per_user_metric_from_topk(metric, topk_items, y_true_csr, k, *, device="cpu"):
    """Per-user ranking metric of given top-k recommendation lists.

    Building block shared by the ranking metrics and scorers: it works from
    recommendation lists rather than from scores.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate", "mrr", "map"}
        The metric, as defined in :func:`ndcg_at_k`, :func:`recall_at_k`,
        etc.

    topk_items : array-like or torch.Tensor of shape (n_users, n_cols)
        Item indices in rank order; -1 means "no item at that rank".  Only
        the first ``k`` columns are used; lists shorter than ``k`` are padded
        with -1.  A repeated item only counts at its best rank (later
        occurrences are treated as -1).

    y_true_csr : sparse matrix of shape (n_users, n_items)
        Relevance; an entry > 0 is relevant.  Dense input is accepted too.
        Remove items excluded from ranking (e.g. training items) beforehand.

    k : int
        Cut-off; ``precision = hits / k`` etc.

    device : str or torch.device, default="cpu"
        Device the computation runs on.

    Returns
    -------
    values : ndarray of shape (n_users,)
        float64 metric of each user, np.nan for users with no relevant item.
    """
    if metric not in _METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {_METRICS}.")
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    k = int(k)
    device = _check_device(device)
    relevant = _to_binary_csr(y_true_csr, "y_true", relevance=True)
    n_users, n_items = relevant.shape

    items = _check_topk_items(topk_items, n_users, n_items, k, device)
    chunks = ((start, stop, items[start:stop]) for start, stop in _chunks(n_users, k))
    return _metric_per_user(metric, relevant, chunks, k, device)


def _sampling_rng(random_state):
    """numpy Generator (fast float64 draws) seeded from ``random_state``."""
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return np.random.default_rng(seed)


def _aggregate(values, empty, average):
    if empty == "zero":
        values = np.nan_to_num(values, nan=0.0)
    if not average:
        return values
    if np.isnan(values).all():
        raise ValueError(
            "No user has a relevant item (after exclusion), so the mean over "
            "users is undefined with empty='skip'; use empty='zero' or "
            "average=False."
        )
    return float(np.nanmean(values))


# --------------------------------------------------------------------------
# Public ranking metrics
# --------------------------------------------------------------------------

_RANKING_CONSTRAINTS = {
    "y_true": ["array-like", "sparse matrix"],
    "y_score": ["array-like", torch.Tensor],
    "k": [Interval(Integral, 1, None, closed="left")],
    "exclude": ["array-like", "sparse matrix", None],
    "n_negatives": [Interval(Integral, 0, None, closed="left"), None],
    "random_state": ["random_state"],
    "empty": [StrOptions({"skip", "zero"})],
    "average": ["boolean"],
    "device": [str, torch.device],
}

# The docstring of the six public ranking metrics; %(name)s, %(summary)s,
# %(see_also)s and %(examples)s are filled in for each metric.
_RANKING_DOC = """%(summary)s

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Ground-truth relevance (e.g. held-out interactions).  Any scipy
        sparse format or dense array-like; an entry > 0 is relevant
        (binary relevance: larger values are not weighted more).

    y_score : array-like or torch.Tensor of shape (n_users, n_items)
        Predicted scores, higher is better.  Must not contain NaN.  Items
        whose score is ``-inf`` are never recommended.

    k : int, default=10
        Length of the recommendation list (cut-off).  Must not exceed
        ``n_items``.

    exclude : {array-like, sparse matrix} of shape (n_users, n_items), \
default=None
        Mask (non-zero = excluded) of items that are never ranked for a user,
        typically the user's training items.  Excluded items are removed both
        from the ranking (score set to ``-inf``) and from the relevant items:
        an excluded item that is also relevant counts neither as a hit nor in
        ``|relevant|``.

    n_negatives : int, default=None
        None (default) ranks every non-excluded item (full ranking).  An int
        selects the *sampled-negative protocol*: for each user,
        ``n_negatives`` items are drawn uniformly without replacement from the
        items that are neither relevant nor excluded, and only relevant and
        sampled items are ranked.  This protocol is cheaper but optimistic
        (scores are inflated and may even rank models inconsistently with the
        full ranking); prefer the full ranking to report results.  A
        ValueError is raised if some user has fewer than ``n_negatives``
        candidate negatives.  If ``k`` exceeds the number of ranked items,
        the remaining positions of the list are empty (never hits).

    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of negatives (only used when ``n_negatives`` is
        set).  Pass an int for reproducible results; the result does not
        depend on ``device``.

    empty : {"skip", "zero"}, default="skip"
        How to treat users without relevant items (after exclusion), for
        whom the metric is undefined.  "skip" leaves them out of the mean
        (np.nan in the per-user output); if no user has a relevant item the
        mean is undefined and a ValueError is raised.  "zero" counts them as
        0.

    average : bool, default=True
        If True return the mean over users, else the per-user values.

    device : str or torch.device, default="cpu"
        Torch device the computation runs on, e.g. "cuda".  Users are
        processed in chunks, so memory stays bounded.

    Returns
    -------
    score : float or ndarray of shape (n_users,)
        Mean over users if ``average=True``, else the float64 value of each
        user.

    Notes
    -----
    Relevance is binary and the recommendation list of a user is the ``k``
    highest-scored items among the ranked ones.  Ties in scores are broken
    in favour of the lower item index (column of ``y_score``), the
    convention of reference implementations (a stable sort by decreasing
    score): with equal scores for all items, items 0, 1, ..., k - 1 are
    recommended.  The ranking is the same on CPU and CUDA.

    See Also
    --------
    %(see_also)s

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys.metrics import %(name)s
    >>> y_true = np.array([[1, 0, 0, 1], [0, 1, 0, 0]])
    >>> y_score = np.array([[0.9, 0.8, 0.1, 0.3], [0.2, 0.1, 0.7, 0.4]])
    %(examples)s
    """


def _ranking_metric_at_k(metric, summary, *, see_also, examples):
    """Define the public function ``<metric>_at_k`` of ``metric``.

    The six ranking metrics share their signature, parameter validation,
    body and most of their docstring (``_RANKING_DOC``); only ``metric``
    and the documentation fragments differ.
    """

    def metric_at_k(
        y_true, y_score, *, k=10, exclude=None, n_negatives=None,
        random_state=None, empty="skip", average=True, device="cpu",
    ):
        relevant, y_score, excluded = _check_ranking_inputs(
            y_true, y_score, k, exclude, n_negatives
        )
        device = _check_device(device)
        rng = _sampling_rng(random_state) if n_negatives else None
        chunks = _iter_topk(relevant, y_score, excluded, k, n_negatives, rng, device)
        values = _metric_per_user(metric, relevant, chunks, k, device)
        return _aggregate(values, empty, average)

    name = f"{metric}_at_k"
    metric_at_k.__name__ = metric_at_k.__qualname__ = name
    metric_at_k.__doc__ = _RANKING_DOC % {
        "name": name, "summary": summary, "see_also": see_also, "examples": examples,
    }
    return validate_params(_RANKING_CONSTRAINTS, prefer_skip_nested_validation=True)(
        metric_at_k
    )


ndcg_at_k = _ranking_metric_at_k(
    "ndcg",
    """Normalised discounted cumulative gain at k (NDCG@k).

    With ``rel_r = 1`` if the item at rank ``r`` is relevant, else 0::

        DCG@k  = sum_{r=1..k} rel_r / log2(r + 1)
        IDCG@k = sum_{r=1..min(k, |relevant|)} 1 / log2(r + 1)
        NDCG@k = DCG@k / IDCG@k

    i.e. the ideal DCG puts all relevant items first.  NDCG@k lies in [0, 1].""",
    see_also="""map_at_k : Mean average precision at k.
    recall_at_k : Fraction of the relevant items in the top-k.""",
    examples=""">>> round(ndcg_at_k(y_true, y_score, k=2), 4)
    0.3066
    >>> ndcg_at_k(y_true, y_score, k=2, average=False).round(4)
    array([0.6131, 0.    ])""",
)

recall_at_k = _ranking_metric_at_k(
    "recall",
    """Recall at k: fraction of a user's relevant items found in the top-k.

    ``recall@k = hits@k / |relevant|`` where ``hits@k`` is the number of
    relevant items among the ``k`` recommended ones.  When ``k < |relevant|``
    it cannot reach 1.""",
    see_also="precision_at_k : Fraction of the top-k that is relevant.",
    examples=""">>> round(recall_at_k(y_true, y_score, k=2), 4)
    0.25""",
)

precision_at_k = _ranking_metric_at_k(
    "precision",
    """Precision at k: fraction of the top-k that is relevant.

    ``precision@k = hits@k / k``; the denominator is always ``k``, even when
    the user has fewer than ``k`` relevant items or fewer than ``k`` items
    can be ranked.""",
    see_also="recall_at_k : Fraction of the relevant items in the top-k.",
    examples=""">>> round(precision_at_k(y_true, y_score, k=2), 4)
    0.25""",
)

hit_rate_at_k = _ranking_metric_at_k(
    "hit_rate",
    "Hit rate at k: 1 if at least one relevant item is in the top-k, else 0.",
    see_also="mrr_at_k : Reciprocal rank of the first relevant item.",
    examples=""">>> round(hit_rate_at_k(y_true, y_score, k=2), 4)
    0.5""",
)

mrr_at_k = _ranking_metric_at_k(
    "mrr",
    """Mean reciprocal rank at k (MRR@k).

    For each user, ``1 / rank`` of the first relevant item of the top-k
    (ranks start at 1), or 0 if the top-k holds no relevant item.""",
    see_also="hit_rate_at_k : Whether any relevant item is in the top-k.",
    examples=""">>> mrr_at_k(y_true, y_score, k=4, average=False).round(4)
    array([1.  , 0.25])""",
)

map_at_k = _ranking_metric_at_k(
    "map",
    """Mean average precision at k (MAP@k).

    The average precision of a user is::

        AP@k = sum_{r=1..k, rel_r = 1} precision@r / min(k, |relevant|)

    where ``precision@r`` is the fraction of relevant items among the first
    ``r``; MAP@k is its mean over users.  AP@k lies in [0, 1] and equals 1
    when the first ``min(k, |relevant|)`` items are all relevant.""",
    see_also="ndcg_at_k : Normalised discounted cumulative gain at k.",
    examples=""">>> map_at_k(y_true, y_score, k=3, average=False).round(4)
    array([0.8333, 0.    ])""",
)


# --------------------------------------------------------------------------
# Beyond-accuracy metrics
# --------------------------------------------------------------------------


def _check_recommendations(recommendations, n_items):
    if isinstance(recommendations, torch.Tensor):
        recommendations = recommendations.detach().cpu().numpy()
    recs = np.asarray(recommendations)
    if recs.ndim != 2:
        raise ValueError(
            f"recommendations must be 2D (n_users, k), got shape {recs.shape}."
        )
    if recs.size == 0:
        raise ValueError(f"Empty input: recommendations has shape {recs.shape}.")
    if recs.dtype.kind not in "iu":
        raise TypeError(
            f"recommendations must hold integer item indices, got dtype {recs.dtype}."
        )
    if recs.min() < -1 or recs.max() >= n_items:
        raise ValueError(
            f"recommendations must hold item indices in [0, {n_items}) or -1 "
            f"for padding; got values in [{recs.min()}, {recs.max()}]."
        )
    return recs.astype(np.int64, copy=False)


@validate_params(
    {
        "recommendations": ["array-like", torch.Tensor],
        "n_items": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def catalog_coverage(recommendations, n_items):
    """Catalog coverage: fraction of the items that are recommended to someone.

    ``coverage = |union of the users' top-k lists| / n_items``.

    Parameters
    ----------
    recommendations : array-like or torch.Tensor of shape (n_users, k)
        Integer item indices of each user's recommendation list; -1 is
        padding and is ignored.

    n_items : int
        Size of the catalog.

    Returns
    -------
    coverage : float
        In [0, 1].

    See Also
    --------
    novelty : Mean self-information of the recommended items.

    Examples
    --------
    >>> from sklearn_recsys.metrics import catalog_coverage
    >>> catalog_coverage([[0, 1], [1, 2], [1, -1]], n_items=10)
    0.3
    """
    recs = _check_recommendations(recommendations, n_items)
    return float(np.unique(recs[recs >= 0]).size / n_items)


def _self_information(recommendations, item_popularity):
    """Self-information of the recommended items; validates novelty's inputs.

    Returns ``(info, n_valid)``: ``-log2(p_i)`` in bits for each entry of the
    recommendation lists (0 for padding), and the number of (non-padding)
    items of each list.
    """
    pop = np.asarray(item_popularity)
    if pop.ndim != 1:
        raise ValueError(
            f"item_popularity must be 1D (n_items,), got shape {pop.shape}."
        )
    if pop.dtype.kind not in "biuf":
        raise TypeError(f"item_popularity must be numeric, got dtype {pop.dtype}.")
    pop = pop.astype(np.float64)
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise ValueError("item_popularity must be finite and non-negative.")
    if pop.size == 0 or pop.sum() <= 0:
        raise ValueError("item_popularity must have a positive sum.")
    recs = _check_recommendations(recommendations, pop.size)
    valid = recs >= 0
    n_valid = valid.sum(axis=1)
    if not n_valid.any():
        raise ValueError("recommendations holds no item (only -1 padding).")
    prob = pop / pop.sum()
    p = np.where(valid, prob[np.where(valid, recs, 0)], 1.0)
    if (p == 0).any():
        raise ValueError(
            "item_popularity is 0 for some recommended item(s); their "
            "self-information is infinite.  Smooth the counts first, e.g. "
            "item_popularity + 1."
        )
    return -np.log2(p), n_valid


@validate_params(
    {
        "recommendations": ["array-like", torch.Tensor],
        "item_popularity": ["array-like"],
    },
    prefer_skip_nested_validation=True,
)
def novelty(recommendations, item_popularity):
    """Novelty: mean self-information of the recommended items.

    Item popularity is turned into a probability ``p_i = pop_i / sum_j
    pop_j`` (e.g. with interaction counts, the share of all training
    interactions that involve item ``i``).  The novelty of a list is the mean
    of ``-log2(p_i)`` over its (non-padding) items, and the result is the
    mean over users with at least one recommended item.  Higher values mean
    less popular, more "surprising" recommendations.

    Parameters
    ----------
    recommendations : array-like or torch.Tensor of shape (n_users, k)
        Integer item indices of each user's recommendation list; -1 is
        padding and is ignored.

    item_popularity : array-like of shape (n_items,)
        Non-negative popularity of each item, typically the number of
        training interactions (or users) of each item.  Only the ratios
        matter.  A recommended item of popularity 0 has infinite
        self-information and raises a ValueError: smooth the counts first
        (e.g. ``item_popularity + 1``).

    Returns
    -------
    novelty : float
        Mean self-information in bits.

    See Also
    --------
    catalog_coverage : Fraction of the catalog that is recommended.

    Examples
    --------
    >>> from sklearn_recsys.metrics import novelty
    >>> popularity = [4, 2, 1, 1]  # p = [1/2, 1/4, 1/8, 1/8]
    >>> novelty([[0, 1], [2, -1]], popularity)  # mean of (1 + 2) / 2 and 3
    2.25
    """
    info, n_valid = _self_information(recommendations, item_popularity)
    users = n_valid > 0
    return float(np.mean(info.sum(axis=1)[users] / n_valid[users]))
