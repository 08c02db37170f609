"""Input conventions shared by every recommender (the package's bottom layer).

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
indices, maps raw ids to and from those indices, and holds the one validator
of each kind of column: :func:`check_ids` (raw ids), :func:`check_times`
(time columns, for estimators and splitters alike) and :func:`check_targets`.
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
    marks an id unseen at fit. ``values`` are float targets or ``None``
    (unit weights). ``times`` are sortable time keys or ``None``;
    ``times_are_datetimes`` tells whether they are nanoseconds of datetimes.
    ``n_rows`` is the number of user rows (rows of a matrix input, users of
    a table of histories; ``None`` for a fit table). ``weights`` are the
    float32 sample weights of the interactions (``fit``'s ``sample_weight``)
    or ``None``.
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray | None
    times: np.ndarray | None = None
    n_rows: int | None = None
    times_are_datetimes: bool = False
    weights: np.ndarray | None = None

    def __len__(self):
        return len(self.users)

    def subset(self, mask):
        """The interactions where ``mask`` holds (same ``n_rows``)."""

        def take(a):
            return None if a is None else a[mask]

        return Interactions(
            self.users[mask], self.items[mask], take(self.values), take(self.times),
            self.n_rows, self.times_are_datetimes, take(self.weights),
        )

    def to_csr(self, n_items):
        """``(n_rows, n_items)`` CSR of the values (unit weights when None)."""
        return interactions_to_csr(
            self.users, self.items, self.values, (self.n_rows, n_items)
        )


class ImmutableParameter:
    """Base of the data held in parameters (item content, attributes).

    Immutable, and its own copy: :func:`copy.deepcopy` -- hence
    :func:`sklearn.base.clone` -- returns the same object, so that clones of
    an estimator share it (never copied per grid-search candidate).
    Subclasses set their fields with ``object.__setattr__``.
    """

    def __setattr__(self, name, value):
        raise AttributeError(
            f"{type(self).__name__} is immutable; build a new one instead."
        )

    def __delattr__(self, name):
        raise AttributeError(
            f"{type(self).__name__} is immutable; build a new one instead."
        )

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


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

    @classmethod
    def empty(cls):
        return cls(np.array([], dtype=object))

    def __len__(self):
        return len(self.ids)

    def transform(self, values):
        return self._index.get_indexer(values).astype(np.int64)

    def inverse_transform(self, indices):
        return self.ids[np.asarray(indices)]

    def extended(self, raw_ids):
        """A new index with the unknown ``raw_ids`` appended (order kept)."""
        new = np.asarray(raw_ids)[self.transform(raw_ids) < 0]
        if not len(new):
            return self
        old = self.ids
        if old.dtype != new.dtype:
            old, new = old.astype(object), new.astype(object)
        return IdIndex(np.concatenate([old, new]))

    def __getstate__(self):
        return {"ids": self.ids}

    def __setstate__(self, state):
        self.__init__(state["ids"])


def _id_bytes(value):
    """A canonical byte string of one raw id (equal ids of any int type agree)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Ids must not be booleans, got {value!r}.")
    if isinstance(value, (int, np.integer)):
        return b"i:" + str(int(value)).encode()
    if isinstance(value, (float, np.floating)):
        return b"f:" + repr(float(value)).encode()
    if isinstance(value, str):
        return b"s:" + value.encode("utf-8")
    raise TypeError(
        f"Keyed hashes are defined for str, int and float ids; got "
        f"{type(value).__name__} ({value!r})."
    )


def keyed_hashes(values, key):
    """HMAC-SHA256 of each id under ``key``, as 32 hex digits (128 bits)."""
    import hashlib
    import hmac

    return np.array(
        [hmac.new(key, _id_bytes(v), hashlib.sha256).hexdigest()[:32] for v in values],
        dtype=object,
    )


class HashedIdIndex(IdIndex):
    """An id index holding keyed hashes of the ids instead of the ids.

    ``transform`` hashes raw ids with the key before looking them up, so a
    model keeps recognising its users; ``ids`` are the hashes (what a model
    loaded from an artifact with hashed user ids shows as ``user_ids_``).
    """

    def __init__(self, hashes, key):
        super().__init__(np.asarray(hashes, dtype=object))
        self.key = key

    def transform(self, values):
        if self.key is None:
            raise ValueError(
                "This model holds keyed hashes of its user ids and was loaded without "
                "the key: pass user_id_key= to sklearn_recsys.load."
            )
        values = np.asarray(values, dtype=object).ravel()
        return super().transform(keyed_hashes(values, self.key))

    def extended(self, raw_ids):
        raise ValueError(
            "This model holds keyed hashes of its user ids; it cannot add users."
        )

    def __getstate__(self):
        return {"ids": self.ids, "key": self.key}

    def __setstate__(self, state):
        self.__init__(state["ids"], state["key"])


def is_table(X):
    """Whether ``X`` follows the interaction-table convention."""
    return isinstance(X, pd.DataFrame)


def as_input(X):
    """``X``, with any eager dataframe converted to a pandas interaction table.

    polars, pyarrow and the other dataframes :mod:`narwhals` knows are read
    through it; a lazy frame, or another object with columns that cannot be
    converted, raises a TypeError instead of being read as a matrix.
    """
    if isinstance(X, pd.DataFrame):
        return X
    import narwhals as nw

    if nw.dependencies.is_into_dataframe(X):
        return nw.from_native(X, eager_only=True).to_pandas()
    if nw.dependencies.is_into_lazyframe(X) or (
        hasattr(type(X), "columns") and not (sp.issparse(X) or isinstance(X, np.ndarray))
    ):
        raise TypeError(
            f"Got a {type(X).__module__}.{type(X).__name__} with columns, which is "
            "not an eager dataframe this package can read: pass a pandas (or "
            "polars/pyarrow) DataFrame as the interaction table, e.g. collect a "
            "lazy frame first (.collect() / .to_pandas())."
        )
    return X


def as_id_array(values, name="ids"):
    """A 1-D array of raw ids, converting Python sequences without stringifying.

    ``np.asarray([7, "a"])`` turns the integer 7 into the string ``"7"``; here
    a list of mixed types becomes an object array of the values as given, a
    list of integers an int64 array and one of floats a float64 array.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    if not isinstance(values, (list, tuple)):
        return np.asarray(values)
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple, np.ndarray, pd.Series)):
            raise ValueError(
                f"{name} must be a flat sequence (1-D) of ids; position {i} holds "
                f"a {type(v).__name__}."
            )
        arr[i] = v
    kind = pd.api.types.infer_dtype(arr, skipna=False)
    if kind == "integer":
        try:
            return arr.astype(np.int64)
        except OverflowError:  # beyond int64: kept as Python ints
            return arr
    if kind in ("floating", "mixed-integer-float"):
        return arr.astype(np.float64)
    if kind == "boolean":
        return arr.astype(bool)
    if kind == "string":
        return arr.astype(str)
    return arr


def check_ids(values, name):
    """Validate raw ids: flat, no missing value, floats only when integral.

    Parameters
    ----------
    values : array-like of shape (n,)
        Python sequences are converted with :func:`as_id_array` (mixed types
        are kept, not turned into strings).
    name : str
        How the error messages call the ids (e.g. ``"Column 'user'"``).

    Returns
    -------
    ids : ndarray of shape (n,)
    """
    values = as_id_array(values, name)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be a flat sequence (1-D) of ids, got an array of shape "
            f"{values.shape}."
        )
    missing = pd.isna(values) if len(values) else np.zeros(0, dtype=bool)
    if missing.any():
        raise ValueError(
            f"{name} contains missing ids (NaN/None), first at position "
            f"{int(np.flatnonzero(missing)[0])}."
        )
    if values.dtype == object:
        _check_object_ids(values, name)
    if values.dtype.kind == "b":
        raise TypeError(f"{name} holds booleans, not ids.")
    if values.dtype.kind == "f":
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if len(bad):
            raise ValueError(
                f"{name} holds non-integer float ids ({bad[:5].tolist()}); ids must "
                "be integers, strings or other exact hashable values."
            )
    return values


def _check_object_ids(values, name):
    """Booleans and non-integral floats are not ids, in object arrays too."""
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("string", "bytes", "integer", "decimal", "categorical"):
        return
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        raise TypeError(f"{name} holds booleans, not ids.")
    floats = np.array([v for v in values if isinstance(v, (float, np.floating))], float)
    bad = floats[~np.isfinite(floats) | (floats != np.round(floats))]
    if len(bad):
        raise ValueError(
            f"{name} holds non-integer float ids ({bad[:5].tolist()}); ids must be "
            "integers, strings or other exact hashable values."
        )


def check_times(values, name):
    """Validate a time column and return sortable keys.

    Numbers (not booleans) and datetimes are accepted: naive, tz-aware
    (compared in UTC) and Arrow timestamps alike. Missing values, infinite
    numbers and out-of-range datetimes are rejected.

    Parameters
    ----------
    values : pandas.Series or array-like of shape (n,)
    name : str
        How the error messages call the column.

    Returns
    -------
    keys : ndarray of shape (n,)
        int64 nanoseconds since the epoch for datetimes, the numbers
        otherwise (int64 or float64).
    is_datetime : bool
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if s.isna().any():
        raise ValueError(f"{name} contains missing values (NaN/NaT/None).")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        try:
            keys = pd.DatetimeIndex(pd.to_datetime(s, utc=True)).as_unit("ns").asi8
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as exc:
            raise ValueError(f"{name} holds datetimes out of range: {exc}") from exc
        return np.asarray(keys, dtype=np.int64), True
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        raise TypeError(
            f"{name} must hold numbers or datetimes (a numeric or datetime "
            f"dtype, tz-aware and Arrow timestamps included); got dtype {s.dtype}."
        )
    kind = "i" if pd.api.types.is_integer_dtype(s.dtype) else "f"
    keys = s.to_numpy(dtype=np.int64 if kind == "i" else np.float64)
    if kind == "f" and not np.all(np.isfinite(keys)):
        raise ValueError(f"{name} contains infinite values.")
    return keys, False


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
    with np.errstate(over="ignore"):
        y32 = y.astype(np.float32)
    if not np.all(np.isfinite(y32)):
        raise ValueError("Input y holds values beyond float32's range; rescale it.")
    return y32


def _column(X, col, param):
    """The column ``col`` of a table (a Series), named by ``param`` in errors."""
    if col not in X.columns:
        raise ValueError(
            f"The interaction table has no column {col!r} (columns: "
            f"{list(X.columns)}). Set {param}= to the name of the column that "
            "holds the ids."
        )
    column = X[col]
    if isinstance(column, pd.DataFrame):
        raise ValueError(
            f"The interaction table has {column.shape[1]} columns named {col!r} "
            f"({param}); rename or drop the duplicates."
        )
    return column


def _id_column(X, col, param):
    return check_ids(_column(X, col, param).to_numpy(), f"Column {col!r}")


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
    users_raw = _id_column(X, user_col, "user_col")
    items_raw = _id_column(X, item_col, "item_col")
    y = check_targets(y, X.shape[0])
    times, is_datetime = None, False
    if time_col is not None and time_col in X.columns:
        times, is_datetime = check_times(
            _column(X, time_col, "time_col"), f"Column {time_col!r}"
        )
    if user_index is None:
        user_index, users = IdIndex.from_values(users_raw)
        item_index, items = IdIndex.from_values(items_raw)
    else:
        users = user_index.transform(users_raw)
        items = item_index.transform(items_raw)
    data = Interactions(users, items, y, times, times_are_datetimes=is_datetime)
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


def seen_matrix(users, items, shape):
    """Boolean CSR of the (user, item) pairs that occurred (duplicates once).

    Booleans and 32-bit indices where they fit: the fitted state keeps it.
    """
    seen = interactions_to_csr(users, items, None, shape).astype(bool)
    if seen.nnz < 2**31 and max(shape) < 2**31:
        seen.indices = seen.indices.astype(np.int32, copy=False)
        seen.indptr = seen.indptr.astype(np.int32, copy=False)
    return seen


def check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)
