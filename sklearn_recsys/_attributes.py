"""User and item attributes: :class:`Attributes` and their fitted encoding.

Attributes are data about the *users* or the *items* (age, occupation,
genres, year...), one row per id, held in an immutable parameter object
shared by clones (like :class:`~sklearn_recsys.ItemContent`). At fit an
estimator learns an :class:`AttributeEncoder` from them (the vocabularies of
the categorical columns, the mean and scale of the numeric ones) and turns
every id's attributes into a short list of ``(feature, value)`` pairs: the
networks sum one learned embedding per feature, weighted by its value.
"""

import numbers

import numpy as np
import pandas as pd

from ._input import IdIndex, ImmutableParameter, as_input, check_ids

__all__ = ["Attributes"]

_KINDS = ("categorical", "multi_valued", "binary", "numeric")
# Quantile bins of a numeric column (each bin is a feature besides the value).
_N_BINS = 10


def _is_list_like(value):
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series))


def _id(value):
    """A raw id as Python shows it (numpy scalars unwrapped)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _infer_kind(name, column):
    """The kind of a column not named in the constructor's lists."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "binary"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[~np.isnan(values)]
        if len(finite) and np.isin(finite, (0.0, 1.0)).all():
            return "binary"
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = column.to_numpy(dtype=object)
        if any(_is_list_like(v) for v in values):
            return "multi_valued"
        return "categorical"
    if dtype == object:  # pragma: no cover - object columns are string dtype above
        return "categorical"
    raise TypeError(
        f"Column {name!r} of the attributes has dtype {dtype}, which is neither "
        "categorical (strings, integers listed in categorical=...), multi-valued "
        "(lists), binary (booleans, 0/1) nor numeric; convert it first (e.g. a "
        "date to a year)."
    )


def _check_column(name, kind, column):
    """The column's values as the encoder reads them; bad values raise."""
    if kind in ("numeric", "binary"):
        if not (
            pd.api.types.is_numeric_dtype(column.dtype)
            or pd.api.types.is_bool_dtype(column.dtype)
        ) or pd.api.types.is_complex_dtype(column.dtype):
            raise TypeError(
                f"Column {name!r} of the attributes is {kind} but holds values of "
                f"dtype {column.dtype}; pass numbers, or list it in categorical=[...]."
            )
        values = np.array(column.to_numpy(dtype=np.float64, na_value=np.nan))  # a copy
        bad = ~np.isfinite(values)
        if bad.any():
            first = _id(column.index[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"Column {name!r} of the attributes holds NaN or infinity (id "
                f"{first!r}); numeric attributes must be finite: impute them (e.g. "
                "sklearn.impute.SimpleImputer) or make the column categorical, whose "
                "missing values are allowed."
            )
        if kind == "binary" and not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(
                f"Column {name!r} of the attributes is binary but holds values other "
                "than 0/1 (False/True)."
            )
        return values
    values = np.array(column.to_numpy(dtype=object))  # a copy, entries replaced below
    for i, value in enumerate(values):
        listed = _is_list_like(value)
        if kind == "categorical" and listed:
            raise TypeError(
                f"Column {name!r} of the attributes is categorical but holds a "
                f"{type(value).__name__} (id {_id(column.index[i])!r}); list it in "
                "multi_valued=[...] for several values per id."
            )
        if kind == "multi_valued" and not listed and not _is_missing(value):
            raise TypeError(
                f"Column {name!r} of the attributes is multi-valued: each entry must "
                f"be a list of values (or None), got a {type(value).__name__} (id "
                f"{column.index[i]!r}); e.g. split strings with .str.split('|')."
            )
        if kind == "multi_valued" and listed:
            entries = list(value)
            if any(_is_list_like(v) or _is_missing(v) for v in entries):
                raise TypeError(
                    f"Column {name!r} of the attributes holds a nested list or a "
                    f"missing value inside a list (id {_id(column.index[i])!r})."
                )
            values[i] = tuple(entries)
        elif kind == "categorical" and not _is_missing(value):
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"Column {name!r} of the attributes holds an unhashable "
                    f"{type(value).__name__} (id {_id(column.index[i])!r})."
                ) from None
    return values


class Attributes(ImmutableParameter):
    """User or item attributes, one row per raw id.

    Pass it as the ``user_attributes`` or ``item_attributes`` parameter of
    :class:`MatrixFactorization` or :class:`CNNRecommender`, or as the
    ``item_attributes`` of :class:`AttentionRecommender` and
    :class:`LSTMRecommender`; to :meth:`MatrixFactorization.register_items`
    / :meth:`~MatrixFactorization.register_users` after fit; or as the
    ``users`` of :meth:`~MatrixFactorization.recommend` to recommend to new
    users from their attributes alone.

    **Kinds of columns.** Each column other than the ids is one of:

    * ``categorical``: one value per id (strings, integers listed in
      ``categorical``, pandas categoricals); each value seen at fit is a
      feature. A missing value (None/NaN) or a value unseen at fit adds no
      feature.
    * ``multi_valued``: a list of values per id (genres, tags); each value
      is a feature weighted ``1 / n_values`` so that a column weighs the same
      whatever the number of values. None or an empty list: no feature.
    * ``binary``: booleans or 0/1 numbers (one-hot genre columns); the column
      is a feature present where the value is 1.
    * ``numeric``: finite numbers (NaN is refused: impute it first). Two
      features: the value, standardised with the mean and standard deviation
      of the table seen at fit, weighs the column's feature; and the
      indicator of its bin among the column's deciles at fit (fewer bins for
      fewer distinct values), so that the effect of a number needs not be
      linear.

    Columns not named in ``categorical``, ``multi_valued`` or ``numeric``
    are inferred: bool and 0/1 columns are binary, other numbers numeric,
    strings and categoricals categorical, lists multi-valued.

    **Why a parameter object.** As for :class:`ItemContent`: attributes are
    data about the users or items, not one row per sample, so they must not
    be split by cross-validation. ``Attributes`` is immutable (it holds a
    copy of the columns it reads), :func:`copy.deepcopy` and hence
    :func:`sklearn.base.clone` return the same object, so the clones of a
    grid search share it; joblib memory-maps its large arrays to worker
    processes. Equality is identity.

    Parameters
    ----------
    table : DataFrame
        One row per id (pandas, or polars/pyarrow through narwhals). Ids in
        the index, or in column ``id_col``; unique, no missing id.
    id_col : str, default=None
        Column holding the raw ids; the index when None.
    categorical, multi_valued, numeric : list of str, default=None
        Columns of each kind (the others are inferred, see above). A column
        named in none of them and absent from the table is an error; to
        leave a column out, drop it from the table.

    Attributes
    ----------
    ids : ndarray of shape (n_ids,)
        Raw ids, in the order of the table.
    columns : dict
        Column name -> kind (``"categorical"``, ``"multi_valued"``,
        ``"binary"`` or ``"numeric"``), in the order of the table.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import Attributes
    >>> users = pd.DataFrame({"age": [24, 53, 23], "occupation": ["tech", "other", "writer"]},
    ...                      index=[1, 2, 3])
    >>> Attributes(users)
    Attributes(n_ids=3, columns={'age': 'numeric', 'occupation': 'categorical'})
    >>> items = pd.DataFrame({"item": ["a", "b"], "genres": [["Action", "Drama"], []]})
    >>> Attributes(items, id_col="item").columns
    {'genres': 'multi_valued'}
    """

    def __init__(self, table, *, id_col=None, categorical=None, multi_valued=None,
                 numeric=None):
        table = as_input(table)
        if not isinstance(table, pd.DataFrame):
            raise TypeError(
                "Attributes needs a DataFrame (one row per id), got "
                f"{type(table).__name__}."
            )
        if id_col is not None:
            if id_col not in table.columns:
                raise ValueError(f"id_col={id_col!r} is not a column of the table.")
            ids, table = table[id_col], table.drop(columns=[id_col])
        else:
            ids = table.index
        ids = check_ids(np.asarray(ids), "The ids of the attributes")
        if len(ids) == 0:
            raise ValueError("Attributes needs at least one row (id).")
        index = pd.Index(ids)
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:10].tolist()
            raise ValueError(f"The attributes hold duplicated ids: {dup}.")
        explicit = {}
        for kind, names in (
            ("categorical", categorical), ("multi_valued", multi_valued), ("numeric", numeric)
        ):
            if names is None:
                continue
            if isinstance(names, str) or not all(isinstance(n, (str, numbers.Integral))
                                                 for n in names):
                raise TypeError(f"{kind} must be a list of column names, got {names!r}.")
            for name in names:
                if name not in table.columns:
                    raise ValueError(f"{kind} names column {name!r}, which the table lacks.")
                if name in explicit:
                    raise ValueError(
                        f"Column {name!r} is listed as both {explicit[name]} and {kind}."
                    )
                explicit[name] = kind
        if len(table.columns) == 0:
            raise ValueError("The attribute table has no column besides the ids.")
        if not table.columns.is_unique:
            raise ValueError("The attribute table has duplicated column names.")
        table = table.set_axis(index, axis=0)
        columns, values = {}, {}
        for name in table.columns:
            column = table[name]
            kind = explicit.get(name) or _infer_kind(name, column)
            values[name] = _check_column(name, kind, column)
            values[name].flags.writeable = False
            columns[name] = kind
        ids.flags.writeable = False
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_values", values)

    @property
    def ids(self):
        return self._ids

    @property
    def columns(self):
        return dict(self._columns)

    @property
    def n_ids(self):
        """int: Number of ids (rows)."""
        return len(self._ids)

    def __len__(self):
        return len(self._ids)

    def values(self, column):
        """The read-only values of ``column`` as the encoder reads them."""
        return self._values[column]

    def __getstate__(self):
        return {"ids": self._ids, "columns": self._columns, "values": self._values}

    def __setstate__(self, state):
        for key in ("ids", "columns", "values"):
            object.__setattr__(self, "_" + key, state[key])

    def __repr__(self):
        return f"Attributes(n_ids={self.n_ids}, columns={self._columns})"


def check_attributes(value, name):
    """``value`` if it is :class:`Attributes` (or None), else a TypeError."""
    if value is not None and not isinstance(value, Attributes):
        raise TypeError(
            f"{name} must be an Attributes (sklearn_recsys.Attributes(table)), got "
            f"{type(value).__name__}."
        )
    return value


class AttributeEncoder:
    """The fitted encoding of :class:`Attributes` into weighted features.

    Learned from the attributes given at fit: the vocabulary of every
    categorical and multi-valued column, the mean and standard deviation of
    every numeric one. :meth:`encode` turns attributes with the same columns
    into, per id, up to ``width`` ``(feature, weight)`` pairs, padded with
    feature ``n_features`` (no feature) and weight 0.
    """

    def __init__(self, attributes):
        self.columns = attributes.columns
        self.vocabularies, self.offsets, self.stats = {}, {}, {}
        n = 0
        for name, kind in self.columns.items():
            values = attributes.values(name)
            self.offsets[name] = n
            if kind == "categorical":
                present = [v for v in values if not _is_missing(v)]
                vocab, _ = IdIndex.from_values(np.array(present + [None], dtype=object)[:-1])
                self.vocabularies[name] = vocab
                n += len(vocab)
            elif kind == "multi_valued":
                flat = [v for entry in values if isinstance(entry, tuple) for v in entry]
                vocab, _ = IdIndex.from_values(np.array(flat + [None], dtype=object)[:-1])
                self.vocabularies[name] = vocab
                n += len(vocab)
            elif kind == "numeric":
                std = float(values.std())
                quantiles = np.quantile(values, np.arange(1, _N_BINS) / _N_BINS)
                edges = np.unique(quantiles)
                edges = edges[edges > values.min()]  # every bin holds a value
                self.stats[name] = (float(values.mean()), std if std > 0 else 1.0, edges)
                n += 1 + len(edges) + 1
            else:
                n += 1
        self.n_features = n
        self.width = self.encode(attributes)[0].shape[1]

    def feature_names(self):
        """ndarray of str: one name per feature (``column=value`` or ``column``)."""
        names = []
        for name, kind in self.columns.items():
            if name in self.vocabularies:
                names += [f"{name}={v}" for v in self.vocabularies[name].ids]
            elif kind == "numeric":
                edges = self.stats[name][2]
                bounds = ["-inf", *(f"{e:g}" for e in edges), "inf"]
                names += [str(name)] + [
                    f"{name} in [{lo}, {hi})" for lo, hi in zip(bounds[:-1], bounds[1:])
                ]
            else:
                names.append(str(name))
        return np.asarray(names, dtype=object)

    def encode(self, attributes, width=None):
        """``(index, weight)`` of shape ``(n_ids, width)``, rows as ``attributes.ids``.

        Columns must be those of fit, of the same kinds. ``width``: pad or cut
        the rows to this many features (the most a row has by default); a row
        with more features than ``width`` keeps its first ones.
        """
        missing = [c for c in self.columns if c not in attributes.columns]
        if missing:
            raise ValueError(
                f"The attributes lack column(s) {missing} of the attributes seen at fit."
            )
        rows, cols, weights = [], [], []
        n_ids = attributes.n_ids
        for name, kind in self.columns.items():
            if attributes.columns[name] != kind:
                raise TypeError(
                    f"Column {name!r} of the attributes is {attributes.columns[name]}, "
                    f"but it was {kind} at fit."
                )
            values, offset = attributes.values(name), self.offsets[name]
            if kind == "categorical":
                codes = self.vocabularies[name].transform(values)
                ok = codes >= 0
                rows.append(np.flatnonzero(ok))
                cols.append(offset + codes[ok])
                weights.append(np.ones(int(ok.sum())))
            elif kind == "multi_valued":
                counts = np.array([len(v) if isinstance(v, tuple) else 0 for v in values])
                flat = np.array(
                    [v for entry in values if isinstance(entry, tuple) for v in entry] + [None],
                    dtype=object,
                )[:-1]
                codes = self.vocabularies[name].transform(flat)
                owner = np.repeat(np.arange(n_ids), counts)
                ok = codes >= 0
                rows.append(owner[ok])
                cols.append(offset + codes[ok])
                weights.append(1.0 / counts[owner[ok]])
            elif kind == "binary":
                on = np.flatnonzero(values == 1)
                rows.append(on)
                cols.append(np.full(len(on), offset))
                weights.append(np.ones(len(on)))
            else:  # the standardised value, and the indicator of its quantile bin
                mean, std, edges = self.stats[name]
                rows += [np.arange(n_ids), np.arange(n_ids)]
                cols += [np.full(n_ids, offset),
                         offset + 1 + np.searchsorted(edges, values, side="right")]
                weights += [(values - mean) / std, np.ones(n_ids)]
        rows = np.concatenate(rows).astype(np.int64)
        cols = np.concatenate(cols).astype(np.int64)
        weights = np.concatenate(weights).astype(np.float32)
        order = np.lexsort((cols, rows))
        rows, cols, weights = rows[order], cols[order], weights[order]
        counts = np.bincount(rows, minlength=n_ids)
        slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        width = max(1, int(counts.max(initial=0))) if width is None else width
        keep = slot < width
        index = np.full((n_ids, width), self.n_features, dtype=np.int64)
        weight = np.zeros((n_ids, width), dtype=np.float32)
        index[rows[keep], slot[keep]] = cols[keep]
        weight[rows[keep], slot[keep]] = weights[keep]
        return index, weight

    def aligned(self, attributes, id_index, n_rows=None):
        """``(index, weight)`` with one row per position of ``id_index``, plus one.

        Ids of ``id_index`` absent from ``attributes`` and the last row (the
        unknown id) get no feature; ids of ``attributes`` outside
        ``id_index`` are ignored.
        """
        n_rows = len(id_index) if n_rows is None else n_rows
        index = np.full((n_rows + 1, self.width), self.n_features, dtype=np.int64)
        weight = np.zeros((n_rows + 1, self.width), dtype=np.float32)
        if attributes is not None:
            pos = id_index.transform(attributes.ids)
            ok = pos >= 0
            enc_index, enc_weight = self.encode(attributes, self.width)
            index[pos[ok]], weight[pos[ok]] = enc_index[ok], enc_weight[ok]
        return index, weight

    # -- plain form (artifacts, skops) -----------------------------------------

    def __getstate__(self):
        return {
            "columns": self.columns, "offsets": self.offsets, "stats": self.stats,
            "vocabularies": self.vocabularies, "n_features": self.n_features,
            "width": self.width,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)
