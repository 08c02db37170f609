"""Tests of the approximate top-k index (``sklearn_recsys.ann``)."""

import pickle
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys.ann import ApproximateIndex
from sklearn_recsys.datasets import make_interactions

pytest.importorskip("hnswlib")

N_USERS, N_ITEMS = 120, 1500


@pytest.fixture(scope="module")
def table():
    return make_interactions(
        n_users=N_USERS, n_items=N_ITEMS, density=0.01, random_state=0
    ).interactions


@pytest.fixture(scope="module")
def mf(table):
    return MatrixFactorization(
        loss="softmax", n_components=16, max_iter=5, random_state=0
    ).fit(table)


@pytest.fixture(scope="module")
def attention():
    X = make_interactions(
        n_users=N_USERS, n_items=N_ITEMS, density=0.01, sequential=True, random_state=1
    ).interactions
    return AttentionRecommender(
        embedding_dim=16, max_len=10, max_iter=2, batch_size=64, random_state=0
    ).fit(X)


@pytest.fixture(scope="module")
def mf_index(mf):
    return ApproximateIndex(mf, random_state=0).fit()


def _seen_sets(estimator, table):
    return table.groupby(estimator.user_col)[estimator.item_col].agg(set)


def _check_like_exact(index, estimator, users, k=10, **kw):
    """Same format as ``recommend``; scores equal on the common items."""
    ids, scores = index.recommend(users, k, **kw)
    exact_ids, exact_scores = estimator.recommend(users, k, **kw)
    assert ids.shape == exact_ids.shape == (len(users), k)
    assert ids.dtype == exact_ids.dtype
    assert scores.dtype == exact_scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    for row, (a, e, sa, se) in enumerate(zip(ids, exact_ids, scores, exact_scores)):
        assert len(set(a)) == k, row
        common = np.intersect1d(a, e)
        np.testing.assert_allclose(
            sa[np.isin(a, common)][np.argsort(a[np.isin(a, common)])],
            se[np.isin(e, common)][np.argsort(e[np.isin(e, common)])],
            rtol=1e-5, atol=1e-5,
        )
    return ids, scores


# -- quality and format ----------------------------------------------------------


def test_recall_matrix_factorization(mf, mf_index):
    users = mf.user_ids_
    assert mf_index.recall_at_k(users, k=10) >= 0.95
    _check_like_exact(mf_index, mf, users)
    assert mf_index.n_items_ == len(mf.item_ids_)
    assert mf_index.n_dims_ == 16 + 1 + 1  # factors, user-bias column, offset
    assert mf_index.item_mean_.shape == (mf_index.n_dims_,)


def test_recall_attention(attention):
    index = ApproximateIndex(attention, random_state=0).fit()
    users = attention.user_ids_
    assert index.recall_at_k(users, k=10) >= 0.95
    _check_like_exact(index, attention, users)


def test_recall_cnn_with_cold_items(table):
    # item vectors from the image tower, cold items (no interaction) included
    X = table[table["item"] < 300]
    images = np.random.default_rng(0).random((400, 8, 8)).astype(np.float32)
    cnn = CNNRecommender(
        item_content=ItemContent(np.arange(400), images=images), conv_channels=(4, 8),
        dense_size=8, n_components=8, loss="bpr", max_iter=2, random_state=0,
    ).fit(X)
    index = ApproximateIndex(cnn, random_state=0).fit()
    assert index.n_items_ == len(cnn.item_ids_) > X["item"].nunique()
    users = cnn.user_ids_
    assert index.recall_at_k(users, k=10) >= 0.95
    _check_like_exact(index, cnn, users)


def test_seen_items_excluded(mf, mf_index, table):
    users = mf.user_ids_
    ids, _ = mf_index.recommend(users, k=10)
    seen = _seen_sets(mf, table)
    assert all(not (set(row) & seen[u]) for u, row in zip(users, ids))
    # without exclusion, the users' own items come back, as in recommend
    ids_all, _ = mf_index.recommend(users, k=10, exclude_seen=False)
    assert any(set(row) & seen[u] for u, row in zip(users, ids_all))
    assert mf_index.recall_at_k(users, k=10, exclude_seen=False) >= 0.95


def test_large_fetch_falls_back_to_exact(mf, mf_index):
    users, n_items = mf.user_ids_[:5], len(mf.item_ids_)
    ids, scores = mf_index.recommend(users, k=n_items // 2)
    exact_ids, exact_scores = mf.recommend(users, k=n_items // 2)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_array_equal(scores, exact_scores)
    # k beyond the catalogue is clipped; seen slots padded with -inf as in recommend
    ids, scores = mf_index.recommend(users[:1], k=n_items + 5)
    assert ids.shape == (1, n_items) and np.isneginf(scores[0, -1])


def test_histories_of_new_users(attention):
    # new users given by their histories (lists of item ids), folded in
    rng = np.random.default_rng(0)
    histories = [list(rng.choice(attention.item_ids_, 5, replace=False)) for _ in range(8)]
    index = ApproximateIndex(attention, random_state=0).fit()
    ids, scores = index.recommend(histories, k=10)
    exact, _ = attention.recommend(histories, k=10)
    assert ids.shape == (8, 10) and scores.dtype == np.float32
    assert all(not (set(row) & set(h)) for row, h in zip(ids, histories))
    assert np.mean([np.isin(e, a).mean() for a, e in zip(ids, exact)]) >= 0.95


def test_ef_search_changes_without_rebuild(mf):
    index = ApproximateIndex(mf, ef_search=10, random_state=0).fit()
    built = index.index_
    index.set_params(ef_search=300)
    index.recommend(mf.user_ids_[:3], k=5)
    assert index.index_ is built and index.index_.ef == 300


def test_same_seed_same_index(mf):
    a = ApproximateIndex(mf, M=4, ef_search=12, random_state=3).fit()
    b = ApproximateIndex(mf, M=4, ef_search=12, random_state=3).fit()
    users = mf.user_ids_
    np.testing.assert_array_equal(a.recommend(users)[0], b.recommend(users)[0])


def test_pickle_round_trip(mf, mf_index):
    users = mf.user_ids_[:10]
    back = pickle.loads(pickle.dumps(mf_index))
    np.testing.assert_array_equal(back.recommend(users)[0], mf_index.recommend(users)[0])


# -- refusals and errors -----------------------------------------------------------


def test_neumf_refused(table):
    neumf = MatrixFactorization(
        architecture="neumf", loss="bce", n_components=4, hidden_layer_sizes=(4,),
        max_iter=1, random_state=0,
    ).fit(table.head(200))
    with pytest.raises(TypeError, match="linear in the user representation.*NeuMF"):
        ApproximateIndex(neumf).fit()


@pytest.mark.parametrize("baseline", [Popularity(), EASE()])
def test_baselines_refused(table, baseline):
    with pytest.raises(TypeError, match="linear in the user representation"):
        ApproximateIndex(baseline.fit(table)).fit()


def test_not_a_recommender():
    with pytest.raises(ValueError, match="'estimator' parameter"):
        ApproximateIndex(LogisticRegression()).fit()

    class Impostor:
        def fit(self, X):
            return self

        def recommend(self, users):
            return users

    with pytest.raises(TypeError, match="fitted recommender of sklearn_recsys"):
        ApproximateIndex(Impostor()).fit()


def test_unfitted(mf):
    with pytest.raises(NotFittedError, match="fit it before"):
        ApproximateIndex(MatrixFactorization()).fit()
    with pytest.raises(NotFittedError):
        ApproximateIndex(mf).recommend([0])
    # a clone holds an unfitted clone of the model
    with pytest.raises(NotFittedError, match="fit it before"):
        clone(ApproximateIndex(mf)).fit()


def test_bad_parameters(mf):
    with pytest.raises(ValueError, match="'backend' parameter"):
        ApproximateIndex(mf, backend="annoy").fit()
    with pytest.raises(ValueError, match="'M' parameter"):
        ApproximateIndex(mf, M=1).fit()


def test_bad_inputs(mf, mf_index):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        mf_index.recommend([0], k=0)
    with pytest.raises(ValueError, match="empty"):
        mf_index.recommend([], k=3)
    with pytest.raises(ValueError, match="columns"):
        mf_index.recommend(sp.csr_array((2, len(mf.item_ids_) + 1)), k=3)


def test_unknown_users_follow_handle_unknown(mf, mf_index, monkeypatch):
    monkeypatch.setattr(mf, "handle_unknown", "error")
    with pytest.raises(ValueError, match="not seen during fit: 'nobody'"):
        mf_index.recommend([0, "nobody"])
    monkeypatch.setattr(mf, "handle_unknown", "fallback")
    ids, _ = mf_index.recommend(["nobody"], k=10)
    exact, _ = mf.recommend(["nobody"], k=10)  # ranked by the item offsets
    assert np.isin(exact, ids).mean() >= 0.9


def test_stale_index_refused(table):
    mf = MatrixFactorization(loss="softmax", n_components=8, max_iter=1, random_state=0)
    index = ApproximateIndex(mf.fit(table), random_state=0).fit()
    mf.fit(table)
    with pytest.raises(ValueError, match="call fit again"):
        index.recommend([0])


def test_missing_hnswlib(mf, monkeypatch):
    monkeypatch.setitem(sys.modules, "hnswlib", None)
    expected = r'pip install -c constraints.txt "sklearn_recsys\[ann\]"'
    with pytest.raises(ImportError, match=expected):
        ApproximateIndex(mf).fit()
