"""What scikit-learn and skorch users write, unchanged: sample weights with
metadata routing, set_output and feature names, skorch's own parameters."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_recsys import (
    EASE,
    AttentionRecommender,
    LSTMRecommender,
    MatrixFactorization,
    Popularity,
)
from sklearn_recsys.datasets import make_interactions
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import InteractionKFold

FAST = dict(max_iter=2, random_state=0)


@pytest.fixture(scope="module")
def table():
    return make_interactions(60, 30, density=0.2, sequential=True, random_state=0).interactions


@pytest.fixture(scope="module")
def weights(table):
    return np.random.RandomState(0).uniform(0.5, 2.0, len(table))


# -- sample weights -----------------------------------------------------------------


def test_weighted_ratings_pull_the_prediction_towards_the_heavy_rating():
    # user "a" rated item "x" twice: 1 (heavy) and 5 (light)
    X = pd.DataFrame({"user": ["a", "a", "a", "b", "b"], "item": ["x", "x", "y", "x", "y"]})
    y = np.array([1.0, 5.0, 3.0, 3.0, 3.0])
    pair = X.iloc[[0]]
    params = dict(n_components=2, alpha=0.0, max_iter=200, learning_rate_init=0.05,
                  batch_size=8, random_state=0)
    plain = MatrixFactorization(**params).fit(X, y).predict(pair)[0]
    weighted = MatrixFactorization(**params).fit(X, y, sample_weight=[10, 1, 1, 1, 1])
    assert weighted.predict(pair)[0] < plain - 0.5


def test_weighted_counts_and_repeated_rows():
    X = pd.DataFrame({"user": [1, 2, 3], "item": ["a", "b", "b"]})
    pop = Popularity().fit(X, sample_weight=[5.0, 1.0, 1.0])
    np.testing.assert_allclose(pop.item_popularity_, [5.0, 2.0])
    M = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=float)
    doubled = EASE(l2_reg=1.0).fit(np.vstack([M, M[:1]]))
    weighted = EASE(l2_reg=1.0).fit(M, sample_weight=[2.0, 1.0, 1.0])
    np.testing.assert_allclose(weighted.coef_, doubled.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("est", [MatrixFactorization(loss="bpr", n_components=4, **FAST),
                                 LSTMRecommender(embedding_dim=8, **FAST)],
                         ids=["mf", "lstm"])
def test_sample_weight_changes_the_fit_and_zero_weights_mute(est, table, weights):
    base = clone(est).fit(table).recommend([0, 1], k=5)[1]
    weighted = clone(est).fit(table, sample_weight=weights).recommend([0, 1], k=5)[1]
    assert not np.allclose(base, weighted)
    with pytest.raises(ValueError, match="[Nn]egative"):
        clone(est).fit(table, sample_weight=-weights)
    with pytest.raises(ValueError, match="sample_weight"):
        clone(est).fit(table, sample_weight=weights[:-1])


def test_metadata_routing_through_search_cross_validate_and_pipeline(table, weights):
    with sklearn.config_context(enable_metadata_routing=True):
        est = MatrixFactorization(loss="bpr", **FAST)
        est.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        scorer = make_ranking_scorer().set_score_request(sample_weight=True)
        cv = InteractionKFold(2, random_state=0)
        search = GridSearchCV(est, {"n_components": [2, 4]}, cv=cv, scoring=scorer)
        search.fit(table, sample_weight=weights)
        assert np.isfinite(search.best_score_)
        unweighted = GridSearchCV(est, {"n_components": [2, 4]}, cv=cv, scoring=scorer)
        unweighted.fit(table)
        assert search.cv_results_["mean_test_score"][0] != pytest.approx(
            unweighted.cv_results_["mean_test_score"][0]
        )
        result = cross_validate(est, table, cv=cv, scoring=scorer,
                                params={"sample_weight": weights})
        assert np.all(np.isfinite(result["test_score"]))
        pipe = Pipeline([("identity", FunctionTransformer()), ("mf", est)])
        pipe.fit(table, sample_weight=weights)
        assert pipe[-1].n_iter_ == 2


def test_the_ranking_scorer_checks_its_sample_weight(table, weights):
    train, test, w = table.iloc[:250], table.iloc[250:], weights[250:]
    est = Popularity().fit(train)
    scorer = make_ranking_scorer()
    assert np.isfinite(scorer(est, test, sample_weight=w))
    with pytest.raises(ValueError, match="sample_weight"):
        scorer(est, test, sample_weight=w[:-1])
    with pytest.raises(ValueError, match="[Nn]egative"):
        scorer(est, test, sample_weight=-w)


def test_score_request_needs_routing():
    with pytest.raises(RuntimeError, match="enable_metadata_routing"):
        make_ranking_scorer().set_score_request(sample_weight=True)


# -- set_output and feature names --------------------------------------------------------


def test_transform_follows_set_output(table):
    mf = MatrixFactorization(loss="bpr", n_components=3, **FAST).fit(table)
    names = mf.get_feature_names_out()
    np.testing.assert_array_equal(names, [f"matrixfactorization{i}" for i in range(3)])
    out = clone(mf).set_output(transform="pandas").fit(table).transform(table.iloc[:5])
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(names)
    assert list(out.index) == list(pd.unique(table["user"].iloc[:5]))  # users in order
    polars = pytest.importorskip("polars")
    out = clone(mf).set_output(transform="polars").fit(table).transform(table.iloc[:5])
    assert isinstance(out, polars.DataFrame) and out.columns == list(names)
    assert isinstance(mf.transform(table.iloc[:5]), np.ndarray)  # default output
    seq = AttentionRecommender(embedding_dim=8, **FAST).fit(table)
    assert len(seq.get_feature_names_out()) == 8
    assert len(EASE().fit(table).get_feature_names_out()) == table["item"].nunique()


# -- skorch's own parameters ----------------------------------------------------------------


def test_skorch_parameters_are_parameters(table):
    mf = MatrixFactorization(loss="bpr", optimizer__weight_decay=1e-3, module__init_std=0.05,
                             lr=0.02, max_epochs=3, random_state=0)
    params = mf.get_params()
    assert params["optimizer__weight_decay"] == 1e-3 and params["lr"] == 0.02
    assert clone(mf).get_params()["module__init_std"] == 0.05
    mf.set_params(optimizer__betas=(0.8, 0.99)).fit(table)
    group = mf.net_.optimizer_.param_groups[0]
    assert group["weight_decay"] == 1e-3 and group["betas"] == (0.8, 0.99)
    assert group["lr"] == 0.02 and mf.n_iter_ == 3  # skorch's names win
    assert mf.net_.module_.init_std == 0.05
    lstm = LSTMRecommender(module__dropout=0.1, iterator_train__batch_size=16, **FAST)
    lstm.fit(table)
    assert lstm.net_.module_.dropout.p == 0.1
    assert lstm.net_.history[-1, "train_batch_count"] == -(-len(table["user"].unique()) // 16)


def test_compile_trains_a_compiled_network_and_keeps_the_module(table, tmp_path):
    import pickle

    from sklearn_recsys import load, save
    from sklearn_recsys.nn import BiasedMF

    plain = MatrixFactorization(loss="bpr", max_iter=2, random_state=0).fit(table)
    compiled = MatrixFactorization(
        loss="bpr", max_iter=2, random_state=0, compile=True, compile__dynamic=True,
    )
    assert clone(compiled).get_params()["compile__dynamic"] is True
    compiled.fit(table)
    assert type(compiled.net_.module_) is BiasedMF  # not torch's OptimizedModule
    # compiled kernels round differently: the same training within float noise
    np.testing.assert_allclose(compiled.loss_curve_, plain.loss_curve_, rtol=1e-3)
    users = table["user"].unique()[:4]
    again = pickle.loads(pickle.dumps(compiled))
    save(compiled, tmp_path / "model")
    for model in (again, load(tmp_path / "model")):
        np.testing.assert_array_equal(model.recommend(users, k=3)[0], compiled.recommend(users, k=3)[0])


def test_unknown_keyword_arguments_are_refused_at_fit(table):
    est = MatrixFactorization(loss="bpr", not_a_param=1, **FAST)  # kept, as skorch does
    with pytest.raises(TypeError, match="not_a_param"):
        est.fit(table)
    with pytest.raises(TypeError, match="module__ parameters.*bogus"):
        MatrixFactorization(loss="bpr", module__bogus=1, **FAST).fit(table)
    with pytest.raises(ValueError, match="Invalid parameter"):
        MatrixFactorization().set_params(nested__thing=1)


def test_grid_search_over_skorch_parameters_in_parallel(table):
    search = GridSearchCV(
        MatrixFactorization(loss="bpr", **FAST),
        {"optimizer__weight_decay": [0.0, 1e-2], "module__init_std": [0.05, 0.1]},
        cv=InteractionKFold(2, random_state=0), scoring=make_ranking_scorer(), n_jobs=2,
    ).fit(table)
    assert set(search.best_params_) == {"optimizer__weight_decay", "module__init_std"}
    assert search.best_estimator_.net_.module_.init_std == search.best_params_["module__init_std"]
