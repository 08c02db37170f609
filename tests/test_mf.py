"""MatrixFactorization: quality floors, sklearn integration, bad input."""

import io
import pickle
from contextlib import redirect_stdout

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer
from sklearn.feature_extraction.text import TfidfTransformer
from skorch.callbacks import Callback

from sklearn_recsys import MatrixFactorization
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer, ndcg_at_k
from sklearn_recsys.model_selection import UserHoldout, UserKFold, train_test_split
from sklearn_recsys.nn import SparseDenseAdam

pytestmark = pytest.mark.filterwarnings("ignore:y is ignored for a user x item matrix")


@pytest.fixture(scope="module")
def explicit():
    b = make_interactions(
        300, 120, density=0.15, feedback="explicit", noise=0.3, random_state=0
    )
    return train_test_split(
        b.interactions[["user", "item"]], b.interactions["rating"].astype(float),
        strategy="random", random_state=0,
    )


@pytest.fixture(scope="module")
def implicit():
    b = make_interactions(
        300, 120, density=0.15, popularity_exponent=0.5, random_state=1
    )
    df = b.interactions
    X = sp.csr_array(
        (np.ones(len(df), dtype=np.float32), (df["user"], df["item"])), shape=(300, 120)
    )
    return df, X


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# -- quality floors on seeded synthetic data --------------------------------


def test_explicit_quality_floor(explicit):
    X_tr, X_te, y_tr, y_te = explicit
    mf = MatrixFactorization(
        n_components=8, alpha=0.05, max_iter=30, learning_rate_init=0.02,
        random_state=0,
    ).fit(X_tr, y_tr)
    baseline = _rmse(np.full(len(y_te), y_tr.mean()), y_te)
    rmse = _rmse(mf.predict(X_te), y_te)
    # measured: baseline ~1.19, MF ~0.79
    assert rmse < 0.8 * baseline
    assert mf.score(X_te, y_te) == pytest.approx(-rmse, rel=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(loss="bpr"),
        dict(loss="bce"),
        dict(loss="bce", architecture="neumf", hidden_layer_sizes=(16,)),
        dict(loss="bpr", solver="sparse_adam"),
        dict(loss="bce", architecture="neumf", hidden_layer_sizes=(16,),
             solver="sparse_adam"),
        dict(loss="softmax"),
        dict(loss="sampled_softmax", n_negatives=32),
        dict(loss="sampled_softmax", n_negatives=32, solver="sparse_adam"),
    ],
    ids=["bpr", "bce", "neumf", "bpr-sparse", "neumf-sparse", "softmax", "sampled",
         "sampled-sparse"],
)
def test_implicit_quality_floor(implicit, params):
    df, _ = implicit
    train, test = train_test_split(df, strategy="user", random_state=0)
    mf = MatrixFactorization(
        n_components=8, alpha=1e-2, max_iter=30, learning_rate_init=0.01,
        batch_size=128, random_state=0, **params,
    ).fit(train)
    ndcg = mf.score(test)
    # popularity baseline with the same protocol, computed by hand
    pop = np.bincount(train["item"], minlength=120).astype(float)
    users = np.unique(test["user"])
    scores = np.tile(pop, (len(users), 1))
    seen = sp.csr_array(
        (np.ones(len(train)), (train["user"], train["item"])), shape=(300, 120)
    )[users]
    rel = sp.csr_array(
        (np.ones(len(test)), (test["user"], test["item"])), shape=(300, 120)
    )[users]
    pop_ndcg = ndcg_at_k(rel, scores, k=10, exclude=seen)
    # measured (seed 0): popularity 0.150; bpr 0.362, bce 0.355, neumf 0.325;
    # with solver="sparse_adam": bpr 0.367, neumf 0.300
    assert ndcg > 1.8 * pop_ndcg


def test_fold_in_matches_learned_factors_for_ratings(explicit):
    """Closed-form fold-in of a training user's own ratings reproduces the
    model's predictions for that user closely (same objective)."""
    X_tr, _, y_tr, _ = explicit
    R = sp.csr_array(
        (y_tr.to_numpy(dtype=np.float32), (X_tr["user"], X_tr["item"])),
        shape=(300, 120),
    )
    mf = MatrixFactorization(
        n_components=8, alpha=0.05, max_iter=40, learning_rate_init=0.02,
        random_state=0,
    ).fit(R)
    learned = mf.predict(R).toarray()
    # predict folds rows in; compare with scores from the learned factors
    coo = R.tocoo()
    direct = (
        mf.global_bias_ + mf.user_bias_[coo.row] + mf.item_bias_[coo.col]
        + np.sum(mf.user_embeddings_[coo.row] * mf.item_embeddings_[coo.col], axis=1)
    )
    assert _rmse(learned[coo.row, coo.col], direct) < 0.15
    assert mf.transform(R).shape == (300, 8)


# -- input conventions --------------------------------------------------------


def test_matrix_predict_keeps_pattern_and_container(implicit):
    _, X = implicit
    mf = MatrixFactorization(loss="bce", max_iter=2, random_state=0).fit(X)
    P = mf.predict(X[:7])
    assert isinstance(P, sp.csr_array) and P.shape == (7, 120)
    np.testing.assert_array_equal(P.indptr, X[:7].indptr)
    np.testing.assert_array_equal(P.indices, X[:7].indices)
    assert np.all((P.data > 0) & (P.data < 1))  # probabilities for bce
    Pm = mf.predict(sp.csr_matrix(X[:7]))
    assert isinstance(Pm, sp.csr_matrix)
    dense = X[:7].toarray()
    Pd = mf.predict(dense)
    assert isinstance(Pd, np.ndarray) and Pd.shape == dense.shape
    assert np.all((Pd != 0) == (dense != 0))
    for fmt in ("csc", "coo"):
        np.testing.assert_allclose(mf.predict(X[:7].asformat(fmt)).toarray(), P.toarray())


def test_table_ids_any_hashable_and_results_in_raw_ids():
    X = pd.DataFrame(
        {"who": ["a", "a", "b", "b", "c", "c"], "what": [10.0, 20.0, 10.0, 30.0, 20.0, 30.0]}
    )
    mf = MatrixFactorization(
        loss="bpr", user_col="who", item_col="what", max_iter=3, random_state=0
    ).fit(X)
    assert list(mf.user_ids_) == ["a", "b", "c"]
    assert list(mf.item_ids_) == [10.0, 20.0, 30.0]
    ids, _ = mf.recommend(["a"], k=1)
    assert ids[0, 0] == 30.0
    assert mf.predict(X).shape == (6,)
    assert mf.user_embeddings_.shape == (3, 64)
    assert mf.item_bias_.shape == (3,)


def test_handle_unknown_fallback_uses_biases():
    X = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2]})
    y = [5.0, 1.0, 4.0, 2.0, 1.0]
    mf = MatrixFactorization(alpha=0.01, max_iter=10, random_state=0).fit(X, y)
    new = pd.DataFrame({"user": [99, 1, 99], "item": [1, 99, 98]})
    pred = mf.predict(new)
    assert pred[0] == pytest.approx(mf.global_bias_ + mf.item_bias_[0], rel=1e-5)
    assert pred[1] == pytest.approx(mf.global_bias_ + mf.user_bias_[0], rel=1e-5)
    assert pred[2] == pytest.approx(mf.global_bias_, rel=1e-5)
    strict = clone(mf).set_params(handle_unknown="error").fit(X, y)
    with pytest.raises(ValueError, match=r"user id\(s\) not seen during fit: 99"):
        strict.predict(new)
    with pytest.raises(ValueError, match=r"item id\(s\) not seen during fit"):
        strict.predict(new.iloc[[1]])


# -- sklearn integration ------------------------------------------------------


def test_pipeline_binarizer_and_tfidf_on_sparse_ratings(explicit):
    X_tr, _, y_tr, _ = explicit
    R = sp.csr_array(
        (y_tr.to_numpy(dtype=np.float32), (X_tr["user"], X_tr["item"])),
        shape=(300, 120),
    )
    params = dict(loss="bce", n_components=8, max_iter=3, random_state=0)
    pipe = make_pipeline(Binarizer(threshold=3.5), MatrixFactorization(**params))
    pipe.fit(R)
    liked = Binarizer(threshold=3.5).fit_transform(R)
    assert pipe[-1].net_.history[0, "train_batch_count"] == -(-liked.nnz // 1024)
    ids, _ = pipe[-1].recommend([0, 1], k=5)
    assert ids.shape == (2, 5)
    assert isinstance(pipe.predict(R[:3]), sp.csr_array)
    tfidf = make_pipeline(TfidfTransformer(), MatrixFactorization(**params)).fit(R)
    assert tfidf.predict(R[:3]).nnz == R[:3].nnz
    # ranking scorers score a Pipeline through its final recommender
    res = cross_validate(
        make_pipeline(Binarizer(threshold=3.5), MatrixFactorization(**params)),
        R, cv=UserKFold(2, random_state=0), scoring=make_ranking_scorer("ndcg"),
    )
    assert np.all(res["test_score"] > 0)
    with pytest.raises(TypeError, match="needs a recommender"):
        make_ranking_scorer()(Binarizer().fit(R), R)


def test_grid_search_table_with_ranking_scorer(implicit):
    df, _ = implicit
    grid = GridSearchCV(
        MatrixFactorization(loss="bpr", max_iter=3, random_state=0),
        {"n_components": [4, 16], "alpha": [1e-4, 1e-2]},
        cv=UserHoldout(test_size=0.2, n_splits=2, random_state=0),
        scoring=make_ranking_scorer("ndcg", k=10),
        n_jobs=2,
    ).fit(df)
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert hasattr(grid.best_estimator_, "net_")


def test_cross_validate_matrix_strong_generalization(implicit):
    _, X = implicit
    res = cross_validate(
        MatrixFactorization(loss="bpr", n_components=8, max_iter=5, random_state=0),
        X,
        cv=UserKFold(3, random_state=0),
        scoring={"ndcg": make_ranking_scorer("ndcg"), "hr": make_ranking_scorer("hit_rate")},
    )
    assert np.all(res["test_ndcg"] > 0) and np.all(res["test_hr"] >= res["test_ndcg"])


def test_clone_params_and_pickle_roundtrip(implicit):
    df, X = implicit
    mf = MatrixFactorization(loss="bpr", n_components=5, max_iter=2, random_state=0)
    assert clone(mf).get_params() == mf.get_params()
    assert mf.set_params(n_components=6).n_components == 6
    mf.fit(df)
    for restored in (
        pickle.loads(pickle.dumps(mf)),
        joblib.load(_joblib_roundtrip(mf)),
    ):
        np.testing.assert_array_equal(restored.predict(df), mf.predict(df))
        np.testing.assert_array_equal(
            restored.recommend([0, 1], k=5)[0], mf.recommend([0, 1], k=5)[0]
        )


def _joblib_roundtrip(obj):
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    buf.seek(0)
    return buf


def test_same_seed_same_model_and_refit_starts_fresh(implicit):
    df, _ = implicit
    params = dict(loss="bce", max_iter=3, random_state=0)
    a = MatrixFactorization(**params).fit(df)
    b = MatrixFactorization(**params).fit(df)
    np.testing.assert_array_equal(a.predict(df), b.predict(df))
    a.fit(df)  # a second fit starts afresh
    np.testing.assert_array_equal(a.predict(df), b.predict(df))
    assert a.n_iter_ == 3


def test_warm_start_continues_training(implicit):
    df, _ = implicit
    mf = MatrixFactorization(loss="bce", max_iter=3, warm_start=True, random_state=0)
    mf.fit(df)
    first_net, first_curve = mf.net_, list(mf.loss_curve_)
    mf.fit(df)
    # continued on a copy of the net (a failing fit would leave net_ as it was)
    assert len(first_net.history) == 3 and mf.n_iter_ == 6
    assert mf.loss_curve_[:3] == first_curve
    assert mf.loss_curve_[-1] < first_curve[-1]
    with pytest.raises(ValueError, match="warm_start=True .* same users and items"):
        mf.fit(df[df["user"] > 0])


def _has_sparse_embeddings(mf):
    flags = {m.sparse for m in mf.net_.module_.modules() if isinstance(m, torch.nn.Embedding)}
    assert len(flags) == 1
    return flags.pop()


def test_solver_auto_goes_sparse_for_large_id_spaces(implicit):
    df, _ = implicit  # 300 users + 120 items
    params = dict(loss="bpr", max_iter=1, random_state=0)
    # a batch of 64 with 4 negatives touches 384 rows: 420 ids stay dense
    mf = MatrixFactorization(batch_size=64, **params).fit(df)
    assert not _has_sparse_embeddings(mf)
    assert isinstance(mf.net_.optimizer_, torch.optim.Adam)
    # a batch of 8 touches 48 rows: 420 > 8 x 48 goes sparse
    mf = MatrixFactorization(batch_size=8, **params).fit(df)
    assert _has_sparse_embeddings(mf)
    assert isinstance(mf.net_.optimizer_, SparseDenseAdam)
    assert not _has_sparse_embeddings(
        MatrixFactorization(batch_size=8, solver="adam", **params).fit(df)
    )


@pytest.mark.parametrize("architecture", ["dot", "neumf"])
def test_sparse_solver_warm_start_pickle_and_fold_in(implicit, architecture):
    df, X = implicit
    mf = MatrixFactorization(
        loss="bce", architecture=architecture, solver="sparse_adam", max_iter=2,
        warm_start=True, random_state=0,
    ).fit(df)
    assert _has_sparse_embeddings(mf)
    first = list(mf.loss_curve_)
    mf.fit(df)
    assert mf.n_iter_ == 4 and mf.loss_curve_[-1] < first[-1]
    restored = pickle.loads(pickle.dumps(mf))
    np.testing.assert_array_equal(restored.predict(df), mf.predict(df))
    # padding rows (unknown ids) stay zero under the lazy updates
    assert not mf.net_.module_.user_bias.weight[-1].any()
    assert mf.transform(X[:3]).shape == (3, mf._resolved_components())
    # sparse and dense solvers start from the same initial weights
    dense = MatrixFactorization(
        loss="bce", architecture=architecture, solver="adam", max_iter=2, random_state=0
    ).fit(df)
    assert abs(dense.loss_curve_[0] - first[0]) < 0.1 * first[0]


def test_callbacks_pass_through_and_verbose(implicit):
    df, _ = implicit

    class CountEpochs(Callback):
        def initialize(self):
            self.n = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.n += 1

    counter = CountEpochs()
    out = io.StringIO()
    with redirect_stdout(out):
        MatrixFactorization(
            loss="bpr", max_iter=2, callbacks=[counter], random_state=0
        ).fit(df)
    assert counter.n == 2 and out.getvalue() == ""  # verbose=0 is silent
    out = io.StringIO()
    with redirect_stdout(out):
        MatrixFactorization(loss="bpr", max_iter=2, verbose=1, random_state=0).fit(df)
    assert "train_loss" in out.getvalue()


def test_early_stopping_validates_on_known_users(explicit):
    X_tr, _, y_tr, _ = explicit
    mf = MatrixFactorization(
        n_components=64, alpha=0.0, max_iter=200, learning_rate_init=0.05,
        early_stopping=True, n_iter_no_change=3, random_state=0,
    ).fit(X_tr, y_tr)
    assert mf.n_iter_ < 200
    assert len(mf.validation_loss_curve_) == mf.n_iter_
    best = int(np.argmin(mf.validation_loss_curve_))
    assert best == mf.n_iter_ - 1 - 3  # stopped 3 epochs after the best one
    # validation rows come from users that keep training rows
    from sklearn_recsys._objectives import per_user_split

    users = np.repeat(np.arange(50), 20)
    tr, va = per_user_split(users, mf.validation_fraction, seed=0)
    assert set(users[va].tolist()) <= set(users[tr].tolist())


def test_similar_items_and_transform_new_users(implicit):
    df, X = implicit
    mf = MatrixFactorization(loss="bpr", n_components=8, max_iter=5, random_state=0).fit(X)
    ids, sims = mf.similar_items([0, 5], k=4)
    assert ids.shape == sims.shape == (2, 4)
    assert 0 not in ids[0] and 5 not in ids[1]
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    Z = mf.transform(X[:10])
    assert Z.shape == (10, 8) and Z.dtype == np.float32
    np.testing.assert_allclose(mf.transform(X[:10][::-1]), Z[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mf.fit_transform(X)[:3], mf.transform(X[:3]), atol=1e-6)


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(loss="hinge"), "loss"),
        (dict(architecture="mlp"), "architecture"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate_init=-1.0), "learning_rate_init"),
        (dict(alpha=-1.0), "alpha"),
        (dict(solver="sgd"), "solver"),
        (dict(handle_unknown="ignore"), "handle_unknown"),
        (dict(hidden_layer_sizes=(16, 0), architecture="neumf"), "hidden_layer_sizes"),
        (dict(device="tpu"), "device"),
        (dict(device="cuda:0"), "CUDA is not available"),
    ],
)
def test_invalid_hyperparameters(params, match, implicit):
    if params.get("device") == "cuda:0" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    df, _ = implicit
    with pytest.raises(ValueError, match=match):
        MatrixFactorization(loss=params.pop("loss", "bpr"), **params).fit(df)


def test_bad_input_errors(implicit):
    df, X = implicit
    y = np.ones(len(df))
    mf = MatrixFactorization(max_iter=1)
    with pytest.raises(ValueError, match="NaN or infinity"):
        mf.fit(df, np.r_[np.nan, y[1:]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        mf.fit(df, np.r_[np.inf, y[1:]])
    with pytest.raises(ValueError, match="0 rows"):
        mf.fit(df.iloc[:0], y[:0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        mf.fit(df, y[:-1])
    with pytest.raises(ValueError, match="no column 'user'.*user_col="):
        mf.fit(df.rename(columns={"user": "uid"}), y)
    with pytest.raises(ValueError, match="non-integer float ids"):
        mf.fit(df.assign(item=df["item"] + 0.5), y)
    with pytest.raises(ValueError, match="missing ids"):
        mf.fit(df.assign(user=df["user"].where(df.index > 0)), y)
    with pytest.raises(ValueError, match="loss='mse' needs explicit targets"):
        mf.fit(df)
    with pytest.raises(ValueError, match="click labels in \\[0, 1\\]"):
        MatrixFactorization(loss="bce").fit(df, 5 * y)
    with pytest.raises(ValueError, match="non-negative interaction weights"):
        MatrixFactorization(loss="bpr").fit(df, -y)
    with pytest.raises(ValueError, match="y should be a 1d array"):
        mf.fit(df, np.c_[y, y])
    with pytest.raises(ValueError, match="NaN"):
        mf.fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="1-D array"):
        mf.fit(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="0 sample"):
        mf.fit(sp.csr_array((0, 5)))
    fitted = MatrixFactorization(loss="bpr", max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 7 features.*expecting 120"):
        fitted.predict(X[:, :7])
    with pytest.raises(ValueError, match="row indices: non-negative integers"):
        fitted.recommend([-1], k=3)
    with pytest.raises(ValueError, match="row indices: non-negative integers"):
        fitted.recommend([0.5], k=3)
    with pytest.raises(ValueError, match="column indices"):
        fitted.recommend([0], k=3, items=[-2, 1])
    with pytest.raises(TypeError, match="fitted on a user x item matrix"):
        fitted.predict(df)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(implicit):
    df, _ = implicit
    y = np.linspace(1, 5, len(df))
    params = dict(n_components=8, max_iter=3, alpha=0.01, random_state=0)
    gpu = MatrixFactorization(device="cuda", **params).fit(df, y)
    assert next(gpu.net_.module_.parameters()).is_cuda
    assert gpu.predict(df).shape == (len(df),)
    ids, _ = gpu.recommend([0, 1], k=5)
    assert ids.shape == (2, 5)
    cpu_rmse = _rmse(MatrixFactorization(**params).fit(df, y).predict(df), y)
    assert _rmse(gpu.predict(df), y) == pytest.approx(cpu_rmse, rel=0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_softmax_matches_cpu(implicit):
    """The full-catalogue loss on CUDA: dense target rows built on the device,
    early stopping, fold-in of histories, same quality as on the CPU."""
    df, X = implicit
    train, test = train_test_split(df, strategy="user", random_state=0)
    params = dict(loss="softmax", n_components=8, batch_size=512, early_stopping=True,
                  random_state=0)
    gpu = MatrixFactorization(device="cuda", **params).fit(train)
    assert next(gpu.net_.module_.parameters()).is_cuda
    cpu = MatrixFactorization(**params).fit(train)
    assert gpu.score(test) == pytest.approx(cpu.score(test), abs=0.03)
    folded = gpu.transform(X[:20])
    assert folded.shape == (20, 8) and np.isfinite(folded).all()


def test_rejected_warm_start_keeps_the_fitted_model(implicit):
    df, _ = implicit
    mf = MatrixFactorization(loss="bpr", max_iter=1, warm_start=True, random_state=0)
    mf.fit(df)
    before = mf.recommend([0, 1], k=3)
    with pytest.raises(ValueError, match="same users and items"):
        mf.fit(df.assign(user=df["user"] + 1000))
    np.testing.assert_array_equal(mf.recommend([0, 1], k=3)[0], before[0])
    assert len(mf.user_ids_) == mf.net_.module_.n_users


def test_ratings_fold_in_needs_a_matrix(explicit):
    X_tr, _, y_tr, _ = explicit
    mf = MatrixFactorization(n_components=4, max_iter=2, random_state=0).fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="loss='mse' folds new users in from their ratings"):
        mf.transform(X_tr.iloc[:5])


def test_scorer_on_matrix_for_table_fitted_model_with_raw_ids():
    from sklearn.utils import check_random_state

    rng = np.random.RandomState(0)
    users, items = rng.randint(0, 60, 600), rng.randint(0, 30, 600)
    table = pd.DataFrame({"user": users, "item": items + 100}).drop_duplicates()
    mf = MatrixFactorization(loss="bpr", max_iter=2, random_state=0).fit(table)
    cols = mf._item_index.transform(table["item"].to_numpy())
    M = sp.csr_array((np.ones(len(table)), (table["user"], cols)), shape=(60, 30))
    scorer = make_ranking_scorer("hit_rate", random_state=check_random_state(0))
    assert 0 <= scorer(mf, M) <= 1


# -- the full-catalogue (softmax) loss ----------------------------------------------------


def test_user_row_targets_are_the_dense_rows_with_duplicates_summed():
    from sklearn_recsys._objectives import UserRowTargets

    # row 2 holds column 0 twice (a non-canonical CSR): summed when made dense
    indptr = torch.tensor([0, 2, 2, 5])
    indices = torch.tensor([1, 3, 0, 0, 4])
    values = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])
    transform = UserRowTargets(indptr, indices, values, 5)
    batch = transform({"users": torch.tensor([2, 0, 1]), "rows": torch.tensor([2, 0, 1])}, None)
    expected = np.array([[3.5, 0, 0, 0, 1], [0, 1, 0, 2, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_allclose(batch["targets"].numpy(), expected)
    assert "rows" not in batch


def test_softmax_loss_is_the_cross_entropy_of_each_interaction(implicit):
    _, X = implicit
    X = X[:40]  # a matrix: users and items are its rows and columns
    mf = MatrixFactorization(loss="softmax", n_components=4, max_iter=2, alpha=0.0,
                             random_state=0).fit(X)
    module = mf.net_.module_
    rows, cols = X.nonzero()
    users = torch.arange(40)
    with torch.no_grad():
        value = mf.net_.criterion_(module(users, targets=torch.as_tensor(X.toarray())))
        log_p = torch.log_softmax(module.score_all(module.user_representation(users)), 1)
    by_hand = -log_p[torch.as_tensor(rows), torch.as_tensor(cols)].mean()
    assert float(value) == pytest.approx(float(by_hand), rel=1e-5)


def test_softmax_loss_beats_the_sampled_losses_and_folds_in(implicit):
    df, X = implicit
    train, test = train_test_split(df, strategy="user", random_state=0)
    scores = {  # batches of 512 interactions: 300 users are a small dataset
        loss: MatrixFactorization(loss=loss, n_components=8, batch_size=512, random_state=0)
        .fit(train).score(test)
        for loss in ("softmax", "bce")
    }
    assert scores["softmax"] > scores["bce"] + 0.03  # measured (seed 0): 0.389 vs 0.321


def test_softmax_fold_in_reproduces_the_learned_users():
    """Fold-in optimises the training objective: a converged model's users,
    light (3 interactions) and heavy (40), are found again from their
    histories, with the same shrinkage (norm ratio ~1 in both groups)."""
    rng = np.random.RandomState(0)
    n = np.where(np.arange(300) < 150, 3, 40)
    rows = np.repeat(np.arange(300), n)
    cols = np.concatenate([rng.choice(120, k, replace=False) for k in n])
    X = sp.csr_array((np.ones(len(rows), np.float32), (rows, cols)), shape=(300, 120))
    mf = MatrixFactorization(loss="softmax", n_components=8, max_iter=150, batch_size=512,
                             random_state=0).fit(X)
    folded, learned = mf.transform(X), mf.user_embeddings_
    norms = np.linalg.norm(folded, axis=1), np.linalg.norm(learned, axis=1)
    cos = (folded * learned).sum(1) / norms[0] / norms[1]
    ratio = norms[0] / norms[1]
    assert np.median(cos) > 0.99  # measured 0.9997
    for group in (slice(0, 150), slice(150, 300)):  # measured 0.91 and 1.01
        assert 0.8 < np.median(ratio[group]) < 1.25
    with pytest.raises(ValueError, match="non-negative"):
        mf.transform(-X)


def test_softmax_loss_refuses_what_it_cannot_train(implicit):
    df, _ = implicit
    with pytest.raises(ValueError, match="architecture='dot'"):
        MatrixFactorization(loss="softmax", architecture="neumf").fit(df)
    with pytest.raises(ValueError, match="sparse_adam"):
        MatrixFactorization(loss="softmax", solver="sparse_adam").fit(df)
    with pytest.raises(ValueError, match="non-negative"):
        MatrixFactorization(loss="softmax").fit(df, -np.ones(len(df)))


# -- ratings by Gibbs sampling (solver="gibbs", the default for ratings) ---------------


def test_gibbs_is_the_default_for_ratings_and_beats_adam(explicit):
    """Bayesian MF: the default on ratings, every penalty sampled; on planted
    low-rank ratings it is at least as accurate as the Adam fit."""
    X_tr, X_te, y_tr, y_te = explicit
    gibbs = MatrixFactorization(max_iter=60, random_state=0).fit(X_tr, y_tr)
    assert gibbs._uses_gibbs() and gibbs.user_embeddings_.shape[1] == 10
    assert gibbs.n_iter_ == 60 and len(gibbs.loss_curve_) == 60
    assert len(gibbs.net_.history) == 60 and gibbs.net_.history[-1, "dur"] > 0
    adam = MatrixFactorization(solver="adam", random_state=0).fit(X_tr, y_tr)
    assert adam.user_embeddings_.shape[1] == 64 and adam.n_iter_ == 30
    rmse = {name: _rmse(np.clip(m.predict(X_te), 1, 5), y_te)
            for name, m in (("gibbs", gibbs), ("adam", adam))}
    baseline = _rmse(np.full(len(y_te), y_tr.mean()), y_te)
    assert rmse["gibbs"] <= rmse["adam"] + 0.01 and rmse["gibbs"] < 0.8 * baseline


def test_gibbs_same_seed_same_model_in_threads(explicit):
    X_tr, _, y_tr, _ = explicit
    state = torch.get_rng_state()

    def fitted(seed=0):
        return MatrixFactorization(max_iter=8, random_state=seed).fit(X_tr, y_tr)

    results = joblib.Parallel(n_jobs=2, backend="threading")(
        joblib.delayed(fitted)() for _ in range(2)
    )
    alone = fitted()
    assert torch.equal(torch.get_rng_state(), state)  # torch's generator untouched
    for mf in results:
        np.testing.assert_array_equal(mf.user_embeddings_, alone.user_embeddings_)
        np.testing.assert_array_equal(mf.item_bias_, alone.item_bias_)
    assert not np.array_equal(fitted(seed=1).user_embeddings_, alone.user_embeddings_)


@pytest.mark.parametrize("params, conflict", [
    ({"loss": "bce"}, "loss='bce'"),
    ({"architecture": "neumf"}, "architecture='neumf'"),
    ({"early_stopping": True}, "early_stopping=True"),
    ({"warm_start": True}, "warm_start=True"),
    ({"callbacks": [Callback()]}, "callbacks"),
    ({"optimizer": torch.optim.SGD}, "skorch parameters"),
    ({"early_stopping": "auto"}, "early_stopping='auto'"),
    ({"alpha": 0.1}, "alpha=0.1"),
    ({"learning_rate_init": 0.01}, "learning_rate_init=0.01"),
    ({"batch_size": 256}, "batch_size=256"),
])
def test_gibbs_refuses_what_it_cannot_honour_and_auto_falls_back(explicit, params, conflict):
    X_tr, _, y_tr, _ = explicit
    with pytest.raises(ValueError, match=f"solver='gibbs'.*{conflict}"):
        MatrixFactorization(solver="gibbs", **params).fit(X_tr, y_tr)
    auto = MatrixFactorization(max_iter=1, random_state=0, **params)
    assert not auto._uses_gibbs() and auto._resolved_components() == 64


def test_gibbs_fold_in_artifact_and_weights(explicit, tmp_path):
    """New users fold in under the prior fitted to the known users; the
    artifact keeps that prior; sample weights weigh the ratings."""
    from sklearn_recsys import load, save

    X_tr, X_te, y_tr, y_te = explicit
    mf = MatrixFactorization(max_iter=40, random_state=0).fit(X_tr, y_tr)
    R = sp.csr_array((y_tr.to_numpy(), (X_tr["user"], X_tr["item"])), shape=(300, 120))
    folded = mf.predict(R)  # every training user, folded in from its ratings
    fitted = mf.predict(X_tr)
    np.testing.assert_allclose(folded[X_tr["user"], X_tr["item"]], fitted, atol=0.5)
    assert np.corrcoef(folded[X_tr["user"], X_tr["item"]], fitted)[0, 1] > 0.95
    save(mf, tmp_path / "mf.safetensors")
    restored = load(tmp_path / "mf.safetensors")
    np.testing.assert_allclose(restored.transform(R), mf.transform(R), rtol=1e-5, atol=1e-6)
    # the weights are relative: their scale does not matter
    for c in (1e-3, 10.0):
        scaled = MatrixFactorization(max_iter=40, random_state=0).fit(
            X_tr, y_tr, sample_weight=np.full(len(y_tr), c))
        np.testing.assert_allclose(scaled.predict(X_te), mf.predict(X_te), rtol=1e-6, atol=1e-6)
    # a Gibbs fit cannot be continued
    with pytest.raises(ValueError, match="fitted by the Gibbs sampler"):
        pickle.loads(pickle.dumps(mf)).set_params(warm_start=True).fit(X_tr, y_tr)
    # the ratings of user 0 weighted 100x: its fitted scores move towards them
    weights = np.where(X_tr["user"] == 0, 100.0, 1.0)
    heavy = MatrixFactorization(max_iter=40, random_state=0).fit(X_tr, y_tr, sample_weight=weights)
    mine = (X_tr["user"] == 0).to_numpy()
    assert (_rmse(heavy.predict(X_tr[mine]), y_tr[mine])
            < _rmse(mf.predict(X_tr[mine]), y_tr[mine]))
