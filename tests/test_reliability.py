"""The reliability contract, one regression test per failure found in the
wild: the caller's data is never modified, a failed fit changes nothing, the
same seed gives the same model under threads, ids keep their types, and bad
input gets a clear error instead of a crash or a silent misread."""

import copy
import datetime
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skorch
import torch
from joblib import Parallel, delayed, parallel_backend
from sklearn.base import clone
from skorch.callbacks import EarlyStopping

from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    CNNRecommender,
    ItemContent,
    ItemKNN,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer

FAST = dict(max_iter=2, random_state=0)


def _estimators():
    return [
        MatrixFactorization(loss="bpr", n_components=4, **FAST),
        MatrixFactorization(loss="bpr", architecture="neumf", n_components=4, **FAST),
        CNNRecommender(loss="bpr", n_components=4, **FAST),
        LSTMRecommender(embedding_dim=8, **FAST),
        AttentionRecommender(embedding_dim=8, **FAST),
        Popularity(),
        ItemKNN(),
        EASE(),
    ]


def _name(est):
    return f"{type(est).__name__}-{getattr(est, 'architecture', '')}"


@pytest.fixture(scope="module")
def table():
    return make_interactions(40, 15, density=0.3, sequential=True, random_state=0).interactions


def _unsorted_csr():
    """A CSR whose column indices are not sorted within rows (values 1..6)."""
    X = sp.csr_matrix(np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 6.0], [0.0, 5.0, 1.0]]))
    return X[:, [2, 0, 1]]


def _snapshot(X):
    return copy.deepcopy((X.data, X.indices, X.indptr, X.toarray()))


def _unchanged(X, snap):
    for a, b in zip((X.data, X.indices, X.indptr, X.toarray()), snap):
        np.testing.assert_array_equal(a, b)


# -- the caller's data is never modified -----------------------------------------


def test_unsorted_csr_is_not_sorted_in_place():
    X = _unsorted_csr()
    assert not X.has_sorted_indices
    snap = _snapshot(X)
    Popularity().fit(X)  # the example of the report: values moved to other columns
    _unchanged(X, snap)


def test_duplicate_entries_are_not_summed_in_place():
    X = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1]), np.array([0, 3, 3])),
                      shape=(2, 2))
    snap = _snapshot(X)
    EASE().fit(X)
    _unchanged(X, snap)
    np.testing.assert_array_equal(X.toarray(), [[3, 3], [0, 0]])


@pytest.mark.parametrize("est", _estimators(), ids=_name)
def test_no_method_modifies_the_callers_matrix(est):
    X = sp.csr_matrix(sp.random(12, 6, density=0.5, random_state=0, format="csr"))
    X.data = np.arange(1, X.nnz + 1, dtype=np.float64)  # distinct values (orders)
    X = X[:, np.arange(6)[::-1]]  # unsorted indices
    snap = _snapshot(X)
    fitted = clone(est).fit(X)
    for call in (fitted.predict, fitted.transform, lambda h: fitted.recommend(h, k=2)):
        call(X)
        _unchanged(X, snap)
    fitted.score(X)
    _unchanged(X, snap)


def test_tables_lists_and_content_are_not_modified(table):
    before = table.copy()
    users = [0, 1, 2]
    est = LSTMRecommender(embedding_dim=8, **FAST).fit(table)
    histories = [[1, 2], [3]]
    est.recommend(histories, k=2)
    est.recommend(users, k=2)
    pd.testing.assert_frame_equal(table, before)
    assert histories == [[1, 2], [3]] and users == [0, 1, 2]
    images = np.random.RandomState(0).rand(15, 4, 4)
    snap = images.copy()
    CNNRecommender(item_content=ItemContent(np.arange(15), images=images), **FAST).fit(table)
    np.testing.assert_array_equal(images, snap)
    assert images.flags.writeable


# -- a failed fit changes nothing -------------------------------------------------------


def _state(est):
    ids, scores = est.recommend(est.user_ids_[:3], k=2)
    return est.user_ids_.copy(), est.item_ids_.copy(), ids, scores


def _assert_same_state(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


_OTHER = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"],
                       "timestamp": [1, 2, 1, 2]})


@pytest.mark.parametrize(
    "est, bad_fit",
    [
        (MatrixFactorization(loss="bce", **FAST), lambda e: e.fit(_OTHER, [0, 2, 1, 1])),
        (MatrixFactorization(**FAST), lambda e: e.fit(_OTHER)),  # mse without y
        (LSTMRecommender(embedding_dim=8, **FAST),
         lambda e: e.fit(_OTHER.drop_duplicates("user"))),  # single interactions
        (AttentionRecommender(embedding_dim=8, **FAST),
         lambda e: e.fit(_OTHER.drop_duplicates("user"))),
        (EASE(), lambda e: e.set_params(max_memory=1.0).fit(_OTHER)),
        (Popularity(), lambda e: e.set_params(half_life=3.0).fit(_OTHER.drop(columns="timestamp"))),
        (MatrixFactorization(loss="bpr", **FAST),
         lambda e: e.set_params(device="cuda").fit(_OTHER)),
    ],
    ids=["bce-labels", "mse-no-y", "lstm-single", "attention-single", "ease-memory",
         "half-life-no-time", "cuda-on-cpu"],
)
def test_failed_refit_leaves_the_fitted_estimator_unchanged(est, bad_fit, table):
    if "cuda" in repr(bad_fit.__code__.co_consts) and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    y = np.ones(len(table)) if getattr(est, "loss", None) == "mse" else None
    est = clone(est).fit(table, y)
    before = _state(est)
    params = est.get_params()
    with pytest.raises((ValueError, MemoryError, TypeError)):
        bad_fit(est)
    est.set_params(**params)
    _assert_same_state(before, _state(est))


def test_failed_fit_of_an_unfitted_estimator_leaves_it_unfitted():
    est = MatrixFactorization(**FAST)
    with pytest.raises(ValueError):
        est.fit(_OTHER)  # mse without y
    assert not any(k.endswith("_") for k in vars(est))


def test_warm_start_after_a_failed_fit_continues_from_the_last_good_state(table):
    est = MatrixFactorization(loss="bpr", warm_start=True, **FAST).fit(table)
    with pytest.raises(ValueError, match="same users and items"):
        est.fit(_OTHER)
    # fails after reading the ids of other data: they must not stay behind
    with pytest.raises(ValueError, match="click labels"):
        est.set_params(loss="bce").fit(_OTHER, [0, 2, 1, 1])
    est.set_params(loss="bpr").fit(table)
    assert est.n_iter_ == 4


class _FailAtEpochEnd(skorch.callbacks.Callback):
    def on_epoch_end(self, net, **kwargs):
        raise RuntimeError("stop")


def test_a_warm_fit_that_raises_mid_training_leaves_the_net_as_it_was(table):
    est = MatrixFactorization(loss="bpr", warm_start=True, **FAST).fit(table)
    before, n_iter, curve = _weights(est), est.n_iter_, list(est.loss_curve_)
    est.set_params(callbacks=[_FailAtEpochEnd()])
    with pytest.raises(RuntimeError, match="stop"):
        est.fit(table)
    assert _same_weights(_weights(est), before)
    assert est.n_iter_ == n_iter == len(est.net_.history) and est.loss_curve_ == curve
    k = est.n_components
    with pytest.raises(ValueError, match=r"\['n_components'\] changed"):
        est.set_params(callbacks=None, n_components=est._resolved_components() + 1).fit(table)
    est.set_params(n_components=k).fit(table)  # back to the fitted network
    assert est.n_iter_ == n_iter + 2


# -- same seed, same model, under any backend ------------------------------------------


def _weights(est):
    return [p.detach().clone() for p in est.net_.module_.parameters()]


def _same_weights(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def concurrent_models():
    return [AttentionRecommender(embedding_dim=8, dropout=0.3, **FAST),
            MatrixFactorization(loss="bpr", n_components=4, **FAST),
            CNNRecommender(loss="bpr", n_components=4, id_dropout=0.5, **FAST)]


def test_concurrent_fits_in_threads_equal_sequential_fits(table, concurrent_models):
    reference = [_weights(clone(e).fit(table)) for e in concurrent_models]
    for _ in range(2):
        with ThreadPoolExecutor(len(concurrent_models)) as pool:
            fits = list(pool.map(lambda e: clone(e).fit(table), concurrent_models))
        assert all(_same_weights(_weights(f), r) for f, r in zip(fits, reference))


def _fit_with_threads(est, X, n_threads):
    """Fit with ``n_threads`` torch threads (float sums depend on the count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        return _weights(clone(est).fit(X))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_joblib_backends_give_the_sequential_models(table, concurrent_models, backend):
    reference = [_fit_with_threads(e, table, 1) for e in concurrent_models]
    with parallel_backend(backend, n_jobs=2):
        fits = Parallel()(
            delayed(_fit_with_threads)(e, table, 1) for e in concurrent_models
        )
    assert all(_same_weights(f, r) for f, r in zip(fits, reference))


def test_dask_backend_gives_the_sequential_models(table, concurrent_models):
    distributed = pytest.importorskip("distributed")
    reference = [_fit_with_threads(e, table, 1) for e in concurrent_models]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster), parallel_backend("dask"):
        fits = Parallel()(
            delayed(_fit_with_threads)(e, table, 1) for e in concurrent_models
        )
    assert all(_same_weights(f, r) for f, r in zip(fits, reference))


def test_a_fit_never_touches_torchs_global_generator_state(table):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = _weights(LSTMRecommender(embedding_dim=8, **FAST).fit(table))
    # the global generator is where the fit found it: the next draw is the
    # one it would have been without the fit
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(999)  # another global state: same model
    b = _weights(LSTMRecommender(embedding_dim=8, **FAST).fit(table))
    assert _same_weights(a, b)


# -- ids keep their types; tables of any library -----------------------------------------------


def test_mixed_int_and_str_ids_in_lists_are_not_stringified():
    X = pd.DataFrame({"user": [1, 1, "x", "x"], "item": ["a", "b", "a", "c"]})
    est = Popularity(handle_unknown="error").fit(X)
    ids, _ = est.recommend([1, "x"], k=1)  # user 1 is known: no fallback
    assert set(ids.ravel()) <= {"b", "c"}  # each user's own seen item excluded
    content = ItemContent([7, "a"], texts=np.ones((2, 2), dtype=int))
    assert content.item_ids.tolist() == [7, "a"]


def test_missing_ids_are_rejected_with_their_position(table):
    est = LSTMRecommender(embedding_dim=8, **FAST).fit(table)
    with pytest.raises(ValueError, match="History 1 contains missing ids.*position 1"):
        est.recommend([[1, 2], [3, np.nan]])
    with pytest.raises(ValueError, match="missing ids.*position 2"):
        Popularity().fit(pd.DataFrame({"user": [1, 2, None], "item": [1, 2, 3]}))


@pytest.mark.parametrize("library", ["polars", "pyarrow"])
def test_dataframes_of_other_libraries_are_tables(table, library):
    lib = pytest.importorskip(library)
    native = lib.from_pandas(table) if library == "polars" else lib.Table.from_pandas(table)
    est = MatrixFactorization(loss="bpr", **FAST)
    expected = clone(est).fit(table).recommend([0, 1], k=3)[0]
    np.testing.assert_array_equal(clone(est).fit(native).recommend([0, 1], k=3)[0], expected)


def test_lazy_frames_get_a_clear_type_error(table):
    pl = pytest.importorskip("polars")
    with pytest.raises(TypeError, match="collect"):
        Popularity().fit(pl.from_pandas(table).lazy())


# -- clear errors instead of crashes ------------------------------------------------------------


def test_matrix_without_any_entry():
    for est in (MatrixFactorization(loss="bpr"), Popularity(), LSTMRecommender()):
        with pytest.raises(ValueError, match="without any stored entry"):
            est.fit(sp.csr_matrix((3, 4)))


def test_score_when_no_test_user_or_item_is_known(table):
    est = MatrixFactorization(loss="bpr", **FAST).fit(table)
    unknown = pd.DataFrame({"user": [999, 999], "item": [998, 997]})
    assert est.score(unknown) == 0.0  # fallback ranking, unknown items never hit
    assert make_ranking_scorer("recall")(est, unknown) == 0.0


def test_a_fold_with_nothing_to_rank_scores_nan_without_warnings(table):
    est = MatrixFactorization(loss="bpr", **FAST).fit(table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(make_ranking_scorer()(est, table))  # every item seen


def test_duplicated_column_names():
    X = pd.DataFrame([[1, 2, 3]], columns=["user", "item", "user"])
    with pytest.raises(ValueError, match="2 columns named 'user'"):
        Popularity().fit(X)


@pytest.mark.parametrize(
    "times, error, match",
    [
        (pd.to_datetime(["2020-01-01", None, "2020-01-03", "2020-01-04"]), ValueError, "missing"),
        ([1.0, np.inf, 2.0, 3.0], ValueError, "infinite"),
        ([True, False, True, False], TypeError, "numbers or datetimes"),
    ],
)
def test_bad_time_columns(times, error, match):
    X = _OTHER.assign(timestamp=times)
    with pytest.raises(error, match=match):
        LSTMRecommender(**FAST).fit(X)
    with pytest.raises(error, match=match):
        Popularity(half_life=1.0).fit(X)


def test_extreme_and_timezone_aware_timestamps():
    extreme = _OTHER.assign(timestamp=[-(2**62), 2**62, 2**61, -(2**61)])
    pop = Popularity(half_life=1e18).fit(extreme)
    assert np.all(np.isfinite(pop.item_popularity_))
    aware = _OTHER.assign(timestamp=pd.date_range("2020", periods=4, tz="Europe/Paris"))
    Popularity(half_life=datetime.timedelta(days=1)).fit(aware)
    LSTMRecommender(embedding_dim=8, **FAST).fit(aware)


def test_half_life_as_numpy_timedelta():
    X = _OTHER.assign(timestamp=pd.date_range("2020", periods=4, freq="D"))
    pop = Popularity(half_life=np.timedelta64(2, "D")).fit(X)
    # item "x" on days 0 and 2, the latest interaction on day 3
    assert pop.item_popularity_[0] == pytest.approx(2**-1.5 + 2**-0.5)


def test_huge_token_ids_and_out_of_range_pixels():
    with pytest.raises(ValueError, match="consecutive integers"):
        ItemContent([1, 2], texts=np.array([[1, 2**40], [3, 0]]))
    with pytest.raises(ValueError, match="float32"):
        ItemContent([1, 2], images=np.full((2, 2, 2), 1e300))


def test_ease_memory_guard_scales_with_the_catalogue():
    EASE(max_memory=1e8).fit(np.eye(3))  # 3 items need a few bytes


def test_skorch_early_stopping_without_validation_data(table):
    with pytest.raises(ValueError, match="early_stopping=True"):
        MatrixFactorization(loss="bpr", callbacks=[EarlyStopping()], **FAST).fit(table)


# -- ties ------------------------------------------------------------------------------------


def test_recommend_ranks_ties_by_item_index():
    X = np.ones((4, 6))
    X[:, 3] = 0  # every unseen item of user 0 has the same popularity
    X[0] = [1, 0, 0, 0, 0, 0]
    pop = Popularity().fit(sp.csr_matrix(X))
    ids, _ = pop.recommend([0], k=4)
    np.testing.assert_array_equal(ids, [[1, 2, 4, 5]])
