"""Cross-validation splitters for recommender data.

Two input conventions are supported (see the package documentation):

* an **interaction table**: a :class:`pandas.DataFrame` with one row per
  interaction, holding a user column, an item column and optionally a time
  column;
* a **user x item matrix**: a SciPy sparse matrix/array or a dense 2-D array
  with one row per user.

Every splitter follows scikit-learn's splitter protocol: ``split(X, y=None,
groups=None)`` yields ``(train, test)`` pairs of integer arrays of *row
positions* of ``X`` (sorted in increasing order) and ``get_n_splits`` returns
the number of splits, so the splitters can be passed as ``cv=`` to
:class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate` and friends.  Parameters are
stored unchanged by ``__init__`` and validated when ``split`` is called.

All the splits are vectorised (``pandas.factorize`` + stable ``argsort``),
so that splitting tens of millions of interactions takes seconds.
"""

import numbers

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import _safe_indexing, check_consistent_length, check_random_state

from .._input import as_input, check_times

__all__ = [
    "InteractionKFold",
    "UserHoldout",
    "LeaveLastOut",
    "TemporalSplit",
    "UserKFold",
    "train_test_split",
]


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _check_int(value, name, *, min_value, max_value=None):
    """Return ``value`` as an int, or raise a clear TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer; got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if value < min_value or (max_value is not None and value > max_value):
        bound = f">= {min_value}" if max_value is None else f"in [{min_value}, {max_value}]"
        raise ValueError(f"{name} must be {bound}; got {name}={value}.")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def _check_test_size(value, name="test_size", *, allow_int=True):
    """Check a float in (0, 1), or a positive int if ``allow_int``; return (kind, value)."""
    expected = "a float in (0, 1)" + (" or a positive int" if allow_int else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be {expected}; got {value!r} of type {type(value).__name__}."
        )
    if allow_int and isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"{name} must be {expected}; got {name}={value!r}.")
        return "int", int(value)
    if isinstance(value, numbers.Integral) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be {expected}; got {name}={value!r}.")
    return "float", float(value)


def _check_shuffle_random_state(shuffle, random_state):
    shuffle = _check_bool(shuffle, "shuffle")
    if not shuffle and random_state is not None:
        raise ValueError(
            "Setting a random_state has no effect since shuffle is False. Leave "
            "random_state to its default (None), or set shuffle=True."
        )
    return shuffle


def _check_table(X, splitter, columns, *, matrix_hint=None):
    """Check that ``X`` is an interaction table holding ``columns``.

    ``columns`` maps parameter names (``"user_col"``) to column names.
    """
    if not isinstance(X, pd.DataFrame):
        msg = (
            f"{splitter} needs an interaction table: a pandas DataFrame with one "
            f"row per interaction; got X of type {type(X).__name__}."
        )
        if matrix_hint:
            msg += " " + matrix_hint
        raise TypeError(msg)
    if X.shape[0] == 0:
        raise ValueError(f"{splitter}: X has no rows (no interactions to split).")
    for param, col in columns.items():
        try:
            present = col in X.columns
        except TypeError:
            raise TypeError(
                f"{param} must be a column name (hashable); got {col!r}."
            ) from None
        if not present:
            raise ValueError(
                f"Column {col!r} not found in X; set {param}= to the name of the "
                f"column to use. Available columns: {list(X.columns)!r}."
            )
        if isinstance(X[col], pd.DataFrame):
            raise ValueError(f"Column {col!r} ({param}) appears several times in X.")


def _check_y_groups(X, y, groups):
    arrays = [a for a in (y, groups) if a is not None]
    if arrays:
        check_consistent_length(X, *arrays)


def _user_codes(X, user_col):
    """Factorize the user column: ``codes`` (int64 per row) and ``n_users``."""
    codes, uniques = pd.factorize(X[user_col])
    if codes.size and codes.min() < 0:
        raise ValueError(
            f"The user column {user_col!r} (user_col) contains missing values."
        )
    return codes.astype(np.int64, copy=False), len(uniques)


def _time_values(X, time_col):
    """The time column as sortable keys (the estimators' validator)."""
    return check_times(X[time_col], f"The time column {time_col!r} (time_col)")[0]


# ---------------------------------------------------------------------------
# Vectorised group helpers
# ---------------------------------------------------------------------------


def _group_order(codes, rng=None, keys=None):
    """Row indices sorted by group code.

    Within a group, rows follow increasing ``keys`` (ties by row order) when
    ``keys`` is given, a random order when ``rng`` is given, else row order.
    """
    if keys is not None:
        first = np.argsort(keys, kind="stable")
    elif rng is not None:
        first = rng.permutation(codes.shape[0])
    else:
        return np.argsort(codes, kind="stable")
    return first[np.argsort(codes[first], kind="stable")]


def _rank_in_group(codes, n_groups, order):
    """Rank of every row inside its group along ``order`` and group sizes."""
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    rank = np.empty(codes.shape[0], dtype=np.int64)
    rank[order] = np.arange(codes.shape[0]) - starts[codes[order]]
    return rank, counts


def _per_user_test_mask(codes, n_users, n_test_per_user, rng):
    """Random per-user holdout: ``n_test_per_user[u]`` rows of user ``u``."""
    order = _group_order(codes, rng=rng)
    rank, _ = _rank_in_group(codes, n_users, order)
    return rank < n_test_per_user[codes]


def _masks_to_indices(test_mask, excluded=None):
    train_mask = ~test_mask
    if excluded is not None:
        train_mask &= ~excluded
    return np.flatnonzero(train_mask), np.flatnonzero(test_mask)


_TO_USER_KFOLD = (
    "Per-interaction splits need an interaction table; to split the rows (users) "
    "of a user x item matrix use UserKFold."
)


# ---------------------------------------------------------------------------
# Splitters
# ---------------------------------------------------------------------------


class _BaseSplitter(BaseCrossValidator):
    """Base class of the splitters: the documented ``split`` and ``get_n_splits``.

    A subclass implements ``_iter_masks(X, y, groups, n_splits)``, which
    validates its other parameters and the data, then yields a ``(test,
    excluded)`` pair of boolean masks over the rows of ``X`` for each of the
    ``n_splits`` splits (``excluded``: rows left out of both train and test,
    or None).  ``_min_n_splits`` is the smallest valid ``n_splits``, or None
    for a splitter with a single split.
    """

    _min_n_splits = None

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splitting iterations of the cross-validator.

        Parameters
        ----------
        X : object, default=None
            Always ignored, exists for API compatibility.

        y : object, default=None
            Always ignored, exists for API compatibility.

        groups : object, default=None
            Always ignored, exists for API compatibility.

        Returns
        -------
        n_splits : int
            The ``n_splits`` parameter, or 1 for the splitters without one
            (:class:`LeaveLastOut`, :class:`TemporalSplit`).
        """
        if self._min_n_splits is None:
            return 1
        return _check_int(self.n_splits, "n_splits", min_value=self._min_n_splits)

    def split(self, X, y=None, groups=None):
        """Generate indices to split the data into training and test set.

        Parameters
        ----------
        X : pandas.DataFrame, sparse matrix or array-like of shape (n_users, n_items)
            Interaction table holding the columns named by the splitter's
            ``*_col`` parameters; :class:`UserKFold` also accepts a user x item
            matrix (one row per user).

        y : array-like of shape (n_samples,), default=None
            Ignored; only its length is checked against ``X``.

        groups : object, default=None
            Ignored, exists for API compatibility.

        Yields
        ------
        train : ndarray of int
            Sorted row positions of the training set.  Rows held out for
            validation (``LeaveLastOut(n_valid>0)``) are in neither set.

        test : ndarray of int
            Sorted row positions of the test set.
        """
        n_splits = self.get_n_splits()
        X = as_input(X)  # polars, pyarrow, ... tables through narwhals
        for test, excluded in self._iter_masks(X, y, groups, n_splits):
            yield _masks_to_indices(test, excluded)

    def _check_data(self, X, y, groups, *columns, matrix_hint=_TO_USER_KFOLD):
        """Check the interaction table ``X`` (``columns``: ``*_col`` params) and y/groups."""
        params = {name: getattr(self, name) for name in columns}
        _check_table(X, type(self).__name__, params, matrix_hint=matrix_hint)
        _check_y_groups(X, y, groups)


class _BaseKFold(_BaseSplitter):
    """Base class of the K-fold splitters: a fold number for every row.

    A subclass implements ``_assign_folds(X, y, groups, n_splits, shuffle)``,
    returning the fold of every row of ``X`` (-1: the row is never tested).
    """

    _min_n_splits = 2

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None, user_col="user"):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.user_col = user_col

    def _iter_masks(self, X, y, groups, n_splits):
        shuffle = _check_shuffle_random_state(self.shuffle, self.random_state)
        folds = self._assign_folds(X, y, groups, n_splits, shuffle)
        for k in range(n_splits):
            yield folds == k, None


class InteractionKFold(_BaseKFold):
    """K-fold over the interactions, stratified by user.

    Each user's interactions are spread as evenly as possible over the
    ``n_splits`` folds: the interactions of a user are ordered (randomly when
    ``shuffle=True``, by row order otherwise), numbered ``0, 1, 2, ...`` and the
    ``r``-th one goes to fold ``(r + offset) % n_splits``, where ``offset`` is a
    per-user rotation (random when ``shuffle=True``, derived from the user's
    position otherwise) that balances the fold sizes.  A test fold therefore
    holds at most ``ceil(n_u / n_splits)`` of the ``n_u`` interactions of a
    user, so every user with at least 2 interactions keeps training data in
    every fold.  Users with a single interaction are always kept in train
    (never in test).

    Every row of ``X`` appears in at most one test fold (exactly one unless
    its user has a single interaction).

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.

    shuffle : bool, default=True
        Whether to assign the interactions of each user to folds at random.
        With ``shuffle=False`` the assignment is a deterministic function of
        the row order.

    random_state : int, RandomState instance or None, default=None
        Controls the randomness when ``shuffle=True``.  Pass an int for
        reproducible splits.  Must be None when ``shuffle=False``.

    user_col : hashable, default="user"
        Name of the user column of the interaction table.

    See Also
    --------
    UserHoldout : Random per-user holdout, repeated ``n_splits`` times.
    UserKFold : K-fold over users (all interactions of a user in one fold).

    Notes
    -----
    Only interaction tables (:class:`pandas.DataFrame`) are accepted: a
    user x item matrix has one row per user, so its rows cannot be split per
    interaction; use :class:`UserKFold` for matrices.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys.model_selection import InteractionKFold
    >>> X = pd.DataFrame({"user": ["a"] * 4 + ["b"] * 4 + ["c"],
    ...                   "item": [1, 2, 3, 4, 1, 2, 5, 6, 1]})
    >>> cv = InteractionKFold(n_splits=2, random_state=0)
    >>> cv
    InteractionKFold(n_splits=2, random_state=0, shuffle=True, user_col='user')
    >>> cv.get_n_splits()
    2
    >>> for train, test in cv.split(X):
    ...     print(len(train), len(test), sorted(X["user"].iloc[test].unique()))
    5 4 ['a', 'b']
    5 4 ['a', 'b']
    """

    def _assign_folds(self, X, y, groups, n_splits, shuffle):
        self._check_data(X, y, groups, "user_col")
        codes, n_users = _user_codes(X, self.user_col)
        rng = check_random_state(self.random_state) if shuffle else None
        order = _group_order(codes, rng=rng)
        rank, counts = _rank_in_group(codes, n_users, order)
        if shuffle:
            offsets = rng.randint(n_splits, size=n_users)
        else:
            offsets = np.arange(n_users) % n_splits
        folds = (rank + offsets[codes]) % n_splits
        folds[counts[codes] < 2] = -1
        n_eligible = int(np.count_nonzero(folds >= 0))
        if n_eligible < n_splits:
            raise ValueError(
                f"Cannot have n_splits={n_splits} greater than the number of "
                f"interactions that can be tested ({n_eligible}: interactions of "
                "users with at least 2 interactions)."
            )
        sizes = np.bincount(folds[folds >= 0], minlength=n_splits)
        if (sizes == 0).any():
            raise ValueError(
                f"With n_splits={n_splits}, fold {int(np.argmin(sizes))} would have "
                "an empty test set; use fewer splits."
            )
        return folds


class UserHoldout(_BaseSplitter):
    """Random per-user holdout, repeated ``n_splits`` times.

    For each user with ``n_u`` interactions, ``n_test_u`` randomly chosen
    interactions go to test and the others to train, where

    * ``n_test_u = floor(test_size * n_u + 0.5)`` (``test_size * n_u``
      rounded half up) when ``test_size`` is a float,
    * ``n_test_u = test_size`` when ``test_size`` is an int,

    capped so that each user keeps at least ``min_train`` interactions in
    train (users with ``n_u <= min_train`` keep all their interactions in
    train).  Like :class:`~sklearn.model_selection.ShuffleSplit`, the
    ``n_splits`` repetitions are drawn independently, so a row can be in the
    test set of several repetitions.

    Parameters
    ----------
    test_size : float or int, default=0.2
        A float in (0, 1) is the fraction of each user's interactions held
        out; a positive int is the number of interactions held out per user.

    n_splits : int, default=1
        Number of independent repetitions, at least 1.

    min_train : int, default=1
        Minimum number of training interactions kept for every user, at
        least 1.

    random_state : int, RandomState instance or None, default=None
        Controls the randomness.  Pass an int for reproducible splits.

    user_col : hashable, default="user"
        Name of the user column of the interaction table.

    See Also
    --------
    InteractionKFold : K-fold over interactions, stratified by user.
    LeaveLastOut : Hold out the most recent interactions of every user.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys.model_selection import UserHoldout
    >>> X = pd.DataFrame({"user": [1] * 5 + [2] * 10 + [3],
    ...                   "item": range(16)})
    >>> cv = UserHoldout(test_size=0.2, random_state=0)
    >>> cv
    UserHoldout(min_train=1, n_splits=1, random_state=0, test_size=0.2,
                user_col='user')
    >>> train, test = next(cv.split(X))
    >>> X["user"].iloc[test].value_counts().sort_index().to_dict()
    {1: 1, 2: 2}
    """

    _min_n_splits = 1

    def __init__(
        self, test_size=0.2, *, n_splits=1, min_train=1, random_state=None, user_col="user"
    ):
        self.test_size = test_size
        self.n_splits = n_splits
        self.min_train = min_train
        self.random_state = random_state
        self.user_col = user_col

    def _iter_masks(self, X, y, groups, n_splits):
        """Draw ``n_splits`` independent per-user random holdouts."""
        kind, size = _check_test_size(self.test_size)
        min_train = _check_int(self.min_train, "min_train", min_value=1)
        self._check_data(X, y, groups, "user_col")
        codes, n_users = _user_codes(X, self.user_col)
        counts = np.bincount(codes, minlength=n_users)
        if kind == "float":
            n_test = np.floor(size * counts + 0.5).astype(np.int64)
        else:
            n_test = np.full(n_users, size, dtype=np.int64)
        n_test = np.clip(np.minimum(n_test, counts - min_train), 0, None)
        if not n_test.any():
            raise ValueError(
                f"test_size={self.test_size!r} with min_train={min_train} leaves "
                "every interaction in train (empty test set); increase test_size."
            )
        rng = check_random_state(self.random_state)
        for _ in range(n_splits):
            yield _per_user_test_mask(codes, n_users, n_test, rng), None


class LeaveLastOut(_BaseSplitter):
    """Hold out the most recent interactions of every user.

    The interactions of each user are sorted by ``time_col`` (ties are broken
    by row order: of two interactions with the same time, the one in the
    later row is considered the more recent).  The last ``n_test`` go to test.
    When ``n_valid > 0``, the ``n_valid`` interactions just before them form a
    validation set: :meth:`split` leaves them out of *both* train and test
    (so a model fitted on the train rows never sees them), and
    :meth:`split_validation` yields ``(train, valid, test)`` triples to use
    them, e.g. for early stopping or hyper-parameter selection.

    Users with ``n_test + n_valid`` interactions or fewer keep all their
    interactions in train.  There is a single split.

    Parameters
    ----------
    n_test : int, default=1
        Number of most recent interactions per user held out for test.

    n_valid : int, default=0
        Number of interactions right before the test ones held out for
        validation.

    user_col : hashable, default="user"
        Name of the user column of the interaction table.

    time_col : hashable, default="timestamp"
        Name of the time column (numeric or datetime).

    See Also
    --------
    TemporalSplit : Global temporal split at a cut-off time.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys.model_selection import LeaveLastOut
    >>> X = pd.DataFrame({"user": ["a", "a", "a", "b", "b", "c"],
    ...                   "item": [1, 2, 3, 1, 4, 2],
    ...                   "timestamp": [30, 10, 20, 5, 7, 1]})
    >>> cv = LeaveLastOut()
    >>> cv
    LeaveLastOut(n_test=1, n_valid=0, time_col='timestamp', user_col='user')
    >>> train, test = next(cv.split(X))
    >>> train, test
    (array([1, 2, 3, 5]), array([0, 4]))

    With ``n_valid=1``, user ``"a"`` gets a validation interaction (row 2),
    excluded from the train rows of :meth:`split`; users ``"b"`` and ``"c"``
    have too few interactions and stay in train:

    >>> cv = LeaveLastOut(n_valid=1)
    >>> next(cv.split(X))
    (array([1, 3, 4, 5]), array([0]))
    >>> next(cv.split_validation(X))
    (array([1, 3, 4, 5]), array([2]), array([0]))
    """

    def __init__(self, n_test=1, *, n_valid=0, user_col="user", time_col="timestamp"):
        self.n_test = n_test
        self.n_valid = n_valid
        self.user_col = user_col
        self.time_col = time_col

    def _iter_masks(self, X, y, groups, n_splits):
        n_test = _check_int(self.n_test, "n_test", min_value=1)
        n_valid = _check_int(self.n_valid, "n_valid", min_value=0)
        self._check_data(X, y, groups, "user_col", "time_col")
        codes, n_users = _user_codes(X, self.user_col)
        times = _time_values(X, self.time_col)
        order = _group_order(codes, keys=times)
        rank, counts = _rank_in_group(codes, n_users, order)
        n_u = counts[codes]
        from_end = n_u - 1 - rank  # 0 for the most recent interaction
        eligible = n_u > n_test + n_valid
        test = eligible & (from_end < n_test)
        if not test.any():
            raise ValueError(
                f"No user has more than n_test + n_valid = {n_test + n_valid} "
                "interactions: the test set would be empty."
            )
        valid = eligible & (from_end >= n_test) & (from_end < n_test + n_valid)
        yield test, valid

    def split_validation(self, X, y=None, groups=None):
        """Generate indices to split the interactions into train, valid, test.

        Parameters
        ----------
        X : pandas.DataFrame
            Interaction table with ``user_col`` and ``time_col`` columns.

        y : array-like of shape (n_interactions,), default=None
            Ignored; only checked for consistent length.

        groups : object, default=None
            Always ignored, exists for API compatibility.

        Yields
        ------
        train : ndarray of int
            Row positions of the training interactions.

        valid : ndarray of int
            Row positions of the validation interactions (empty when
            ``n_valid=0``).

        test : ndarray of int
            Row positions of the test interactions.
        """
        for test, valid in self._iter_masks(X, y, groups, n_splits=1):
            train, test_idx = _masks_to_indices(test, excluded=valid)
            yield train, np.flatnonzero(valid), test_idx


class TemporalSplit(_BaseSplitter):
    """Global temporal split at a cut-off time.

    Every interaction with time strictly greater than the cut goes to test,
    the others to train.  When ``cut`` is None the cut is the
    ``1 - test_size`` quantile of the times (linear interpolation), so that
    about a fraction ``test_size`` of the interactions (fewer with ties) is
    in test.  There is a single split.

    The test set may contain users and items that never appear in train
    (cold start); filter them out if the estimator cannot handle them.

    Parameters
    ----------
    cut : scalar, datetime-like, str or None, default=None
        Cut-off time, comparable with the time column (a number for a
        numeric column; a :class:`pandas.Timestamp`, datetime or date string
        for a datetime column).  None means "use the ``1 - test_size``
        quantile".

    test_size : float, default=0.2
        Approximate fraction of the interactions in test when ``cut`` is
        None, in (0, 1).

    time_col : hashable, default="timestamp"
        Name of the time column (numeric or datetime).

    See Also
    --------
    LeaveLastOut : Per-user temporal split.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys.model_selection import TemporalSplit
    >>> X = pd.DataFrame({"user": [1, 1, 2, 2, 3],
    ...                   "item": [1, 2, 1, 3, 2],
    ...                   "timestamp": [1, 5, 2, 9, 7]})
    >>> next(TemporalSplit(cut=5).split(X))
    (array([0, 1, 2]), array([3, 4]))
    >>> TemporalSplit(test_size=0.4)
    TemporalSplit(cut=None, test_size=0.4, time_col='timestamp')
    >>> next(TemporalSplit(test_size=0.4).split(X))
    (array([0, 1, 2]), array([3, 4]))
    """

    def __init__(self, cut=None, *, test_size=0.2, time_col="timestamp"):
        self.cut = cut
        self.test_size = test_size
        self.time_col = time_col

    def _iter_masks(self, X, y, groups, n_splits):
        _, test_size = _check_test_size(self.test_size, allow_int=False)
        hint = (
            "A temporal split needs the interaction times; to split the rows "
            "(users) of a user x item matrix use UserKFold."
        )
        self._check_data(X, y, groups, "time_col", matrix_hint=hint)
        _time_values(X, self.time_col)  # dtype / missing values check
        t = X[self.time_col]
        cut = t.quantile(1.0 - test_size) if self.cut is None else self._cut_for(t)
        try:
            test = np.asarray(t > cut, dtype=bool)
        except TypeError as exc:
            raise TypeError(
                f"cut={self.cut!r} cannot be compared with the time column "
                f"{self.time_col!r} of dtype {t.dtype}."
            ) from exc
        if not test.any():
            raise ValueError(
                f"No interaction is after the cut ({cut!r}): the test set would be "
                "empty."
            )
        if test.all():
            raise ValueError(
                f"Every interaction is after the cut ({cut!r}): the training set "
                "would be empty."
            )
        yield test, None

    def _cut_for(self, t):
        """``self.cut``, as a Timestamp when the time column ``t`` is a datetime."""
        tz_aware = isinstance(t.dtype, pd.DatetimeTZDtype)
        if not tz_aware and not pd.api.types.is_datetime64_dtype(t.dtype):
            return self.cut
        try:
            return pd.Timestamp(self.cut)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"cut={self.cut!r} cannot be converted to a timestamp to "
                f"compare with the datetime column {self.time_col!r}."
            ) from exc


class UserKFold(_BaseKFold):
    """K-fold over users ("strong generalization").

    The users are split into ``n_splits`` folds of (almost) equal numbers of
    users; no user is in both train and test.

    * For a user x item matrix (SciPy sparse or dense 2-D array, one row per
      user), the rows are split: the indices are row (user) positions.
    * For an interaction table (:class:`pandas.DataFrame`), all the
      interactions of a user fall in the same fold, as with
      :class:`~sklearn.model_selection.GroupKFold` grouped by user (the folds
      are balanced in numbers of users, not of interactions).

    Estimators cannot recommend to a user they have never seen from nothing:
    evaluating held-out users is done by folding in part of their history
    (e.g. an 80/20 split of each test user's interactions), which is the job
    of the scorer, not of the splitter.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2 and at most the number of users.

    shuffle : bool, default=True
        Whether to shuffle the users before forming the folds.  With
        ``shuffle=False`` folds are contiguous blocks of users (in row order
        for a matrix, in order of first appearance for a table).

    random_state : int, RandomState instance or None, default=None
        Controls the randomness when ``shuffle=True``.  Pass an int for
        reproducible splits.  Must be None when ``shuffle=False``.

    user_col : hashable, default="user"
        Name of the user column of an interaction table; ignored for a
        matrix.

    See Also
    --------
    InteractionKFold : K-fold over interactions, stratified by user.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from scipy import sparse
    >>> from sklearn_recsys.model_selection import UserKFold
    >>> R = sparse.random(6, 4, density=0.5, format="csr", random_state=0)
    >>> cv = UserKFold(n_splits=3, shuffle=False)
    >>> cv
    UserKFold(n_splits=3, random_state=None, shuffle=False, user_col='user')
    >>> for train, test in cv.split(R):
    ...     print(train, test)
    [2 3 4 5] [0 1]
    [0 1 4 5] [2 3]
    [0 1 2 3] [4 5]
    >>> X = pd.DataFrame({"user": ["a", "b", "a", "c", "b", "c"],
    ...                   "item": [1, 1, 2, 3, 4, 5]})
    >>> for train, test in cv.split(X):
    ...     print(train, test)
    [1 3 4 5] [0 2]
    [0 2 3 5] [1 4]
    [0 1 2 4] [3 5]
    """

    def _assign_folds(self, X, y, groups, n_splits, shuffle):
        if isinstance(X, pd.DataFrame):
            _check_table(X, type(self).__name__, {"user_col": self.user_col})
            codes, n_users = _user_codes(X, self.user_col)
        else:
            if not sparse.issparse(X):
                if not hasattr(X, "shape"):
                    X = np.asarray(X)
                if len(X.shape) != 2:
                    raise ValueError(
                        "UserKFold expects an interaction table (DataFrame) or a 2-D "
                        f"user x item matrix; got an array of shape {X.shape}."
                    )
            n_users = X.shape[0]
            codes = np.arange(n_users)
        _check_y_groups(X, y, groups)
        if n_splits > n_users:
            raise ValueError(
                f"Cannot have n_splits={n_splits} greater than the number of "
                f"users: n_users={n_users}."
            )
        rng = check_random_state(self.random_state) if shuffle else None
        position = np.arange(n_users)
        if shuffle:
            position = rng.permutation(n_users)
        user_fold = position * n_splits // n_users
        return user_fold[codes]


# ---------------------------------------------------------------------------
# train_test_split
# ---------------------------------------------------------------------------

_STRATEGIES = ("random", "user", "leave_last", "temporal")


def _random_split_mask(codes, n_users, test_size, random_state):
    """Global random holdout keeping at least one training row per user."""
    kind, size = _check_test_size(test_size)
    n = codes.shape[0]
    rng = check_random_state(random_state)
    order = _group_order(codes, rng=rng)
    rank, _ = _rank_in_group(codes, n_users, order)
    candidates = np.flatnonzero(rank > 0)  # rank 0: one random row kept per user
    n_test = size if kind == "int" else int(np.floor(size * n + 0.5))
    n_test = min(n_test, candidates.shape[0])
    if n_test == 0:
        raise ValueError(
            f"test_size={test_size!r} gives an empty test set (every user must keep "
            "one training interaction)."
        )
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(candidates)[:n_test]] = True
    return test


def _strategy_indices(X, test_size, strategy, random_state, user_col, time_col):
    """``(train, test)`` row positions of a checked table for one ``strategy``."""
    if strategy == "random":
        codes, n_users = _user_codes(X, user_col)
        return _masks_to_indices(_random_split_mask(codes, n_users, test_size, random_state))
    if strategy == "user":
        cv = UserHoldout(test_size, random_state=random_state, user_col=user_col)
    elif strategy == "leave_last":
        kind, size = _check_test_size(test_size)
        n_test = size if kind == "int" else 1
        cv = LeaveLastOut(n_test, user_col=user_col, time_col=time_col)
    else:
        if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
            raise ValueError(
                "strategy='temporal' needs a float test_size in (0, 1); got "
                f"test_size={test_size!r}."
            )
        cv = TemporalSplit(test_size=test_size, time_col=time_col)
    return next(cv.split(X))


def _train_test_split(X, y, test_size, strategy, random_state, user_col, item_col, time_col):
    """:func:`train_test_split`, all arguments positional."""
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}; got strategy={strategy!r}.")
    hint = (
        "train_test_split splits interaction tables; to split the rows (users) of "
        "a user x item matrix use UserKFold."
    )
    columns = {"user_col": user_col, "item_col": item_col}
    if strategy in ("leave_last", "temporal"):
        columns["time_col"] = time_col
    if strategy == "temporal":
        columns.pop("user_col")
    table = as_input(X)  # polars, pyarrow, ... tables through narwhals
    _check_table(table, "train_test_split", columns, matrix_hint=hint)
    _check_y_groups(table, y, None)
    train, test = _strategy_indices(table, test_size, strategy, random_state, user_col, time_col)
    result = [_safe_indexing(X, train), _safe_indexing(X, test)]
    if y is not None:
        result += [_safe_indexing(y, train), _safe_indexing(y, test)]
    return result


def train_test_split(
    X,
    y=None,
    *,
    test_size=0.2,
    strategy="random",
    random_state=None,
    user_col="user",
    item_col="item",
    time_col="timestamp",
):
    """Split an interaction table into a training and a test table.

    Parameters
    ----------
    X : pandas.DataFrame
        Interaction table with ``user_col`` and ``item_col`` columns (and
        ``time_col`` for the temporal strategies).
    y : array-like of shape (n_interactions,), default=None
        Optional target aligned with the rows of ``X`` (e.g. ratings), split
        the same way and returned with its type (Series, ndarray, ...).
    test_size : float or int, default=0.2
        Size of the test set; its meaning depends on ``strategy``.
    strategy : {"random", "user", "leave_last", "temporal"}, default="random"
        * ``"random"``: random interactions of the whole table (``test_size``: a
          fraction, rounded half up, or a number of them), but one random
          interaction of every user stays in train, so the test set can be smaller;
        * ``"user"``: :class:`UserHoldout` with ``min_train=1``;
        * ``"leave_last"``: :class:`LeaveLastOut`, holding out an int ``test_size``
          of most recent interactions per user (a float, the default, means 1);
        * ``"temporal"``: :class:`TemporalSplit`, with a float ``test_size``.
    random_state : int, RandomState instance or None, default=None
        Controls the randomness of ``"random"`` and ``"user"``.
    user_col : hashable, default="user"
        Name of the user column.
    item_col : hashable, default="item"
        Name of the item column (only checked for presence).
    time_col : hashable, default="timestamp"
        Name of the time column, used by ``"leave_last"`` and ``"temporal"``.

    Returns
    -------
    splitting : list of length 2, or 4 when ``y`` is given
        ``X_train, X_test``: the rows of ``X`` (taken with ``.iloc``, index
        kept, in their original order), then ``y_train, y_test``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys.model_selection import train_test_split
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3], "item": [10, 11, 12, 10, 13, 11],
    ...                   "timestamp": [3, 1, 2, 5, 6, 4]})
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, X["timestamp"] * 1.0, strategy="leave_last")
    >>> X_test.index.tolist(), y_test.tolist()
    ([0, 4], [3.0, 6.0])
    """
    return _train_test_split(
        X, y, test_size, strategy, random_state, user_col, item_col, time_col
    )
