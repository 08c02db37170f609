"""Tests of the closed-form baselines: Popularity, ItemKNN and EASE."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from sklearn_recsys import EASE, ItemKNN, Popularity
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserHoldout, UserKFold

ESTIMATORS = [Popularity, ItemKNN, EASE]


@pytest.fixture(scope="module")
def tiny():
    """A seeded binary 30 x 12 matrix with a few interactions per user."""
    rng = np.random.RandomState(0)
    X = (rng.rand(30, 12) < 0.3).astype(np.float64)
    X[X.sum(axis=1) == 0, 0] = 1.0
    return X


@pytest.fixture(scope="module")
def table():
    data = make_interactions(n_users=40, n_items=25, density=0.2, random_state=0)
    X = data.interactions.copy()
    X["user"] = "u" + X["user"].astype(str)  # string user ids, int item ids
    return X


@pytest.fixture(scope="module")
def synthetic_split():
    data = make_interactions(
        n_users=300, n_items=80, n_components=4, density=0.15, random_state=0
    )
    X = data.interactions
    train, test = next(UserHoldout(test_size=0.2, random_state=0).split(X))
    return X.iloc[train], X.iloc[test]


# -- known answers ----------------------------------------------------------


def test_popularity_ranks_by_count():
    X = pd.DataFrame(
        {"user": [1, 1, 2, 2, 3, 3, 4], "item": ["b", "c", "b", "c", "b", "a", "b"]}
    )
    pop = Popularity().fit(X)
    np.testing.assert_array_equal(pop.item_ids_, ["a", "b", "c"])
    np.testing.assert_array_equal(pop.item_popularity_, [1.0, 4.0, 2.0])
    ids, scores = pop.recommend([4, 999], k=3, exclude_seen=False)
    np.testing.assert_array_equal(ids, [["b", "c", "a"]] * 2)  # 999: unknown user
    np.testing.assert_allclose(scores[0], [4, 2, 1])
    ids, _ = pop.recommend([4], k=2)  # "b" seen by user 4
    np.testing.assert_array_equal(ids, [["c", "a"]])
    np.testing.assert_allclose(pop.predict(X.head(3)), [4.0, 2.0, 4.0])


def test_popularity_weights_and_time_decay():
    X = pd.DataFrame(
        {"user": [1, 2, 3, 1], "item": [0, 0, 1, 2], "timestamp": [0, 10, 20, 20]}
    )
    y = [1.0, 2.0, 5.0, 1.0]
    weighted = Popularity(implicit=False).fit(X, y).item_popularity_
    np.testing.assert_allclose(weighted, [3, 5, 1])
    np.testing.assert_allclose(Popularity().fit(X, y).item_popularity_, [2, 1, 1])
    decayed = Popularity(half_life=10).fit(X).item_popularity_
    np.testing.assert_allclose(decayed, [0.25 + 0.5, 1.0, 1.0])
    Xt = X.assign(timestamp=pd.to_datetime(X["timestamp"], unit="D"))
    decayed_dt = Popularity(half_life=pd.Timedelta(days=10)).fit(Xt).item_popularity_
    np.testing.assert_allclose(decayed_dt, decayed)
    with pytest.raises(TypeError, match="timedelta"):
        Popularity(half_life=10).fit(Xt)
    with pytest.raises(TypeError, match="numeric"):
        Popularity(half_life=pd.Timedelta(days=1)).fit(X)
    with pytest.raises(ValueError, match="time column 'when'"):
        Popularity(half_life=10, time_col="when").fit(X)
    with pytest.raises(ValueError, match="half_life needs"):
        Popularity(half_life=10).fit(np.ones((3, 2)))


def _dense_cosine_top_n(X, n_neighbors, shrinkage):
    norms = np.linalg.norm(X, axis=0)
    S = X.T @ X / (np.outer(norms, norms) + shrinkage)
    np.fill_diagonal(S, 0.0)
    for j in range(S.shape[1]):  # keep the n largest of each column
        order = np.argsort(-S[:, j], kind="stable")
        S[order[n_neighbors:], j] = 0.0
    return S


@pytest.mark.parametrize("shrinkage", [0.0, 2.0])
def test_itemknn_similarity_is_truncated_dense_cosine(tiny, shrinkage):
    X = tiny * np.random.RandomState(1).uniform(1, 5, size=tiny.shape)  # no ties
    knn = ItemKNN(n_neighbors=3, shrinkage=shrinkage, implicit=False).fit(X)
    expected = _dense_cosine_top_n(X, 3, shrinkage)
    S = knn.similarity_
    assert sp.issparse(S) and S.shape == (12, 12)
    np.testing.assert_allclose(S.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert (np.diff(S.tocsc().indptr) <= 3).all()
    # scores are history @ S
    np.testing.assert_allclose(
        knn.transform(X[:5]), X[:5] @ expected, rtol=1e-5, atol=1e-5
    )
    # binary by default: the cosine of the binarized matrix
    binary = ItemKNN(n_neighbors=11).fit(X).similarity_.toarray()
    np.testing.assert_allclose(binary, _dense_cosine_top_n(tiny, 11, 0.0), atol=1e-6)


def _ease_closed_form(X, l2_reg):
    P = np.linalg.inv(X.T @ X + l2_reg * np.eye(X.shape[1]))
    return np.eye(X.shape[1]) - P / np.diag(P)


def test_ease_coef_matches_numpy_closed_form(tiny):
    ease = EASE(l2_reg=2.0).fit(sp.csr_matrix(tiny))
    assert ease.coef_.dtype == np.float32
    np.testing.assert_allclose(ease.coef_, _ease_closed_form(tiny, 2.0), atol=1e-5)
    np.testing.assert_array_equal(np.diag(ease.coef_), 0.0)
    np.testing.assert_allclose(ease.transform(tiny), tiny @ ease.coef_, atol=1e-5)

    ease64 = EASE(l2_reg=2.0, dtype="float64").fit(tiny)
    assert ease64.coef_.dtype == np.float64
    np.testing.assert_allclose(ease64.coef_, _ease_closed_form(tiny, 2.0), atol=1e-12)

    weighted = tiny * np.arange(1, 13)
    coef = EASE(l2_reg=2.0, implicit=False, dtype="float64").fit(weighted).coef_
    np.testing.assert_allclose(coef, _ease_closed_form(weighted, 2.0), atol=1e-10)


# -- the shared API ---------------------------------------------------------


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_predict_conventions(Estimator, tiny, table):
    est = Estimator().fit(table)
    scores = est.predict(table)
    assert scores.shape == (len(table),) and scores.dtype == np.float32
    # a table's scores equal the known users' score rows
    users = table["user"].drop_duplicates().to_numpy()
    ids, top = est.recommend(users[:3], k=5, exclude_seen=False)
    sub = pd.DataFrame({"user": np.repeat(users[:3], 5), "item": ids.ravel()})
    np.testing.assert_allclose(est.predict(sub), top.ravel(), rtol=1e-5)

    est = Estimator().fit(tiny)
    H = sp.csr_array(tiny[:6])
    pred = est.predict(H)
    assert isinstance(pred, sp.csr_array) and pred.shape == H.shape
    np.testing.assert_array_equal(pred.indices, H.indices)
    np.testing.assert_array_equal(pred.indptr, H.indptr)
    dense = est.predict(tiny[:6])
    assert isinstance(dense, np.ndarray)
    stored = tiny[:6] != 0
    np.testing.assert_allclose(
        dense[stored], est.transform(tiny[:6])[stored], rtol=1e-5
    )
    assert isinstance(est.predict(sp.csr_matrix(tiny[:6])), sp.csr_matrix)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_recommend_contract(Estimator, table):
    est = Estimator().fit(table)
    users = table["user"].drop_duplicates().to_numpy()[:5]
    ids, scores = est.recommend(users, k=4)
    assert ids.shape == scores.shape == (5, 4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    for user, row in zip(users, ids):
        seen = set(table.loc[table["user"] == user, "item"])
        assert not seen & set(row)
    # allow-list
    allowed = table["item"].unique()[:6]
    ids, _ = est.recommend(users, k=10, items=allowed)
    assert ids.shape[1] == 6 and set(ids.ravel()) <= set(allowed)
    # new users from a table of histories equal known users with the same items
    first = table[table["user"] == users[0]]
    new = first.assign(user="somebody new")
    np.testing.assert_array_equal(
        est.recommend(new, k=4)[0], est.recommend(users[:1], k=4)[0]
    )
    with pytest.raises(ValueError, match="not seen during fit"):
        est.recommend(users, items=[10**6])


@pytest.mark.parametrize("Estimator", [ItemKNN, EASE])
def test_fold_in_matrix_rows_and_fallback(Estimator, tiny):
    est = Estimator().fit(tiny)
    ids, scores = est.recommend([0, 1, 2], k=5)
    ids_new, scores_new = est.recommend(sp.csr_array(tiny[:3]), k=5)
    np.testing.assert_array_equal(ids, ids_new)
    np.testing.assert_allclose(scores, scores_new, rtol=1e-6)
    # an empty history is scored by item popularity
    empty = np.zeros((1, tiny.shape[1]))
    ids, _ = est.recommend(empty, k=3)
    counts = tiny.sum(axis=0)
    np.testing.assert_array_equal(counts[ids[0]], np.sort(counts)[::-1][:3])


@pytest.mark.parametrize("Estimator", [ItemKNN, EASE])
def test_module_protocol(Estimator, tiny):
    est = Estimator(implicit=False).fit(tiny * np.arange(1, 31)[:, None])
    module = est._module()
    users = torch.arange(30)
    reprs = module.user_representation(users)
    full = module.score_all(reprs)
    items = torch.as_tensor(np.random.RandomState(0).randint(0, 12, size=30))
    pairs = module.score_pairs(reprs, items)
    np.testing.assert_allclose(
        pairs.numpy(), full[users, items].numpy(), rtol=1e-5, atol=1e-6
    )
    subset = torch.tensor([3, 7, 1])
    np.testing.assert_allclose(
        module.score_all(reprs, subset).numpy(), full[:, subset].numpy(), rtol=1e-5
    )
    assert module.forward(users).shape == (30, 12)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_unknown_ids_and_similar_items(Estimator, table):
    est = Estimator().fit(table)
    unknown = pd.DataFrame({"user": ["nobody", "u0"], "item": [0, 10**6]})
    scores = est.predict(unknown)
    assert scores.shape == (2,) and scores[1] == 0.0
    est.set_params(handle_unknown="error")
    with pytest.raises(ValueError, match="not seen during fit.*'nobody'"):
        est.recommend(["nobody"])
    with pytest.raises(ValueError, match="not seen during fit"):
        est.predict(unknown)
    item = est.item_ids_[0]
    ids, sims = est.similar_items([item], k=3)
    assert ids.shape == sims.shape == (1, 3) and item not in ids[0]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_clone_and_pickle_round_trip(Estimator, table):
    est = Estimator().fit(table)
    users = table["user"].unique()[:10]
    expected = est.recommend(users, k=5)
    restored = pickle.loads(pickle.dumps(est))
    assert "_scorer" not in est.__getstate__()
    for got, want in zip(restored.recommend(users, k=5), expected):
        np.testing.assert_array_equal(got, want)
    refit = clone(est).fit(table)
    for got, want in zip(refit.recommend(users, k=5), expected):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(NotFittedError):
        clone(est).recommend(users)


# -- quality ------------------------------------------------------------------


def test_item_models_beat_popularity(synthetic_split):
    train, test = synthetic_split
    scorer = make_ranking_scorer("ndcg", k=10)
    pop = scorer(Popularity().fit(train), test)
    knn = scorer(ItemKNN().fit(train), test)
    ease = scorer(EASE().fit(train), test)
    # measured (seed 0): popularity 0.310, ItemKNN 0.452, EASE 0.428
    assert knn >= max(0.38, pop + 0.07)
    assert ease >= max(0.38, pop + 0.07)
    # score() defaults to NDCG@10 with the same protocol
    assert EASE().fit(train).score(test) == pytest.approx(ease)


def test_grid_search_over_ease_l2_reg(synthetic_split):
    train, _ = synthetic_split
    R = sp.csr_array(
        (np.ones(len(train)), (train["user"], train["item"])), shape=(300, 80)
    )
    search = GridSearchCV(
        EASE(),
        {"l2_reg": [1.0, 50.0, 1e5]},
        scoring=make_ranking_scorer("ndcg", k=10),
        cv=UserKFold(n_splits=2, random_state=0),
        n_jobs=2,
    ).fit(R)
    assert search.best_params_["l2_reg"] == 50.0
    assert search.best_estimator_.coef_.shape == (80, 80)
    table_search = GridSearchCV(
        EASE(),
        {"l2_reg": [50.0, 1e5]},
        scoring=make_ranking_scorer("ndcg", k=10),
        cv=UserHoldout(test_size=0.2, random_state=0),
    ).fit(train)
    assert table_search.best_params_["l2_reg"] == 50.0


# -- errors -------------------------------------------------------------------


def test_ease_memory_guard(tiny):
    message = r"needs about 0\.\d+ GB.*max_memory=.*ItemKNN"
    with pytest.raises(MemoryError, match=message):
        EASE(max_memory=1000).fit(tiny)
    EASE(max_memory=1e9).fit(tiny)


@pytest.mark.parametrize(
    "est, match",
    [
        (EASE(l2_reg=0), "l2_reg"),
        (EASE(dtype="float16"), "dtype"),
        (EASE(max_memory=-1), "max_memory"),
        (EASE(implicit="yes"), "implicit"),
        (ItemKNN(n_neighbors=0), "n_neighbors"),
        (ItemKNN(shrinkage=-1.0), "shrinkage"),
        (Popularity(half_life=-3), "half_life"),
        (Popularity(half_life="30 days"), "half_life"),
        (Popularity(handle_unknown="ignore"), "handle_unknown"),
    ],
)
def test_invalid_parameters(est, match, tiny):
    with pytest.raises(ValueError, match=match):
        est.fit(tiny)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_input(Estimator, tiny, table):
    with pytest.raises(ValueError, match="2-D"):
        Estimator().fit(np.ones(5))
    with pytest.raises(ValueError, match="no column 'customer'"):
        Estimator(user_col="customer").fit(table)
    with pytest.raises(ValueError, match="NaN"):
        Estimator().fit(np.where(tiny > 0, np.nan, 0.0))
    est = Estimator().fit(tiny)
    with pytest.raises(ValueError, match="features"):
        est.predict(tiny[:, :5])
    with pytest.raises(TypeError, match="user x item matrix"):
        est.predict(table)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        est.recommend([0], k=0)
    with pytest.raises(ValueError, match="users is empty"):
        est.recommend([])


def test_popularity_ignores_time_column_without_half_life():
    X = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2], "timestamp": ["a", "b", "c"]})
    ids, _ = Popularity().fit(X).recommend([3], k=1)
    assert ids[0, 0] == 1
    with pytest.raises(TypeError, match="timestamp"):
        Popularity(half_life=10.0).fit(X)
