"""Top-k selection with one documented, device-independent tie-breaking rule.

:func:`torch.topk` leaves the order of equal values to the implementation:
it differs between CPU and CUDA and between PyTorch versions.  Ties are
common in recommendation scores (popularity fallbacks, zeros, quantised
scores, ``-inf`` for excluded items), so the package ranks with
:func:`topk` instead, which breaks them in favour of the lower column (item)
index, the convention of the reference implementations.

The cost is one :func:`torch.topk` of ``k + 1`` entries per row; only the
rows where the ``k``-th and ``(k + 1)``-th values are equal need another
pass, over the shortest prefix of the row (growing geometrically) that holds
enough entries tied with the ``k``-th value (at worst the whole row), to take
the tied entries of lowest index. The ``k`` selected entries are then ordered
by a sort of ``k`` integer keys; no row is fully sorted unless ``k == n_cols``.

This is a bottom-layer module: it imports nothing from the package.
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import torch

__all__ = ["topk"]

# Maximum number of (row, column) cells of the temporary arrays used to
# re-select the tied entries at the k-th position (a few bytes each).
_CHUNK_ELEMENTS = 1 << 22

_NAN_MESSAGE = (
    "scores contains NaN; a NaN score cannot be ranked.  Replace it before "
    "ranking, e.g. by -inf (the lowest score)."
)

_REAL_DTYPES = (
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
)


def _check_args(scores, k):
    """Validate ``topk``'s arguments (TypeError/ValueError); return ``int(k)``."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}.")
    if scores.dtype not in _REAL_DTYPES:
        raise TypeError(f"scores must be real-valued, got dtype {scores.dtype}.")
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be 2-D (n_rows, n_cols), got shape {tuple(scores.shape)}."
        )
    n_cols = scores.shape[1]
    if not isinstance(k, Integral) or isinstance(k, bool) or not 0 <= k <= n_cols:
        raise ValueError(f"k must be an integer in [0, n_cols={n_cols}], got {k!r}.")
    return int(k)


def topk(scores, k):
    """Top-k of each row of a 2-D tensor, ties broken by lower column index.

    Score descending, then column index ascending, on any device; ``-inf``
    entries tie, ``-0.0`` ties ``0.0``, a NaN score raises a ValueError.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_rows, n_cols)
        Real-valued scores, higher is better, on any device (where the
        computation runs).
    k : int
        Number of entries to keep per row, ``0 <= k <= n_cols``.

    Returns
    -------
    values : torch.Tensor of shape (n_rows, k)
        ``scores[i, indices[i, j]]`` (dtype and device of ``scores``).
    indices : torch.Tensor of shape (n_rows, k)
        int64 column indices, best first.

    Examples
    --------
    >>> import torch
    >>> from sklearn_recsys._topk import topk
    >>> scores = torch.tensor([[0.5, 0.9, 0.5, 0.5, -float("inf")],
    ...                        [0.0, 0.0, 0.0, 0.0, 0.0]])
    >>> values, indices = topk(scores, 3)
    >>> indices
    tensor([[1, 0, 2],
            [0, 1, 2]])
    """
    k = _check_args(scores, k)
    n_rows, n_cols = scores.shape
    device = scores.device
    if n_rows == 0 or k == 0:
        if scores.is_floating_point() and scores.numel() and bool(scores.isnan().any()):
            raise ValueError(_NAN_MESSAGE)
        empty = torch.empty((n_rows, k), dtype=torch.int64, device=device)
        return scores.new_empty((n_rows, k)), empty

    # One top-(k+1): its first k entries hold every value strictly greater
    # than the k-th value; only if the (k+1)-th value equals the k-th one can
    # tied entries of lower index have been left out.
    n_sel = min(k + 1, n_cols)
    values, indices = torch.topk(scores, n_sel, dim=1, largest=True, sorted=True)
    if scores.is_floating_point():
        _check_no_nan(scores, values)
    if n_sel > k:
        boundary_tie = values[:, k] == values[:, k - 1]
        values, indices = values[:, :k], indices[:, :k]
        if bool(boundary_tie.any()):
            rows = boundary_tie.nonzero().squeeze(1)
            indices[rows] = _lowest_tied(scores, rows, values[rows], indices[rows], k)

    indices = _order_ties(values, indices, n_cols)
    # gathered: the values of the reselected entries are equal to those of
    # torch.topk, but may differ in their bits (-0.0 and 0.0)
    return torch.gather(scores, 1, indices), indices


def _order_ties(values, indices, n_cols):
    """Order the selected entries by (-score, index).

    ``values`` is non-increasing, so equal values form runs; sort by (run,
    index) on exact integer keys (no float comparisons, no stability needed).
    """
    new_run = values[:, 1:] != values[:, :-1]
    if values.shape[1] > 1 and not bool(new_run.all()):
        offset = torch.cumsum(new_run, dim=1, dtype=torch.int64) * n_cols
        offset = torch.cat([offset.new_zeros((len(values), 1)), offset], dim=1)
        # the runs keep their positions in the sort, hence their offsets
        indices = torch.sort(offset + indices, dim=1).values - offset
    return indices


def _check_no_nan(scores, values):
    """Raise ValueError if ``scores`` (with top values ``values``) has a NaN."""
    if scores.device.type in ("cpu", "cuda"):
        # torch.topk ranks NaN above every number on CPU and CUDA (checked by
        # the tests), so a NaN anywhere in a row is in its first position.
        has_nan = torch.isnan(values[:, 0]).any()
    else:  # other backends: do not rely on how they order NaN
        has_nan = torch.isnan(scores.amax(dim=1)).any()
    if bool(has_nan):
        raise ValueError(_NAN_MESSAGE)


def _lowest_tied(scores, rows, values, indices, k):
    """Re-select the entries tied at the k-th position: lowest columns first.

    ``values`` and ``indices`` are the top-k values (non-increasing) and
    indices of the rows ``rows`` of ``scores``.  In each row, the ``m`` last
    entries, those equal to the k-th value, are replaced by the ``m`` lowest
    columns whose score equals the k-th value, in increasing order.

    With many ties these columns are found near the start of the row, so
    growing prefixes of the rows are searched (each 8 times as wide as the
    previous one, the last the whole row): a row costs O(width of the first
    prefix that holds ``m`` tied columns), less than ``1.6 * n_cols``.
    """
    n_cols = scores.shape[1]
    device = scores.device
    kth = values[:, k - 1 : k]
    n_tied = (values == kth).sum(dim=1)  # m >= 1
    position = torch.arange(k, device=device) - (k - n_tied).unsqueeze(1)
    out = indices  # a copy already: indexed with ``rows`` by the caller
    todo = torch.arange(rows.numel(), device=device)
    width = min(n_cols, max(256, 4 * k))
    while True:
        key_dtype = torch.int32 if 2 * width < 2**31 else torch.int64
        columns = torch.arange(width, dtype=key_dtype, device=device)
        step = max(1, _CHUNK_ELEMENTS // width)
        found = []
        for lo in range(0, todo.numel(), step):
            part = todo[lo : lo + step]
            # key: the column where the score ties with the k-th value,
            # width + column elsewhere; the k smallest keys of a row start
            # with its lowest tied columns (all of them if fewer than k)
            not_tied = scores[rows[part], :width] != kth[part]
            keys = not_tied.to(key_dtype).mul_(width).add_(columns)
            lowest = torch.topk(keys, k, dim=1, largest=False, sorted=True).values
            # found: the m-th smallest key is a tied column (m = n_tied); the
            # rows not found are written over by a wider prefix
            m_th = torch.gather(lowest, 1, (n_tied[part] - 1).unsqueeze(1))
            found.append(m_th[:, 0] < width)
            pos = position[part]
            lowest = torch.gather(lowest, 1, pos.clamp(min=0)).to(torch.int64)
            out[part] = torch.where(pos >= 0, lowest, out[part])
        if width == n_cols:  # every row is found in the whole row
            return out
        todo = todo[~torch.cat(found)]
        if not todo.numel():
            return out
        width = 8 * width if 16 * width < n_cols else n_cols
