"""User and item attributes: the ``Attributes`` object, its encoding, and the
models reading it (cold-start users and items, registration, artifacts)."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_recsys import (
    AttentionRecommender,
    Attributes,
    CNNRecommender,
    ItemContent,
    LSTMRecommender,
    MatrixFactorization,
    load,
    save,
)
from sklearn_recsys._attributes import AttributeEncoder
from sklearn_recsys.metrics import make_ranking_scorer
from sklearn_recsys.model_selection import UserHoldout
from sklearn_recsys.nn import BiasedMF

pytestmark = pytest.mark.filterwarnings("ignore:y is ignored for a user x item matrix")

N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 3, 12, 8
COLD_USERS, COLD_ITEMS = 2, 2  # per group, in the attributes only


def _grouped(seed=0):
    """Users of group g interact with 5 items of item group g; attributes tell
    the groups. The last users/items of each group have no interaction."""
    rng = np.random.RandomState(seed)
    rows = []
    warm_items = ITEMS_PER_GROUP - COLD_ITEMS
    for g in range(N_GROUPS):
        for u in range(USERS_PER_GROUP - COLD_USERS):
            for i in rng.choice(warm_items, size=5, replace=False):
                rows.append((f"u{g}-{u}", f"i{g}-{i}", rng.randint(1, 100)))
    X = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    users = pd.DataFrame({
        "group": [f"g{g}" for g in range(N_GROUPS) for _ in range(USERS_PER_GROUP)],
        "age": [20.0 + 10 * g + u for g in range(N_GROUPS) for u in range(USERS_PER_GROUP)],
    }, index=[f"u{g}-{u}" for g in range(N_GROUPS) for u in range(USERS_PER_GROUP)])
    items = pd.DataFrame({
        "genres": [[f"g{g}", "film"] for g in range(N_GROUPS) for _ in range(ITEMS_PER_GROUP)],
        "year": [1990.0 + i for _ in range(N_GROUPS) for i in range(ITEMS_PER_GROUP)],
    }, index=[f"i{g}-{i}" for g in range(N_GROUPS) for i in range(ITEMS_PER_GROUP)])
    return X, users, items


def _group(ids):
    return np.vectorize(lambda s: int(s[1]))(np.asarray(ids))


@pytest.fixture(scope="module")
def grouped():
    return _grouped()


# -- Attributes ----------------------------------------------------------------------


def test_kinds_inferred_and_explicit():
    table = pd.DataFrame({
        "age": [20, 30, 40], "gender": ["F", "M", None], "member": [True, False, True],
        "action": [0, 1, 1], "tags": [["a"], ["a", "b"], None], "zip": [1, 2, 1],
    }, index=["x", "y", "z"])
    attrs = Attributes(table, categorical=["zip"])
    assert attrs.columns == {
        "age": "numeric", "gender": "categorical", "member": "binary",
        "action": "binary", "tags": "multi_valued", "zip": "categorical",
    }
    assert list(attrs.ids) == ["x", "y", "z"]
    by_col = Attributes(table.reset_index(names="id"), id_col="id")
    assert list(by_col.ids) == ["x", "y", "z"] and "id" not in by_col.columns


@pytest.mark.parametrize("make, kwargs, error, match", [
    (lambda: np.zeros((3, 2)), {}, TypeError, "needs a DataFrame"),
    (lambda: pd.DataFrame({"a": ["x", "y"]}, index=[1, 1]), {}, ValueError, "duplicated ids"),
    (lambda: pd.DataFrame({"a": ["x", "y"]}, index=[1.0, np.nan]), {}, ValueError,
     "missing ids"),
    (lambda: pd.DataFrame({"age": [1.0, np.nan]}), {}, ValueError, "Column 'age'.*NaN"),
    (lambda: pd.DataFrame({"age": [1.0, np.inf]}), {}, ValueError, "Column 'age'.*infinity"),
    (lambda: pd.DataFrame({"g": ["a", ["b"]]}), {"categorical": ["g"]}, TypeError,
     "Column 'g' .*categorical"),
    (lambda: pd.DataFrame({"tags": ["a|b", "c"]}), {"multi_valued": ["tags"]}, TypeError,
     "Column 'tags' .*split"),
    (lambda: pd.DataFrame({"t": pd.to_datetime(["2020-01-01", "2021-01-01"])}), {},
     TypeError, "Column 't' .*datetime"),
    (lambda: pd.DataFrame({"x": ["a", "b"]}), {"numeric": ["x"]}, TypeError,
     "Column 'x' .*numeric"),
    (lambda: pd.DataFrame({"x": [1, 2]}), {"numeric": ["nope"]}, ValueError, "'nope'"),
    (lambda: pd.DataFrame({"x": [1, 2]}), {"numeric": ["x"], "categorical": ["x"]},
     ValueError, "both"),
    (lambda: pd.DataFrame({"x": [1, 2]}), {"id_col": "id"}, ValueError, "id_col"),
    (lambda: pd.DataFrame(index=[1, 2]), {}, ValueError, "no column"),
    (lambda: pd.DataFrame({"x": []}), {}, ValueError, "at least one row"),
    (lambda: pd.DataFrame({"x": [1, 2]}), {"categorical": "x"}, TypeError, "list of column"),
])
def test_bad_tables(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        Attributes(make(), **kwargs)


def test_immutable_shared_and_caller_data_untouched():
    table = pd.DataFrame({"age": [20.0, 30.0], "g": ["a", "b"]}, index=[1, 2])
    before = table.copy(deep=True)
    attrs = Attributes(table)
    pd.testing.assert_frame_equal(table, before)
    table.loc[1, "age"] = 99.0  # the caller's later changes do not reach it
    assert attrs.values("age")[0] == 20.0
    assert copy.deepcopy(attrs) is attrs and copy.copy(attrs) is attrs
    est = MatrixFactorization(user_attributes=attrs)
    assert clone(est).user_attributes is attrs
    with pytest.raises(AttributeError, match="immutable"):
        attrs.ids = None
    with pytest.raises(ValueError):
        attrs.values("age")[0] = 1.0
    restored = pickle.loads(pickle.dumps(attrs))
    assert restored.columns == attrs.columns


def test_encoder():
    fit_table = pd.DataFrame({
        "g": ["a", "b", None], "tags": [["x", "y"], ["y"], []],
        "on": [True, False, True], "n": [1.0, 2.0, 3.0],
    }, index=[10, 20, 30])
    encoder = AttributeEncoder(Attributes(fit_table))
    names = list(encoder.feature_names())
    assert names[:5] == ["g=a", "g=b", "tags=x", "tags=y", "on"]
    assert names[5] == "n" and len(names) == encoder.n_features
    index, weight = encoder.encode(Attributes(fit_table))
    pad = encoder.n_features

    def features(row):
        return {names[i]: w for i, w in zip(index[row], weight[row]) if i != pad}

    row0 = features(0)
    assert row0["g=a"] == 1 and row0["tags=x"] == row0["tags=y"] == 0.5 and row0["on"] == 1
    assert row0["n"] == pytest.approx((1.0 - 2.0) / np.std([1.0, 2.0, 3.0]))
    assert sum(k.startswith("n in") for k in row0) == 1  # one quantile bin
    assert "g=a" not in features(2) and "g=b" not in features(2)  # missing: no feature
    # unknown categories add no feature; columns must be those of fit
    new = pd.DataFrame({"g": ["zz"], "tags": [["new"]], "on": [False], "n": [2.0]}, index=[1])
    assert not any(k.startswith(("g=", "tags=")) for k in
                   {names[i] for i in encoder.encode(Attributes(new))[0][0] if i != pad})
    with pytest.raises(ValueError, match="lack column"):
        encoder.encode(Attributes(new.drop(columns=["n"])))
    with pytest.raises(TypeError, match="Column 'n' .*categorical.*numeric"):
        encoder.encode(Attributes(new, categorical=["n"]))


# -- MatrixFactorization ----------------------------------------------------------


def _mf(**kwargs):
    params = dict(loss="softmax", n_components=8, max_iter=40, learning_rate_init=0.02,
                  random_state=0)
    return MatrixFactorization(**{**params, **kwargs})


def _check_cold_users(est, users):
    """Users known by their attributes alone joined the model and are
    recommended their group's items; the same attributes as new users
    (``recommend(Attributes(...))``) get the same lists. Returns the cold
    ids and the new users' table."""
    cold = [f"u{g}-{USERS_PER_GROUP - 1}" for g in range(N_GROUPS)]
    assert set(cold) <= set(est.user_ids_)  # attribute-only users joined the model
    ids, scores = est.recommend(cold, k=3)
    assert (_group(ids) == np.arange(N_GROUPS)[:, None]).mean() >= 2 / 3
    new = users.loc[cold].set_axis(["n0", "n1", "n2"])
    new_ids, new_scores = est.recommend(Attributes(new), k=3)
    np.testing.assert_array_equal(new_ids, ids)
    np.testing.assert_allclose(new_scores, scores, rtol=1e-5, atol=1e-6)
    return cold, new


def test_mf_cold_users_from_attributes(grouped):
    X, users, items = grouped
    est = _mf(user_attributes=Attributes(users)).fit(X[["user", "item"]])
    cold, new = _check_cold_users(est, users)
    # a model without user attributes refuses them
    plain = _mf(max_iter=2).fit(X[["user", "item"]])
    with pytest.raises(ValueError, match="fitted without user_attributes"):
        plain.recommend(Attributes(new), k=3)


@pytest.mark.parametrize("id_dropout", [0.0, 1.0])
def test_mf_cold_items_from_attributes(grouped, id_dropout):
    X, users, items = grouped
    est = _mf(item_attributes=Attributes(items), id_dropout=id_dropout)
    est.fit(X[["user", "item"]])
    cold = [f"i{g}-{i}" for g in range(N_GROUPS)
            for i in range(ITEMS_PER_GROUP - COLD_ITEMS, ITEMS_PER_GROUP)]
    warm_users = [f"u{g}-0" for g in range(N_GROUPS)]
    ids, _ = est.recommend(warm_users, k=COLD_ITEMS, items=cold)
    assert (_group(ids) == np.arange(N_GROUPS)[:, None]).mean() >= 2 / 3


def test_register_users_and_items(grouped):
    X, users, items = grouped
    est = _mf(user_attributes=Attributes(users), item_attributes=Attributes(items))
    est.fit(X[["user", "item"]])
    n_users, n_items = len(est.user_ids_), len(est.item_ids_)
    before = est.recommend(["u0-0"], k=5)
    est.register_users(Attributes(users.iloc[:1].set_axis(["brand-new"])))
    est.register_items(Attributes(items.iloc[:2].set_axis(["new-a", "new-b"])))
    assert len(est.user_ids_) == n_users + 1 and len(est.item_ids_) == n_items + 2
    ids, scores = est.recommend(["brand-new"], k=n_items + 2)
    assert {"new-a", "new-b"} <= set(ids[0]) and np.isfinite(scores).all()
    pred = est.predict(pd.DataFrame({"user": ["brand-new"], "item": ["new-a"]}))
    assert np.isfinite(pred).all()
    ids_after, _ = est.recommend(["u0-0"], k=5, items=est.item_ids_[:n_items])
    np.testing.assert_array_equal(ids_after, before[0])
    with pytest.raises(TypeError, match="needs an Attributes"):
        est.register_items(items)
    plain = _mf(max_iter=2).fit(X[["user", "item"]])
    with pytest.raises(ValueError, match="fitted without item_attributes"):
        plain.register_items(Attributes(items))


def test_without_attributes_the_network_is_unchanged():
    module = BiasedMF(5, 4, n_components=3)
    assert set(module.state_dict()) == {
        "user_factors.weight", "item_factors.weight", "user_bias.weight",
        "item_bias.weight", "global_bias",
    }


@pytest.mark.parametrize("train", [True, False])
def test_attribute_parts_are_penalised_apart(train):
    # |own|^2 + |attr|^2 per row (a hierarchical prior), not |own + attr|^2
    module = BiasedMF(3, 4, n_components=2, n_user_features=2, n_item_features=3,
                      user_feature_width=1, item_feature_width=2)
    module.user_attributes.set_rows(np.array([[0], [1], [0], [2]]),
                                    np.ones((4, 1)), has_id=[True] * 3 + [False])
    module.item_attributes.set_rows(np.array([[0, 1], [2, 3], [1, 3], [0, 2], [3, 3]]),
                                    np.array([[1, .5], [1, 0], [1, 0], [1, 1], [0, 0]]),
                                    has_id=[True] * 4 + [False])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(generator=generator)
    module.train(train)
    users, items, negs = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([[0], [2]])

    def parts(table, rows, factors, bias, factors_only):
        own = torch.cat([factors(rows), bias(rows)], -1)
        attr = table(rows)
        sl = slice(0, -1) if factors_only else slice(None)
        return own + attr, (own[..., sl] ** 2).sum(-1) + (attr[..., sl] ** 2).sum(-1)

    u, u_pen = parts(module.user_attributes, users, module.user_factors, module.user_bias,
                     False)
    q, q_pen = parts(module.item_attributes, items, module.item_factors, module.item_bias,
                     False)
    qn, qn_pen = parts(module.item_attributes, negs, module.item_factors,
                       module.item_bias, False)
    pos, neg, penalty = module(users, items, negs)
    torch.testing.assert_close(
        pos, (u[:, :-1] * q[:, :-1]).sum(-1) + u[:, -1] + q[:, -1] + module.global_bias)
    torch.testing.assert_close(penalty, u_pen + q_pen + qn_pen.mean(1))
    assert not torch.allclose(penalty, (u ** 2).sum(-1) + (q ** 2).sum(-1)
                              + (qn ** 2).sum(-1).mean(1))
    # the full-catalogue loss: the mean penalty of every item's factors
    _, all_pen = parts(module.item_attributes, torch.arange(4), module.item_factors,
                       module.item_bias, True)
    _, _, penalty = module(users, targets=torch.zeros(2, 4))
    torch.testing.assert_close(penalty, u_pen + all_pen.mean())


@pytest.mark.parametrize("params", [
    {"loss": "mse"}, {"loss": "bce"}, {"loss": "bpr", "solver": "sparse_adam"},
    {"loss": "sampled_softmax", "n_negatives": 8}, {"loss": "softmax", "id_dropout": 0.5},
])
def test_mf_attributes_with_every_loss(grouped, params):
    X, users, items = grouped
    y = np.ones(len(X)) if params["loss"] in ("mse", "bce") else None
    est = MatrixFactorization(n_components=4, max_iter=3, random_state=0,
                              user_attributes=Attributes(users),
                              item_attributes=Attributes(items), **params)
    est.fit(X[["user", "item"]], y)
    ids, scores = est.recommend(Attributes(users.iloc[:2]), k=4)
    assert ids.shape == (2, 4) and np.isfinite(scores).all()
    assert np.isfinite(est.user_embeddings_).all() and np.isfinite(est.item_embeddings_).all()


def test_same_seed_same_model(grouped):
    X, users, items = grouped

    def fitted():
        return _mf(max_iter=5, user_attributes=Attributes(users), id_dropout=0.3,
                   item_attributes=Attributes(items)).fit(X[["user", "item"]])

    a, b = fitted(), fitted()
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)


def test_invalid_combinations(grouped):
    X, users, items = grouped
    from sklearn_recsys import DifferentialPrivacy

    with pytest.raises(ValueError, match="architecture='dot'"):
        MatrixFactorization(architecture="neumf", user_attributes=Attributes(users)).fit(X)
    with pytest.raises(ValueError, match="differential_privacy"):
        MatrixFactorization(loss="softmax", user_attributes=Attributes(users),
                            differential_privacy=DifferentialPrivacy(8.0)).fit(X)
    for cls in (AttentionRecommender, LSTMRecommender):
        with pytest.raises(ValueError, match="differential_privacy"):
            cls(item_attributes=Attributes(items),
                differential_privacy=DifferentialPrivacy(8.0)).fit(X)
        with pytest.raises(ValueError, match="cover user attributes"):
            cls(user_attributes=Attributes(users),
                differential_privacy=DifferentialPrivacy(8.0)).fit(X)
        with pytest.raises(ValueError, match="user_attributes"):  # InvalidParameterError
            cls(user_attributes=users).fit(X)
    with pytest.raises(ValueError, match="user_attributes"):  # InvalidParameterError
        MatrixFactorization(user_attributes=users).fit(X)


def test_matrix_convention_keys_by_index(grouped):
    X, _, _ = grouped
    M = sp.csr_array(np.kron(np.eye(3), np.ones((4, 3))))
    users = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4 + ["c"] * 4})  # index 0..11 = rows
    est = _mf(max_iter=5, user_attributes=Attributes(users)).fit(M)
    assert est.recommend(Attributes(users.iloc[:1]), k=2)[0].shape == (1, 2)
    fitted = est.user_embeddings_
    bad = pd.DataFrame({"g": ["a"] * 13})  # row 12 is not a row of M
    with pytest.raises(ValueError, match="user_attributes has ids that are not rows"):
        est.set_params(user_attributes=Attributes(bad)).fit(M)
    np.testing.assert_array_equal(est.user_embeddings_, fitted)  # a failed fit changes nothing


def test_artifacts_pickle_and_skops(grouped, tmp_path):
    X, users, items = grouped
    est = _mf(max_iter=5, user_attributes=Attributes(users), item_attributes=Attributes(items))
    est.fit(X[["user", "item"]])
    est.register_items(Attributes(items.iloc[:1].set_axis(["late"])))
    queries = (["u0-0", "u1-11"], Attributes(users.iloc[3:5]))
    expected = [est.recommend(q, k=5) for q in queries]
    save(est, tmp_path / "mf.safetensors")
    for restored in (load(tmp_path / "mf.safetensors", user_id_key=None),
                     pickle.loads(pickle.dumps(est))):
        for q, (ids, scores) in zip(queries, expected):
            got_ids, got_scores = restored.recommend(q, k=5)
            np.testing.assert_array_equal(got_ids, ids)
            np.testing.assert_array_equal(got_scores, scores)
    sio = pytest.importorskip("skops.io")
    dumped = sio.dumps(est)
    restored = sio.loads(dumped, trusted=sio.get_untrusted_types(data=dumped))
    np.testing.assert_array_equal(restored.recommend(queries[1], k=5)[0], expected[1][0])


def test_grid_search_shares_the_attributes(grouped):
    X, users, items = grouped
    attrs = Attributes(users)
    search = GridSearchCV(
        _mf(max_iter=5, user_attributes=attrs), {"n_components": [4, 8]},
        scoring=make_ranking_scorer("ndcg", k=3),
        cv=UserHoldout(test_size=0.2, random_state=0, n_splits=2),
    ).fit(X[["user", "item"]])
    assert search.best_estimator_.user_attributes is attrs
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_pipeline_with_attributes(grouped):
    """A transformer builds the attribute table; the pipeline is tuned as usual."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer

    X, users, items = grouped
    bins = ColumnTransformer(
        [("age", KBinsDiscretizer(n_bins=3, encode="ordinal", strategy="uniform"), ["age"])],
        remainder="passthrough", verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    table = bins.fit_transform(users)
    attrs = Attributes(table, categorical=["age"])
    assert attrs.columns == {"age": "categorical", "group": "categorical"}
    pipe = Pipeline([
        ("select", FunctionTransformer(lambda df: df[["user", "item"]])),
        ("mf", _mf(max_iter=5, user_attributes=attrs)),
    ])
    search = GridSearchCV(
        pipe, {"mf__n_components": [4, 8]}, scoring=make_ranking_scorer("ndcg", k=3),
        cv=UserHoldout(test_size=0.2, random_state=0, n_splits=2),
    ).fit(X)
    assert search.best_estimator_.named_steps["mf"].user_attributes is attrs


# -- the sequence models ----------------------------------------------------------


@pytest.mark.parametrize("cls", [AttentionRecommender, LSTMRecommender])
def test_sequence_item_attributes(grouped, cls, tmp_path):
    X, _, items = grouped
    est = cls(embedding_dim=8, max_iter=3, random_state=0, item_attributes=Attributes(items))
    est.fit(X)
    cold = [f"i{g}-{ITEMS_PER_GROUP - 1}" for g in range(N_GROUPS)]
    assert set(cold) <= set(est.item_ids_)
    ids, scores = est.recommend(["u0-0", "u1-0"], k=3, items=cold)
    assert np.isfinite(scores).all()
    save(est, tmp_path / "seq.safetensors")
    restored = load(tmp_path / "seq.safetensors", user_id_key=None)
    np.testing.assert_array_equal(restored.recommend(["u0-0"], k=4)[0],
                                  est.recommend(["u0-0"], k=4)[0])
    # without attributes the network has no attribute table
    plain = cls(embedding_dim=8, max_iter=1, random_state=0).fit(X)
    assert plain._module().item_attributes is None


@pytest.mark.parametrize("cls", [AttentionRecommender, LSTMRecommender])
def test_sequence_user_attributes(grouped, cls, tmp_path):
    """The user token: users known by their attributes alone are recommended
    their group's items, new users too through recommend(Attributes(...))."""
    X, users, items = grouped
    est = cls(embedding_dim=16, max_iter=40, batch_size=8, learning_rate_init=0.02,
              random_state=0, user_attributes=Attributes(users))
    est.fit(X)
    cold, new = _check_cold_users(est, users)
    # a known user's history is read after its own token, a new history
    # after the unknown user's: the same history scores differently
    history = X[X.user == "u0-0"].sort_values("timestamp", kind="stable").item.tolist()
    _, known = est.recommend(["u0-0"], k=5, exclude_seen=False)
    _, as_new = est.recommend([history], k=5, exclude_seen=False)
    assert not np.allclose(known, as_new)
    # the token of the unknown user is zero; the model without user
    # attributes has no table and refuses recommend(Attributes(...))
    plain = cls(embedding_dim=8, max_iter=1, random_state=0).fit(X)
    assert plain._module().user_attributes is None
    with pytest.raises(ValueError, match="fitted without user_attributes"):
        plain.recommend(Attributes(new), k=3)
    # artifact, pickle, and the exported graph of known users
    queries = (["u0-0", cold[1]], Attributes(new))
    expected = [est.recommend(q, k=4) for q in queries]
    save(est, tmp_path / "seq.safetensors")
    for restored in (load(tmp_path / "seq.safetensors", user_id_key=None),
                     pickle.loads(pickle.dumps(est))):
        for q, (exp_ids, exp_scores) in zip(queries, expected):
            got_ids, got_scores = restored.recommend(q, k=4)
            np.testing.assert_array_equal(got_ids, exp_ids)
            np.testing.assert_allclose(got_scores, exp_scores, rtol=1e-6, atol=1e-6)
    from sklearn_recsys.export import prepare_inputs, to_torch_export

    program = to_torch_export(est)  # "auto": users by index, with their tokens
    user_idx = prepare_inputs(est, ["u0-0", cold[1]])
    assert list(user_idx) == ["users"]
    graph_scores = program.module()(torch.as_tensor(user_idx["users"])).numpy()
    item_idx = est._item_index.transform(np.asarray(expected[0][0], dtype=object).ravel())
    np.testing.assert_allclose(
        np.take_along_axis(graph_scores, item_idx.reshape(2, 4), axis=1),
        est.predict(pd.DataFrame({
            "user": np.repeat(["u0-0", cold[1]], 4),
            "item": np.asarray(expected[0][0]).ravel(),
        })).reshape(2, 4),
        rtol=1e-4, atol=1e-5,
    )


@pytest.mark.parametrize("cls", [AttentionRecommender, LSTMRecommender])
def test_sequence_user_attributes_with_every_loss_and_same_seed(grouped, cls):
    X, users, items = grouped

    def fitted(**params):
        return cls(embedding_dim=8, max_iter=2, random_state=0,
                   user_attributes=Attributes(users), item_attributes=Attributes(items),
                   **params).fit(X)

    for params in ({"loss": "bce", "n_negatives": 3},
                   {"loss": "sampled_softmax", "n_negatives": 8},
                   {"early_stopping": True, "validation_fraction": 0.3}):
        est = fitted(**params)
        ids, scores = est.recommend(Attributes(users.iloc[:2]), k=4)
        assert ids.shape == (2, 4) and np.isfinite(scores).all()
    a, b = fitted(), fitted()
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


@pytest.mark.parametrize("cls", [AttentionRecommender, LSTMRecommender])
def test_sequence_register_users_and_items(grouped, cls, tmp_path):
    X, users, items = grouped
    est = cls(embedding_dim=16, max_iter=40, batch_size=8, learning_rate_init=0.02,
              random_state=0, user_attributes=Attributes(users),
              item_attributes=Attributes(items)).fit(X)
    n_users, n_items = len(est.user_ids_), len(est.item_ids_)
    before = est.recommend(["u0-0", "u1-0"], k=5)
    new_users = users.iloc[[0, USERS_PER_GROUP, 2 * USERS_PER_GROUP]].set_axis(
        ["new0", "new1", "new2"])
    est.register_users(Attributes(new_users))
    # new users: empty histories, recommended to from their tokens, as
    # recommend(Attributes(...)) does
    ids, scores = est.recommend(["new0", "new1", "new2"], k=3)
    assert (_group(ids) == np.arange(N_GROUPS)[:, None]).mean() >= 2 / 3
    np.testing.assert_array_equal(ids, est.recommend(Attributes(new_users), k=3)[0])
    new_items = items.iloc[[0, ITEMS_PER_GROUP]].set_axis(["late0", "late1"])
    est.register_items(Attributes(new_items))
    assert len(est.user_ids_) == n_users + 3 and len(est.item_ids_) == n_items + 2
    ids, scores = est.recommend(["u0-0"], k=n_items + 2, exclude_seen=False)
    assert {"late0", "late1"} <= set(ids[0]) and np.isfinite(scores).all()
    # the known users and items score as before
    after = est.recommend(["u0-0", "u1-0"], k=5, items=est.item_ids_[:n_items])
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1], rtol=1e-5, atol=1e-5)
    save(est, tmp_path / "seq.safetensors")
    restored = load(tmp_path / "seq.safetensors", user_id_key=None)
    for query in (["new1", "u0-0"], [["i0-1", "late0"]]):
        np.testing.assert_array_equal(restored.recommend(query, k=5)[0],
                                      est.recommend(query, k=5)[0])
    plain = cls(embedding_dim=8, max_iter=1, random_state=0,
                item_attributes=Attributes(items)).fit(X)
    with pytest.raises(ValueError, match="fitted without user_attributes"):
        plain.register_users(Attributes(users))


@pytest.mark.parametrize("cls", [AttentionRecommender, LSTMRecommender])
def test_sequence_user_attributes_without_any_feature(grouped, cls):
    """A table whose only column is empty encodes to no feature: no token."""
    X, users, _ = grouped
    empty = Attributes(pd.DataFrame({"g": [None] * len(users)}, index=users.index),
                       categorical=["g"])
    est = cls(embedding_dim=8, max_iter=2, random_state=0, user_attributes=empty).fit(X)
    assert est._module().user_attributes is None
    ids, scores = est.recommend(Attributes(pd.DataFrame({"g": [None]}, index=["x"]),
                                           categorical=["g"]), k=3)
    assert ids.shape == (1, 3) and np.isfinite(scores).all()
    est.register_users(Attributes(pd.DataFrame({"g": [None]}, index=["y"]),
                                  categorical=["g"]))
    assert est.recommend(["y"], k=3)[0].shape == (1, 3)


def test_ann_index_of_a_sequence_model_with_registered_items(grouped):
    """The index reads the attribute-combined item terms, registered items too."""
    from sklearn_recsys.ann import ApproximateIndex

    pytest.importorskip("hnswlib")
    X, users, items = grouped
    est = AttentionRecommender(embedding_dim=8, max_iter=3, random_state=0,
                               item_attributes=Attributes(items)).fit(X)
    est.register_items(Attributes(items.iloc[:2].set_axis(["late0", "late1"])))
    index = ApproximateIndex(est, random_state=0).fit()  # 26 items: exact in practice
    ids, scores = index.recommend(["u0-0", "u1-0"], k=5)
    exact_ids, exact_scores = est.recommend(["u0-0", "u1-0"], k=5)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5, atol=1e-5)


def test_sequence_user_tokens_keep_the_contracts(grouped):
    """Same seed, same model under joblib threads (the token targets draw from
    the fit's generator); a refused fit or registration changes nothing; the
    caller's tables are untouched."""
    from joblib import Parallel, delayed

    X, users, items = grouped
    X_before, users_before = X.copy(deep=True), users.copy(deep=True)

    def fitted():
        est = AttentionRecommender(embedding_dim=8, max_iter=3, random_state=0,
                                   user_attributes=Attributes(users)).fit(X)
        return est, est.recommend(["u0-0", "u1-11"], k=5)[1]

    threaded = Parallel(n_jobs=2, backend="threading")(delayed(fitted)() for _ in range(2))
    est, alone = fitted()
    for _, scores in threaded:
        np.testing.assert_array_equal(scores, alone)
    pd.testing.assert_frame_equal(X, X_before)
    pd.testing.assert_frame_equal(users, users_before)
    n_users = len(est.user_ids_)
    with pytest.raises(TypeError, match="needs an Attributes"):
        est.register_users(users)
    bad = Attributes(pd.DataFrame({"other": ["x"]}, index=["new"]))
    with pytest.raises(ValueError):
        est.register_users(bad)
    assert len(est.user_ids_) == n_users
    with pytest.raises(ValueError):
        est.set_params(max_len=0).fit(X)
    est.set_params(max_len=50)  # the refused value back: the fitted model is intact
    np.testing.assert_array_equal(est.recommend(["u0-0", "u1-11"], k=5)[1], alone)


# -- the CNN recommender ----------------------------------------------------------


def test_cnn_user_and_item_attributes(grouped, tmp_path):
    X, users, items = grouped
    rng = np.random.RandomState(0)
    content = ItemContent(items.index.to_numpy(), texts=rng.randint(1, 20, (len(items), 5)))
    est = CNNRecommender(
        loss="bpr", n_components=8, max_iter=30, batch_size=32, learning_rate_init=0.02,
        random_state=0, item_content=content, user_attributes=Attributes(users),
        item_attributes=Attributes(items),
    ).fit(X[["user", "item"]])
    cold = [f"u{g}-{USERS_PER_GROUP - 1}" for g in range(N_GROUPS)]
    ids, scores = est.recommend(cold, k=3)
    assert (_group(ids) == np.arange(N_GROUPS)[:, None]).mean() >= 2 / 3
    new_ids, _ = est.recommend(Attributes(users.loc[cold].set_axis(["a", "b", "c"])), k=3)
    np.testing.assert_array_equal(new_ids, ids)
    # content registered after fit: no attributes, still scored
    est.register_items(ItemContent(["late"], texts=np.ones((1, 5), dtype=int)))
    assert np.isfinite(est.recommend(cold, k=3, items=["late", "i0-0"])[1]).all()
    save(est, tmp_path / "cnn.safetensors")
    restored = load(tmp_path / "cnn.safetensors", user_id_key=None)
    np.testing.assert_array_equal(restored.recommend(cold, k=3)[0], ids)


# -- sklearn's checks, with attributes --------------------------------------------

# The checks fit user x item matrices of several shapes: attributes keyed by
# row/column 0, which every matrix has.
_ROW0 = Attributes(pd.DataFrame({"g": ["a"], "x": [1.0]}, index=[0]))


def _expected(estimator):
    from test_common import _expected_failed_checks

    return _expected_failed_checks(estimator)


@parametrize_with_checks(
    [
        MatrixFactorization(max_iter=2, random_state=0, user_attributes=_ROW0,
                            item_attributes=_ROW0),
        # the checks feed negative targets: ratings (softmax needs weights >= 0)
        MatrixFactorization(max_iter=2, random_state=0, item_attributes=_ROW0,
                            id_dropout=1.0),
        AttentionRecommender(max_iter=2, random_state=0, item_attributes=_ROW0),
        AttentionRecommender(max_iter=2, random_state=0, user_attributes=_ROW0,
                             item_attributes=_ROW0),
        LSTMRecommender(max_iter=2, random_state=0, user_attributes=_ROW0),
        # click labels must lie in [0, 1]; the checks feed arbitrary floats
        CNNRecommender(loss="mse", max_iter=2, random_state=0, user_attributes=_ROW0,
                       item_attributes=_ROW0),
    ],
    expected_failed_checks=_expected,
)
def test_sklearn_compatible_with_attributes(estimator, check):
    check(estimator)


@pytest.mark.parametrize("kind", ["mf", "attention", "lstm"])
def test_recommend_contract_with_attributes(kind):
    """The shared recommend contract (tests/test_common.py), attributes given."""
    import test_common as common

    X = common._block_matrix()
    n_users = common.N_BLOCKS * common.USERS_PER_BLOCK
    n_items = common.N_BLOCKS * common.ITEMS_PER_BLOCK
    block_users = np.arange(n_users) // common.USERS_PER_BLOCK
    block_items = np.arange(n_items) // common.ITEMS_PER_BLOCK
    coo = X.tocoo()
    table = pd.DataFrame({"user": [f"u{r}" for r in coo.row],
                          "item": [f"i{c}" for c in coo.col], "timestamp": coo.data})

    def model(user_keys, item_keys):
        attributes = dict(
            user_attributes=Attributes(pd.DataFrame({"block": block_users}, index=user_keys),
                                       categorical=["block"]),
            item_attributes=Attributes(pd.DataFrame({"block": block_items}, index=item_keys),
                                       categorical=["block"]),
        )
        if kind == "mf":
            return MatrixFactorization(
                loss="bpr", n_components=4, max_iter=30, batch_size=32,
                learning_rate_init=0.01, alpha=1e-4, random_state=0, **attributes,
            )
        cls = AttentionRecommender if kind == "attention" else LSTMRecommender
        return cls(embedding_dim=16, max_iter=30, batch_size=8, learning_rate_init=0.01,
                   random_state=0, **attributes)

    common.test_recommend_contract(model(np.arange(n_users), np.arange(n_items)), (X, table))
    common.test_recommend_contract_raw_ids(
        model([f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)]),
        (X, table),
    )


# -- property-based: any table either encodes cleanly or is refused clearly ----------

_VALUES = st.one_of(
    st.none(), st.just(np.nan), st.just(np.inf), st.booleans(),
    st.integers(-5, 5), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from("abc"),
    st.lists(st.sampled_from("xyz"), max_size=3), st.just(pd.Timestamp("2020-01-01")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_table_encodes_or_is_refused_clearly(data):
    n_rows = data.draw(st.integers(1, 5))
    n_cols = data.draw(st.integers(1, 3))
    columns = {
        f"c{j}": data.draw(st.lists(_VALUES, min_size=n_rows, max_size=n_rows))
        for j in range(n_cols)
    }
    table = pd.DataFrame(columns, index=[f"id{i}" for i in range(n_rows)])
    before = table.copy(deep=True)
    try:
        attrs = Attributes(table)
    except (ValueError, TypeError) as exc:  # refused, naming a column or the ids
        assert "Column 'c" in str(exc) or "ids" in str(exc), str(exc)
    else:
        encoder = AttributeEncoder(attrs)
        index, weight = encoder.encode(attrs, encoder.width)
        assert index.shape == weight.shape == (n_rows, encoder.width)
        assert ((0 <= index) & (index <= encoder.n_features)).all()
        assert np.isfinite(weight).all()
        assert len(encoder.feature_names()) == encoder.n_features
    assert table.equals(before)  # the caller's table is untouched


def test_same_seed_same_model_in_threads(grouped):
    """The attribute paths draw from the fit's own generator (id_dropout)."""
    from joblib import Parallel, delayed

    X, users, items = grouped

    def fitted():
        est = _mf(max_iter=5, id_dropout=0.3, user_attributes=Attributes(users),
                  item_attributes=Attributes(items)).fit(X[["user", "item"]])
        return est.user_embeddings_, est.item_embeddings_

    results = Parallel(n_jobs=2, backend="threading")(delayed(fitted)() for _ in range(2))
    alone = fitted()
    for user_emb, item_emb in results:
        np.testing.assert_array_equal(user_emb, alone[0])
        np.testing.assert_array_equal(item_emb, alone[1])


# -- CUDA ------------------------------------------------------------------------


def _attribute_models_on(device, grouped, tmp_path):
    """Every model with user and item attributes fitted on ``device``: the
    attribute tables live there, cold users and registered users/items are
    scored, and an artifact saved there loads on the CPU with the same
    recommendations."""
    X, users, items = grouped
    content = ItemContent(items.index.to_numpy(),
                          texts=np.random.RandomState(0).randint(1, 20, (len(items), 5)))
    attrs = dict(user_attributes=Attributes(users), item_attributes=Attributes(items))
    seq = dict(embedding_dim=16, max_iter=40, batch_size=8, learning_rate_init=0.02)
    models = {
        "mf": _mf(device=device, **attrs),
        "attention": AttentionRecommender(device=device, random_state=0, **seq, **attrs),
        "lstm": LSTMRecommender(device=device, random_state=0, **seq, **attrs),
        "cnn": CNNRecommender(loss="bpr", n_components=8, max_iter=30, batch_size=32,
                              learning_rate_init=0.02, random_state=0, item_content=content,
                              device=device, **attrs),
    }
    cold = [f"u{g}-{USERS_PER_GROUP - 1}" for g in range(N_GROUPS)]
    new_users = users.loc[cold].set_axis(["n0", "n1", "n2"])
    for name, est in models.items():
        est.fit(X if name in ("attention", "lstm") else X[["user", "item"]])
        assert all(p.device.type == torch.device(device).type
                   for p in est.net_.module_.parameters()), name
        ids, scores = est.recommend(cold, k=3)
        assert (_group(ids) == np.arange(N_GROUPS)[:, None]).mean() >= 2 / 3, name
        np.testing.assert_array_equal(est.recommend(Attributes(new_users), k=3)[0], ids)
        if name != "cnn":
            est.register_users(Attributes(new_users.set_axis(["r0", "r1", "r2"])))
            est.register_items(Attributes(items.iloc[:1].set_axis(["late"])))
            ids_r, scores_r = est.recommend(["r0", "r1", "r2"], k=4)
            assert np.isfinite(scores_r).all() and "late" in est.item_ids_, name
        save(est, tmp_path / f"{name}.safetensors")
        restored = load(tmp_path / f"{name}.safetensors", user_id_key=None)
        got_ids, got_scores = restored.recommend(cold, k=3)
        np.testing.assert_array_equal(got_ids, est.recommend(cold, k=3)[0])
        # cuDNN's LSTM may run in TF32 on a GPU (torch.backends.cudnn.allow_tf32,
        # on by default): measured on an H200, 2.5e-4 relative against the CPU
        tol = 2e-3 if name == "lstm" and device != "cpu" else 1e-5
        np.testing.assert_allclose(got_scores, est.recommend(cold, k=3)[1], rtol=tol, atol=tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_attribute_models_on_cuda(grouped, tmp_path):
    _attribute_models_on("cuda", grouped, tmp_path)
