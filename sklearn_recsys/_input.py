"""Input conventions shared by every recommender.

Two conventions, one rule (see the user guide):

* **Interaction table** -- a :class:`pandas.DataFrame`, one row per
  interaction, with a user column and an item column (and optionally a time
  column). Ids may be any hashable values. ``y`` (optional) holds one target
  per row. One sample = one interaction.
* **User x item matrix** -- a scipy sparse matrix or array (CSR/CSC/COO) or a
  dense 2-D numeric array. Rows are users, columns are items, stored entries
  (non-zeros for dense input) are interactions and their values the targets.
  One sample = one user. Sparse input is never densified.

This module turns either into an :class:`Interactions` record of integer
indices, and maps raw ids to and from those indices.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_consistent_length, column_or_1d


@dataclass
class Interactions:
    """Interactions as parallel index arrays.

    ``users``/``items`` are int64 indices into the fitted id spaces; ``-1``
    marks an id unseen at fit. ``values`` are float32 targets or ``None``.
    ``n_rows`` is the number of user rows of a matrix input (``None`` for a
    table).
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray | None
    times: np.ndarray | None = None
    n_rows: int | None = None

    def __len__(self):
        return len(self.users)


class IdIndex:
    """Bijection between raw ids and contiguous indices ``0..n-1``.

    Ids are sorted when they are mutually comparable, otherwise kept in order
    of first appearance. Unknown ids map to ``-1``.
    """

    def __init__(self, raw_ids):
        self.ids = np.asarray(raw_ids)
        self._index = pd.Index(self.ids)

    @classmethod
    def from_values(cls, values):
        try:
            codes, uniques = pd.factorize(values, sort=True)
        except TypeError:  # ids of mixed, unorderable types
            codes, uniques = pd.factorize(values, sort=False)
        index = cls(np.asarray(uniques))
        return index, codes.astype(np.int64)

    def __len__(self):
        return len(self.ids)

    def transform(self, values):
        return self._index.get_indexer(values).astype(np.int64)

    def inverse_transform(self, indices):
        return self.ids[np.asarray(indices)]


def is_table(X):
    """Whether ``X`` follows the interaction-table convention."""
    return isinstance(X, pd.DataFrame)


def _check_id_column(X, col, param):
    if col not in X.columns:
        raise ValueError(
            f"The interaction table has no column {col!r} (columns: "
            f"{list(X.columns)}). Set {param}= to the name of the column that "
            "holds the ids."
        )
    values = X[col].to_numpy()
    if pd.isna(values).any():
        raise ValueError(f"Column {col!r} contains missing ids (NaN/None).")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(
                f"Column {col!r} holds non-integer float ids; ids must be "
                "integers, strings or other exact hashable values."
            )
    return values


def check_targets(y, n_samples, *, estimator_name="estimator"):
    """Validate a 1-D finite numeric target aligned with the rows."""
    if y is None:
        return None
    y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n_samples), y)
    if y.dtype.kind not in "biuf":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{estimator_name} needs numeric targets y; got dtype {y.dtype}."
            ) from exc
    if not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity.")
    return y.astype(np.float32)


def table_to_interactions(
    X, y, *, user_col, item_col, time_col=None, user_index=None, item_index=None
):
    """Validate an interaction table and map its ids.

    With ``user_index``/``item_index`` given (predict time) ids are looked up
    and unknown ones become ``-1``; otherwise new indices are built and
    returned.
    """
    if X.shape[0] == 0:
        raise ValueError(
            "Found an interaction table with 0 rows while a minimum of 1 is "
            "required."
        )
    users_raw = _check_id_column(X, user_col, "user_col")
    items_raw = _check_id_column(X, item_col, "item_col")
    y = check_targets(y, X.shape[0])
    times = None
    if time_col is not None and time_col in X.columns:
        times = X[time_col].to_numpy()
        if np.issubdtype(times.dtype, np.datetime64):
            times = times.astype("datetime64[ns]").astype(np.int64)
        elif times.dtype.kind not in "biuf":
            raise TypeError(
                f"Column {time_col!r} must hold numbers or datetimes, got "
                f"dtype {times.dtype}."
            )
        if pd.isna(times).any():
            raise ValueError(f"Column {time_col!r} contains missing values.")
    if user_index is None:
        user_index, users = IdIndex.from_values(users_raw)
        item_index, items = IdIndex.from_values(items_raw)
    else:
        users = user_index.transform(users_raw)
        items = item_index.transform(items_raw)
    data = Interactions(users=users, items=items, values=y, times=times)
    return data, user_index, item_index


def matrix_to_interactions(X):
    """Interactions of a CSR matrix (users = rows, items = columns)."""
    coo = X.tocoo()
    return Interactions(
        users=coo.row.astype(np.int64),
        items=coo.col.astype(np.int64),
        values=coo.data,  # float32, or float64 where a model keeps order keys
        n_rows=X.shape[0],
    )


def interactions_to_csr(users, items, values, shape):
    """CSR matrix of (user, item) pairs; duplicate pairs are summed."""
    if values is None:
        values = np.ones(len(users), dtype=np.float32)
    m = sp.csr_array((values, (users, items)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)
