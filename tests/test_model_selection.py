"""Tests for sklearn_recsys.model_selection."""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_recsys.model_selection import (
    InteractionKFold,
    LeaveLastOut,
    TemporalSplit,
    UserHoldout,
    UserKFold,
    train_test_split,
)

# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def make_interactions(
    n_users=50, min_len=3, max_len=40, n_items=30, string_ids=False, seed=0
):
    """Seeded synthetic interaction table, rows shuffled, with time ties."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n_users)
    users = np.repeat(np.arange(n_users), lengths)
    n = users.shape[0]
    # popularity-skewed items so that the dummy recommender has signal
    items = rng.zipf(1.5, size=n) % n_items
    timestamps = rng.integers(0, 200, size=n)  # many ties
    perm = rng.permutation(n)
    X = pd.DataFrame(
        {
            "user": users[perm],
            "item": items[perm],
            "timestamp": timestamps[perm],
        },
        index=pd.RangeIndex(1000, 1000 + n),  # non-default index
    )
    if string_ids:
        X["user"] = "u" + X["user"].astype(str)
        X["item"] = "i" + X["item"].astype(str)
    return X


@pytest.fixture(scope="module")
def X():
    return make_interactions()


@pytest.fixture(scope="module")
def X_str():
    return make_interactions(string_ids=True, seed=1)


def _check_partition(n, train, test, excluded=None):
    """Train/test are sorted int arrays, disjoint, covering all other rows."""
    for idx in (train, test):
        assert isinstance(idx, np.ndarray)
        assert np.issubdtype(idx.dtype, np.integer)
        assert np.all(np.diff(idx) > 0)
    assert np.intersect1d(train, test).size == 0
    covered = np.concatenate([train, test])
    if excluded is not None:
        assert np.intersect1d(covered, excluded).size == 0
        covered = np.concatenate([covered, excluded])
    assert np.array_equal(np.sort(covered), np.arange(n))


def _users(X, idx, col="user"):
    return set(X[col].iloc[idx])


def _assert_same_splits(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        for ia, ib in zip(sa, sb):
            np.testing.assert_array_equal(ia, ib)


# ---------------------------------------------------------------------------
# InteractionKFold
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle, random_state", [(True, 0), (False, None)])
@pytest.mark.parametrize("data", ["X", "X_str"])
def test_interaction_kfold_partition(data, shuffle, random_state, request):
    X = request.getfixturevalue(data)
    cv = InteractionKFold(4, shuffle=shuffle, random_state=random_state)
    assert cv.get_n_splits() == 4
    splits = list(cv.split(X))
    assert len(splits) == 4
    counts = np.zeros(len(X), dtype=int)
    sizes = X.groupby("user").size()
    for train, test in splits:
        _check_partition(len(X), train, test)
        counts[test] += 1
        # every test user keeps training data
        assert _users(X, test) <= _users(X, train)
        # stratified: each user has floor or ceil of n_u / k in each test fold
        per_user = X["user"].iloc[test].value_counts().reindex(sizes.index, fill_value=0)
        assert (per_user >= sizes // 4).all()
        assert (per_user <= -(-sizes // 4)).all()
    # each row is in exactly one test fold (all users have >= 3 interactions)
    assert (counts == 1).all()


def test_interaction_kfold_single_interaction_users_stay_in_train():
    X = pd.DataFrame(
        {"user": [0, 0, 0, 0, 1, 2, 2, 3], "item": [1, 2, 3, 4, 1, 1, 2, 5]}
    )
    for train, test in InteractionKFold(2, random_state=0).split(X):
        _check_partition(len(X), train, test)
        assert 4 in train and 7 in train  # users 1 and 3: single interaction
        assert _users(X, test) <= {0, 2}


def test_interaction_kfold_determinism(X):
    cv = InteractionKFold(3, random_state=42)
    _assert_same_splits(cv.split(X), cv.split(X))
    _assert_same_splits(cv.split(X), InteractionKFold(3, random_state=42).split(X))
    other = next(InteractionKFold(3, random_state=43).split(X))[1]
    assert not np.array_equal(next(cv.split(X))[1], other)


def test_interaction_kfold_matrix_input_points_to_user_kfold():
    R = sparse.random(10, 5, density=0.5, format="csr", random_state=0)
    with pytest.raises(TypeError, match="UserKFold"):
        next(InteractionKFold(2).split(R))
    with pytest.raises(TypeError, match="UserKFold"):
        next(InteractionKFold(2).split(R.toarray()))


# ---------------------------------------------------------------------------
# UserHoldout
# ---------------------------------------------------------------------------


def test_user_holdout_fractions(X_str):
    X = X_str
    cv = UserHoldout(0.25, n_splits=3, random_state=0)
    assert cv.get_n_splits() == 3
    splits = list(cv.split(X))
    assert len(splits) == 3
    sizes = X.groupby("user").size()
    expected = np.minimum(np.floor(0.25 * sizes + 0.5), sizes - 1)
    for train, test in splits:
        _check_partition(len(X), train, test)
        assert _users(X, test) <= _users(X, train)
        per_user = X["user"].iloc[test].value_counts().reindex(sizes.index, fill_value=0)
        np.testing.assert_array_equal(per_user.to_numpy(), expected.to_numpy())
    # repetitions are independent draws
    assert not np.array_equal(splits[0][1], splits[1][1])
    _assert_same_splits(cv.split(X), UserHoldout(0.25, n_splits=3, random_state=0).split(X))


def test_user_holdout_int_and_min_train():
    X = make_interactions(n_users=20, min_len=1, max_len=8, seed=3)
    sizes = X.groupby("user").size()
    train, test = next(UserHoldout(3, min_train=2, random_state=0).split(X))
    _check_partition(len(X), train, test)
    per_test = X["user"].iloc[test].value_counts().reindex(sizes.index, fill_value=0)
    per_train = X["user"].iloc[train].value_counts().reindex(sizes.index, fill_value=0)
    np.testing.assert_array_equal(per_test, np.clip(np.minimum(3, sizes - 2), 0, None))
    assert (per_train >= np.minimum(sizes, 2)).all()


# ---------------------------------------------------------------------------
# LeaveLastOut
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_test", [1, 2])
def test_leave_last_out(X, n_test):
    cv = LeaveLastOut(n_test)
    assert cv.get_n_splits() == 1
    (train, test), = list(cv.split(X))
    _check_partition(len(X), train, test)
    assert _users(X, test) <= _users(X, train)
    # every user (all have >= 3 interactions) has exactly n_test test rows
    assert (X["user"].iloc[test].value_counts() == n_test).all()
    assert _users(X, test) == set(X["user"])
    tr, te = X.iloc[train], X.iloc[test]
    max_train = tr.groupby("user")["timestamp"].max()
    min_test = te.groupby("user")["timestamp"].min()
    assert (max_train.loc[min_test.index] <= min_test).all()


def test_leave_last_out_ties_by_row_order():
    X = pd.DataFrame(
        {"user": ["a", "a", "a", "b", "b"], "item": [1, 2, 3, 4, 5], "timestamp": [5, 5, 5, 1, 1]}
    )
    train, test = next(LeaveLastOut().split(X))
    np.testing.assert_array_equal(test, [2, 4])
    np.testing.assert_array_equal(train, [0, 1, 3])


def test_leave_last_out_validation(X):
    cv = LeaveLastOut(1, n_valid=2)
    (train, valid, test), = list(cv.split_validation(X))
    train2, test2 = next(cv.split(X))
    np.testing.assert_array_equal(train, train2)
    np.testing.assert_array_equal(test, test2)
    _check_partition(len(X), train, test, excluded=valid)
    assert (X["user"].iloc[valid].value_counts() == 2).all()
    tr, va, te = X.iloc[train], X.iloc[valid], X.iloc[test]
    max_train = tr.groupby("user")["timestamp"].max()
    min_valid = va.groupby("user")["timestamp"].min()
    max_valid = va.groupby("user")["timestamp"].max()
    min_test = te.groupby("user")["timestamp"].min()
    assert (max_train.loc[min_valid.index] <= min_valid).all()
    assert (max_valid.loc[min_test.index] <= min_test).all()
    # without validation the validation set is empty
    (_, valid0, _), = list(LeaveLastOut().split_validation(X))
    assert valid0.size == 0


def test_leave_last_out_short_users_stay_in_train():
    X = pd.DataFrame(
        {
            "user": [1, 1, 1, 1, 2, 2, 3],
            "item": [1, 2, 3, 4, 1, 2, 1],
            "timestamp": pd.to_datetime(
                ["2020-01-04", "2020-01-01", "2020-01-03", "2020-01-02",
                 "2020-01-01", "2020-01-02", "2020-01-01"]
            ),
        }
    )
    (train, valid, test), = list(LeaveLastOut(1, n_valid=1).split_validation(X))
    np.testing.assert_array_equal(test, [0])
    np.testing.assert_array_equal(valid, [2])
    np.testing.assert_array_equal(train, [1, 3, 4, 5, 6])


def test_leave_last_out_tz_aware_times():
    times = pd.to_datetime(
        ["2021-03-01 10:00", "2021-03-01 09:00", "2021-03-02 00:00"]
    ).tz_localize("Europe/Paris")
    X = pd.DataFrame({"user": [0, 0, 0], "item": [0, 1, 2], "timestamp": times})
    train, test = next(LeaveLastOut().split(X))
    np.testing.assert_array_equal(test, [2])


# ---------------------------------------------------------------------------
# TemporalSplit
# ---------------------------------------------------------------------------


def test_temporal_split_quantile(X):
    cv = TemporalSplit(test_size=0.3)
    assert cv.get_n_splits() == 1
    (train, test), = list(cv.split(X))
    _check_partition(len(X), train, test)
    t = X["timestamp"].to_numpy()
    assert t[train].max() <= t[test].min()
    assert 0.2 < len(test) / len(X) <= 0.3 + 1e-9


def test_temporal_split_cut(X):
    train, test = next(TemporalSplit(cut=150).split(X))
    _check_partition(len(X), train, test)
    t = X["timestamp"].to_numpy()
    assert (t[test] > 150).all() and (t[train] <= 150).all()


def test_temporal_split_datetime_cut():
    X = pd.DataFrame(
        {
            "user": [1, 2, 1, 3],
            "item": [1, 1, 2, 3],
            "timestamp": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-01-15"]),
        }
    )
    for cut in ["2020-01-20", pd.Timestamp("2020-01-20")]:
        train, test = next(TemporalSplit(cut=cut).split(X))
        np.testing.assert_array_equal(test, [1, 2])
    train, test = next(TemporalSplit(test_size=0.25).split(X))
    np.testing.assert_array_equal(test, [2])
    with pytest.raises(TypeError, match="cut"):
        next(TemporalSplit(cut="2020-01-20").split(X.assign(timestamp=[1, 2, 3, 4])))


# ---------------------------------------------------------------------------
# UserKFold
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["X", "X_str"])
def test_user_kfold_table(data, request):
    X = request.getfixturevalue(data)
    cv = UserKFold(5, random_state=0)
    assert cv.get_n_splits() == 5
    counts = np.zeros(len(X), dtype=int)
    n_test_users = []
    for train, test in cv.split(X):
        _check_partition(len(X), train, test)
        assert not _users(X, train) & _users(X, test)
        counts[test] += 1
        n_test_users.append(len(_users(X, test)))
    assert (counts == 1).all()
    assert sorted(n_test_users) == [10] * 5
    _assert_same_splits(cv.split(X), UserKFold(5, random_state=0).split(X))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "dense", "csr_array"])
def test_user_kfold_matrix(fmt):
    R = sparse.random(23, 7, density=0.3, format="csr", random_state=0)
    if fmt == "dense":
        R = R.toarray()
    elif fmt == "csr_array":
        R = sparse.csr_array(R)
    else:
        R = R.asformat(fmt)
    cv = UserKFold(4, random_state=0)
    counts = np.zeros(23, dtype=int)
    for train, test in cv.split(R):
        _check_partition(23, train, test)
        assert len(test) in (5, 6)
        counts[test] += 1
    assert (counts == 1).all()
    # no shuffle: contiguous blocks of rows
    tests = [test for _, test in UserKFold(4, shuffle=False).split(R)]
    np.testing.assert_array_equal(np.concatenate(tests), np.arange(23))


# ---------------------------------------------------------------------------
# train_test_split
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "user", "leave_last", "temporal"])
def test_train_test_split(X_str, strategy):
    X = X_str
    y_series = pd.Series(np.arange(len(X), dtype=float), index=X.index)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y_series, test_size=0.2, strategy=strategy, random_state=0
    )
    assert isinstance(X_tr, pd.DataFrame) and isinstance(y_tr, pd.Series)
    assert len(X_tr) + len(X_te) == len(X)
    assert not set(X_tr.index) & set(X_te.index)
    assert y_tr.index.equals(X_tr.index) and y_te.index.equals(X_te.index)
    assert X_tr.index.is_monotonic_increasing and X_te.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(pd.concat([X_tr, X_te]).sort_index(), X)
    if strategy != "temporal":
        assert set(X_te["user"]) <= set(X_tr["user"])
    if strategy == "random":
        assert len(X_te) == int(np.floor(0.2 * len(X) + 0.5))
    if strategy == "leave_last":
        assert (X_te["user"].value_counts() == 1).all()
    # ndarray y stays an ndarray
    y_arr = y_series.to_numpy()
    out = train_test_split(X, y_arr, strategy=strategy, random_state=0)
    assert isinstance(out[2], np.ndarray)
    np.testing.assert_array_equal(out[3], y_te.to_numpy())
    pd.testing.assert_frame_equal(out[1], X_te)


def test_train_test_split_int_sizes(X):
    X_tr, X_te = train_test_split(X, test_size=17, random_state=0)
    assert len(X_te) == 17
    X_tr, X_te = train_test_split(X, test_size=2, strategy="leave_last")
    assert (X_te["user"].value_counts() == 2).all()
    X_tr, X_te = train_test_split(X, test_size=2, strategy="user", random_state=0)
    assert (X_te["user"].value_counts() == 2).all()
    with pytest.raises(ValueError, match="temporal"):
        train_test_split(X, test_size=3, strategy="temporal")


def test_train_test_split_random_keeps_one_train_row_per_user():
    X = make_interactions(n_users=30, min_len=1, max_len=3, seed=5)
    X_tr, X_te = train_test_split(X, test_size=0.9, random_state=0)
    assert set(X_tr["user"]) == set(X["user"])
    assert len(X_tr) == X["user"].nunique()


# ---------------------------------------------------------------------------
# repr, pickling, errors
# ---------------------------------------------------------------------------


def test_repr_and_pickle():
    assert repr(InteractionKFold(3, random_state=1)) == (
        "InteractionKFold(n_splits=3, random_state=1, shuffle=True, user_col='user')"
    )
    assert repr(TemporalSplit(cut=10)) == (
        "TemporalSplit(cut=10, test_size=0.2, time_col='timestamp')"
    )
    assert repr(UserKFold()) == (
        "UserKFold(n_splits=5, random_state=None, shuffle=True, user_col='user')"
    )
    assert repr(LeaveLastOut(2, n_valid=1, user_col="uid", time_col="ts")) == (
        "LeaveLastOut(n_test=2, n_valid=1, time_col='ts', user_col='uid')"
    )
    assert "UserHoldout(" in repr(UserHoldout())
    cv = pickle.loads(pickle.dumps(UserHoldout(0.3, random_state=2)))
    assert cv.test_size == 0.3 and cv.random_state == 2


def test_params_stored_unchanged():
    # invalid values are accepted by __init__ and rejected by split
    cv = InteractionKFold(n_splits=1.5, shuffle="yes", user_col=["a"])
    assert cv.n_splits == 1.5 and cv.shuffle == "yes" and cv.user_col == ["a"]


def test_custom_column_names():
    X = make_interactions(seed=2).rename(columns={"user": "uid", "timestamp": "ts"})
    train, test = next(LeaveLastOut(user_col="uid", time_col="ts").split(X))
    _check_partition(len(X), train, test)
    train, test = next(InteractionKFold(3, user_col="uid", random_state=0).split(X))
    _check_partition(len(X), train, test)
    with pytest.raises(ValueError, match=r"'user' not found.*user_col="):
        next(UserHoldout().split(X))
    with pytest.raises(ValueError, match=r"'timestamp' not found.*time_col="):
        next(LeaveLastOut(user_col="uid").split(X))
    with pytest.raises(ValueError, match=r"'item' not found.*item_col="):
        train_test_split(X.rename(columns={"item": "iid"}), user_col="uid")


@pytest.mark.parametrize(
    "cv, err, match",
    [
        (InteractionKFold(1), ValueError, "n_splits"),
        (InteractionKFold(2.0), TypeError, "n_splits"),
        (InteractionKFold(500), ValueError, "n_splits=500"),
        (InteractionKFold(3, shuffle="yes"), TypeError, "shuffle"),
        (InteractionKFold(3, shuffle=False, random_state=0), ValueError, "random_state"),
        (UserKFold(1), ValueError, "n_splits"),
        (UserKFold(51), ValueError, "n_users=50"),
        (UserHoldout(0.0), ValueError, "test_size"),
        (UserHoldout(1.5), ValueError, "test_size"),
        (UserHoldout("0.2"), TypeError, "test_size"),
        (UserHoldout(0.2, n_splits=0), ValueError, "n_splits"),
        (UserHoldout(0.2, min_train=0), ValueError, "min_train"),
        (UserHoldout(0.01), ValueError, "empty test set"),
        (LeaveLastOut(0), ValueError, "n_test"),
        (LeaveLastOut(1, n_valid=-1), ValueError, "n_valid"),
        (LeaveLastOut(100), ValueError, "empty"),
        (TemporalSplit(test_size=1.0), ValueError, "test_size"),
        (TemporalSplit(cut=10_000), ValueError, "empty"),
        (TemporalSplit(cut=-1), ValueError, "training set"),
    ],
)
def test_invalid_params(X, cv, err, match):
    with pytest.raises(err, match=match):
        next(cv.split(X))


def test_invalid_inputs(X):
    R = sparse.random(5, 5, density=0.5, format="csr", random_state=0)
    for cv in [UserHoldout(), LeaveLastOut(), TemporalSplit()]:
        with pytest.raises(TypeError, match="interaction table"):
            next(cv.split(R))
    with pytest.raises(TypeError, match="interaction table"):
        train_test_split(R)
    with pytest.raises(ValueError, match="2-D"):
        next(UserKFold(2).split(np.arange(10)))
    with pytest.raises(ValueError, match="strategy"):
        train_test_split(X, strategy="bogus")
    with pytest.raises(TypeError, match="numeric or datetime"):
        next(LeaveLastOut().split(X.assign(timestamp="2020")))
    with pytest.raises(ValueError, match="missing values"):
        next(UserHoldout().split(X.assign(user=np.where(X["item"] == 0, None, X["user"]))))
    with pytest.raises(ValueError, match="inconsistent"):
        next(InteractionKFold(2).split(X, np.zeros(3)))
    with pytest.raises(ValueError, match="no rows"):
        next(UserHoldout().split(X.iloc[:0]))


# ---------------------------------------------------------------------------
# Integration with scikit-learn's model selection tools
# ---------------------------------------------------------------------------


class TopPopular(BaseEstimator):
    """Tiny recommender: recommends the ``k`` most popular training items."""

    def __init__(self, k=5, item_col="item"):
        self.k = k
        self.item_col = item_col

    def fit(self, X, y=None):
        counts = X[self.item_col].value_counts(sort=False)
        # sort by count then id for deterministic ties
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        self.top_items_ = [item for item, _ in ranked[: self.k]]
        return self

    def score(self, X, y=None):
        return float(X[self.item_col].isin(self.top_items_).mean())


@pytest.mark.parametrize(
    "cv",
    [
        InteractionKFold(3, random_state=0),
        UserHoldout(0.2, n_splits=2, random_state=0),
        LeaveLastOut(1),
        TemporalSplit(test_size=0.25),
        UserKFold(3, random_state=0),
    ],
    ids=lambda cv: type(cv).__name__,
)
def test_cross_validate_sequential(X_str, cv):
    res = cross_validate(TopPopular(), X_str, cv=cv, return_train_score=True)
    assert len(res["test_score"]) == cv.get_n_splits()
    assert np.all((res["test_score"] >= 0) & (res["test_score"] <= 1))
    assert np.all(res["train_score"] > 0)


def test_cross_validate_and_grid_search_parallel(X):
    res = cross_validate(TopPopular(), X, cv=InteractionKFold(3, random_state=0), n_jobs=2)
    seq = cross_validate(TopPopular(), X, cv=InteractionKFold(3, random_state=0), n_jobs=1)
    np.testing.assert_allclose(res["test_score"], seq["test_score"])

    search = GridSearchCV(
        TopPopular(), {"k": [1, 5, 10]}, cv=UserHoldout(0.2, n_splits=2, random_state=0),
        n_jobs=2,
    )
    search.fit(X)
    # more recommended items can only cover more test interactions
    assert search.best_params_ == {"k": 10}
    assert np.all(np.diff(search.cv_results_["mean_test_score"]) >= 0)
    assert search.n_splits_ == 2
