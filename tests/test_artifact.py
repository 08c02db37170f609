"""Model artifacts (``sklearn_recsys.save``/``load``) and skops round trips."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.datasets import load_digits

import sklearn_recsys
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

pytestmark = pytest.mark.filterwarnings("ignore:y is ignored for a user x item matrix")


def _table(seed=0, n_users=30, n_items=20, n=400, item_prefix="i"):
    rng = np.random.RandomState(seed)
    X = pd.DataFrame({
        "user": rng.randint(0, n_users, n),
        "item": [f"{item_prefix}{j}" for j in rng.randint(0, n_items, n)],
        "t": np.arange(n),
    }).drop_duplicates(["user", "item"], ignore_index=True)
    ratings = rng.randint(1, 6, len(X)).astype(float)
    return X, ratings


def _images(n=25):
    return load_digits().images[:n].reshape(n, 1, 8, 8).astype(np.float32)


ESTIMATORS = {
    "mf-mse": lambda: MatrixFactorization(max_iter=2, random_state=0),
    "mf-softmax": lambda: MatrixFactorization(loss="softmax", max_iter=2, random_state=0),
    "mf-bpr-sparse": lambda: MatrixFactorization(
        loss="bpr", solver="sparse_adam", max_iter=2, random_state=0
    ),
    "neumf-bce": lambda: MatrixFactorization(
        architecture="neumf", loss="bce", hidden_layer_sizes=(16, 8), max_iter=2,
        random_state=0,
    ),
    "cnn-images": lambda: CNNRecommender(
        item_content=ItemContent(item_ids=[f"i{j}" for j in range(25)], images=_images()),
        conv_channels=(4, 8), dense_size=16, max_iter=2, random_state=0,
    ),
    "cnn-ids": lambda: CNNRecommender(max_iter=2, random_state=0),
    "lstm": lambda: LSTMRecommender(max_iter=2, time_col="t", random_state=0),
    "attention": lambda: AttentionRecommender(max_iter=2, time_col="t", random_state=0),
    "ease": EASE,
    "itemknn": ItemKNN,
    "popularity": Popularity,
}


def _fit(name, X=None, y=None):
    model = ESTIMATORS[name]()
    if X is None:
        X, y = _table()
    if getattr(model, "loss", None) == "bce":
        y = (np.asarray(y) > 3).astype(float)
    return model.fit(X, y)


def _assert_same_outputs(a, b, users, X):
    ids_a, scores_a = a.recommend(users, k=5)
    ids_b, scores_b = b.recommend(users, k=5)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(scores_a, scores_b)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    ids_a, scores_a = a.recommend(users, k=5, exclude_seen=False)
    ids_b, scores_b = b.recommend(users, k=5, exclude_seen=False)
    np.testing.assert_array_equal(scores_a, scores_b)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_save_load_gives_identical_predictions(name, tmp_path):
    X, y = _table()
    model = _fit(name, X, y)
    path = sklearn_recsys.save(model, tmp_path / "model.safetensors")
    loaded = sklearn_recsys.load(path)
    assert type(loaded) is type(model)
    users = [*range(30), 999]  # 999: unknown, the fallback
    _assert_same_outputs(model, loaded, users, X)
    # user ids are stored as keyed hashes (the default); items as they are
    from sklearn_recsys._input import keyed_hashes

    key = bytes.fromhex((tmp_path / "model.safetensors.key").read_text())
    np.testing.assert_array_equal(loaded.user_ids_, keyed_hashes(model.user_ids_, key))
    np.testing.assert_array_equal(loaded.item_ids_, model.item_ids_)
    assert loaded.item_ids_.dtype == model.item_ids_.dtype
    assert (loaded._seen != model._seen).nnz == 0
    # parameters come back (those that are plain values)
    for key, value in model.get_params(deep=False).items():
        if key not in ("item_content", "callbacks"):
            assert loaded.get_params(deep=False)[key] == value, key
    if hasattr(model, "n_iter_"):
        assert loaded.n_iter_ == model.n_iter_
        assert loaded.loss_curve_ == model.loss_curve_
    np.testing.assert_array_equal(
        loaded.similar_items(["i1", "i2"], k=3)[0], model.similar_items(["i1", "i2"], k=3)[0]
    ) if name not in ("popularity",) else None


@pytest.mark.parametrize("name", ["mf-mse", "lstm", "ease"])
def test_matrix_convention_round_trip(name, tmp_path):
    rng = np.random.RandomState(1)
    X = sp.random(25, 15, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.ceil(X.data * 5)
    model = ESTIMATORS[name]().fit(X)
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "m.safetensors"))
    assert loaded.n_features_in_ == 15
    a, b = model.predict(X), loaded.predict(X)
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    np.testing.assert_array_equal(model.transform(X[:4]), loaded.transform(X[:4]))
    # new users' histories fold in the same way
    np.testing.assert_array_equal(
        model.recommend(X[:3], k=4)[1], loaded.recommend(X[:3], k=4)[1]
    )


@pytest.mark.parametrize("ids", [
    np.array([10, 20, 30]),
    np.array(["a", "b", "c"]),
    np.array([7, 8, 9], dtype=np.int32),
    np.array(["a", 2, "c"], dtype=object),
], ids=["int", "str", "int32", "mixed"])
def test_id_types_and_dtypes_survive(ids, tmp_path):
    users = np.repeat(ids, 3)
    items = np.tile(ids, 3)
    X = pd.DataFrame({"user": users, "item": items})
    model = Popularity().fit(X)
    loaded = sklearn_recsys.load(
        sklearn_recsys.save(model, tmp_path / "m.safetensors", user_ids="raw")
    )
    assert loaded.user_ids_.dtype == model.user_ids_.dtype
    assert loaded.user_ids_.tolist() == model.user_ids_.tolist()
    assert [type(v) for v in loaded.item_ids_.tolist()] == [
        type(v) for v in model.item_ids_.tolist()
    ]


def test_ids_that_json_cannot_hold_are_refused(tmp_path):
    X = pd.DataFrame({"user": [(1, 2), (3, 4)], "item": ["a", "b"]})
    model = Popularity().fit(X)
    with pytest.raises(TypeError, match="Ids of type tuple"):
        sklearn_recsys.save(model, tmp_path / "m.safetensors", user_ids="raw")
    with pytest.raises(TypeError, match="Keyed hashes are defined for"):
        sklearn_recsys.save(model, tmp_path / "m.safetensors")


def test_artifact_holds_arrays_and_json_only(tmp_path, monkeypatch):
    model = _fit("attention")
    path = sklearn_recsys.save(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["sklearn_recsys"])
        names = list(f.keys())
    assert meta["estimator"] == "AttentionRecommender"
    assert meta["format_version"] == sklearn_recsys._artifact.FORMAT_VERSION
    assert meta["versions"]["torch"] == torch.__version__
    assert any(name.startswith("fitted.net_.state.") for name in names)
    # nothing from training: no optimizer state, no warm-start record
    assert not any("optimizer" in name for name in names)
    assert "_fitted_params" not in meta["fitted"]

    # loading unpickles nothing
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading an artifact")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    sklearn_recsys.load(path).recommend([0], k=3)


def test_artifact_size_close_to_parameters_and_ids(tmp_path):
    X, y = _table(n_users=300, n_items=200, n=6000)
    for name in ("mf-mse", "attention"):
        model = _fit(name, X, y)
        path = sklearn_recsys.save(model, tmp_path / f"{name}.safetensors")
        params = sum(p.numel() * p.element_size() for p in model.net_.module_.state_dict().values())
        ids = model.user_ids_.nbytes + len(json.dumps(model.item_ids_.tolist()))
        # plus the fitted state's fixed-size metadata (loss curve, parameters)
        assert path.stat().st_size <= 1.5 * (params + ids) + 16_384, name
        # much smaller than the pickle, which keeps the training state
        assert path.stat().st_size < len(pickle.dumps(model))


def test_int8_artifact(tmp_path):
    X, y = _table(n_users=200, n_items=100, n=3000)
    model = _fit("mf-softmax", X, y)
    full = sklearn_recsys.save(model, tmp_path / "f32.safetensors")
    small = sklearn_recsys.save(model, tmp_path / "int8.safetensors", quantize="int8")
    assert small.stat().st_size < 0.5 * full.stat().st_size
    with safe_open(str(small), framework="numpy") as f:
        q = f.get_tensor("fitted.net_.state.item_factors.weight")
    assert q.dtype == np.int8
    loaded = sklearn_recsys.load(small)
    assert loaded.net_.module_.item_factors.weight.dtype == torch.float32
    users = np.arange(200)
    a = model.recommend(users, k=10)[0]
    b = loaded.recommend(users, k=10)[0]
    overlap = np.mean([len(set(r) & set(s)) / 10 for r, s in zip(a, b)])
    assert overlap > 0.9
    w = model.net_.module_.item_factors.weight.detach()
    w_q = loaded.net_.module_.item_factors.weight.detach()
    # per-row symmetric int8: error at most half a step of the row's scale
    step = w.abs().amax(dim=1, keepdim=True) / 127
    assert torch.all((w - w_q).abs() <= step / 2 + 1e-7)
    with pytest.raises(ValueError, match="quantize"):
        sklearn_recsys.save(model, tmp_path / "x.safetensors", quantize="int4")


def test_load_to_device_sets_the_parameter(tmp_path):
    model = _fit("mf-mse")
    model.set_params(device="cpu")
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "m.safetensors"),
                                 device=torch.device("cpu"))
    assert loaded.device == "cpu"
    assert loaded._device() == torch.device("cpu")


def test_loaded_model_refits_but_cannot_warm_start(tmp_path):
    X, y = _table()
    model = MatrixFactorization(max_iter=2, warm_start=True, random_state=0).fit(X, y)
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "m.safetensors"))
    before = loaded.predict(X)
    with pytest.raises(ValueError, match="loaded from an artifact"):
        loaded.fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), before)  # left as it was
    loaded.set_params(warm_start=False).fit(X, y)
    np.testing.assert_allclose(
        loaded.predict(X), MatrixFactorization(max_iter=2, random_state=0).fit(X, y).predict(X)
    )
    # pickle keeps the training state: warm start continues
    again = pickle.loads(pickle.dumps(model))
    again.fit(X, y)
    assert again.n_iter_ == 4 == len(again.net_.history)


def test_parameters_that_are_not_plain_values_are_listed(tmp_path):
    model = _fit("cnn-images")
    path = sklearn_recsys.save(model, tmp_path / "m.safetensors")
    meta = sklearn_recsys._artifact.read_metadata(path)
    assert meta["dropped_params"] == ["item_content"]
    loaded = sklearn_recsys.load(path)
    assert loaded.item_content is None
    # the content itself is in the network: new items still score from it
    np.testing.assert_array_equal(loaded.cold_item_ids_, model.cold_item_ids_)


def test_registered_items_are_saved(tmp_path):
    model = _fit("cnn-images")
    images = _images(30)[25:]
    model.register_items(ItemContent(item_ids=[f"new{j}" for j in range(5)], images=images))
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "m.safetensors"))
    X, _ = _table()
    _assert_same_outputs(model, loaded, list(range(30)), X)
    assert "new3" in loaded.item_ids_


@pytest.mark.parametrize("case", ["missing", "not-safetensors", "foreign", "version"])
def test_bad_artifacts_are_refused(case, tmp_path):
    path = tmp_path / "m.safetensors"
    if case == "missing":
        with pytest.raises(FileNotFoundError, match="No artifact"):
            sklearn_recsys.load(path)
        return
    if case == "not-safetensors":
        path.write_bytes(b"\x00\x01not a model")
        match = "not a safetensors file"
    elif case == "foreign":
        save_file({"w": np.zeros(3, dtype=np.float32)}, str(path))
        match = "not a sklearn_recsys artifact"
    else:
        sklearn_recsys.save(_fit("popularity"), path)
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads(f.metadata()["sklearn_recsys"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta["format_version"] = 99
        save_file(tensors, str(path), metadata={"sklearn_recsys": json.dumps(meta)})
        match = "format version 99.*reads format version 1"
    with pytest.raises(ValueError, match=match):
        sklearn_recsys.load(path)


def test_unknown_classes_are_refused(tmp_path):
    path = sklearn_recsys.save(_fit("popularity"), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["sklearn_recsys"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["estimator"] = "os.system"
    save_file(tensors, str(path), metadata={"sklearn_recsys": json.dumps(meta)})
    with pytest.raises(ValueError, match="not one of this package's estimators"):
        sklearn_recsys.load(path)


def test_save_refuses_unfitted_and_foreign_objects(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LinearRegression

    with pytest.raises(NotFittedError):
        sklearn_recsys.save(MatrixFactorization(), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="LinearRegression"):
        sklearn_recsys.save(LinearRegression(), tmp_path / "m.safetensors")


def test_pickle_keeps_the_full_state():
    model = _fit("mf-mse")
    again = pickle.loads(pickle.dumps(model))
    assert hasattr(again.net_, "optimizer_")
    assert again._fitted_params == model._fitted_params
    X, _ = _table()
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


# -- skops ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_skops_round_trip(name):
    sio = pytest.importorskip("skops.io")
    X, y = _table()
    model = _fit(name, X, y)
    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    # only the package's own classes need trusting
    assert all(t.startswith("sklearn_recsys.") for t in untrusted), untrusted
    assert f"{type(model).__module__}.{type(model).__name__}" in untrusted
    loaded = sio.loads(data, trusted=untrusted)
    _assert_same_outputs(model, loaded, [*range(30), 999], X)


def test_skops_unfitted_round_trip():
    sio = pytest.importorskip("skops.io")
    model = MatrixFactorization(n_components=8, hidden_layer_sizes=(4, 2), module__dropout=0.1)
    data = sio.dumps(model)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert loaded.get_params() == model.get_params()
    assert isinstance(loaded.hidden_layer_sizes, tuple)


def test_int8_linear_layers_on_load(tmp_path):
    X, y = _table(n_users=60, n_items=40, n=1200)
    model = _fit("attention", X, y)
    path = sklearn_recsys.save(model, tmp_path / "m.safetensors")
    fast = sklearn_recsys.load(path, quantize="int8")
    linear = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, linear) for m in fast.net_.module_.modules())
    users = np.arange(60)
    a = model.recommend(users, k=10, exclude_seen=False)[0]
    b = fast.recommend(users, k=10, exclude_seen=False)[0]
    assert np.mean([len(set(r) & set(s)) / 10 for r, s in zip(a, b)]) > 0.8
    with pytest.raises(ValueError, match="loaded with quantize=.int8."):
        sklearn_recsys.save(fast, tmp_path / "again.safetensors")
    with pytest.raises(ValueError, match="quantize"):
        sklearn_recsys.load(path, quantize="int4")
    # MF has no linear layer: nothing to quantize, scores unchanged
    mf = _fit("mf-mse", X, y)
    loaded = sklearn_recsys.load(
        sklearn_recsys.save(mf, tmp_path / "mf.safetensors"), quantize="int8"
    )
    np.testing.assert_array_equal(loaded.predict(X), mf.predict(X))


# -- hashed user ids ---------------------------------------------------------------


def _distinct_ids_model(name="mf-mse"):
    rng = np.random.RandomState(0)
    users = [f"person-{rng.randint(10**8, 10**9)}" for _ in range(25)] + [
        987654321 + i for i in range(5)
    ]
    X, y = _table()
    X["user"] = np.array(users, dtype=object)[X["user"].to_numpy()]
    return _fit(name, X, y), X, users


@pytest.mark.parametrize("name", ["mf-mse", "attention", "ease"])
def test_hashed_artifact_contains_no_raw_user_id(name, tmp_path):
    model, X, users = _distinct_ids_model(name)
    path = sklearn_recsys.save(model, tmp_path / "m.safetensors")
    raw = path.read_bytes()
    for user in users:
        assert str(user).encode() not in raw, user
        if isinstance(user, int):
            assert np.int64(user).tobytes() not in raw
            assert np.int32(user).tobytes() not in raw
    # with the key (the key file beside it), known users are recognised
    loaded = sklearn_recsys.load(path)
    _assert_same_outputs(model, loaded, [users[3], users[27], "stranger"], X)
    # the raw form does list them
    raw_path = sklearn_recsys.save(model, tmp_path / "raw.safetensors", user_ids="raw")
    assert str(users[0]).encode() in raw_path.read_bytes()


def test_user_id_key_sources(tmp_path, monkeypatch):
    import os
    import stat

    model, X, users = _distinct_ids_model()
    path = sklearn_recsys.save(model, tmp_path / "m.safetensors")
    key_file = tmp_path / "m.safetensors.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = bytes.fromhex(key_file.read_text())
    key_file.unlink()
    with pytest.raises(ValueError, match="holds keyed hashes"):
        sklearn_recsys.load(path)
    with pytest.raises(ValueError, match="is not the key"):
        sklearn_recsys.load(path, user_id_key=b"wrong")
    loaded = sklearn_recsys.load(path, user_id_key=key)
    _assert_same_outputs(model, loaded, users[:4], X)
    monkeypatch.setenv("SKLEARN_RECSYS_USER_ID_KEY", "team secret")
    path2 = sklearn_recsys.save(model, tmp_path / "m2.safetensors", user_id_key="team secret")
    assert not (tmp_path / "m2.safetensors.key").exists()  # a given key is not written
    _assert_same_outputs(model, sklearn_recsys.load(path2), users[:4], X)
    with pytest.raises(ValueError, match="user_ids must be"):
        sklearn_recsys.save(model, tmp_path / "x.safetensors", user_ids="plain")


def test_resaving_a_hashed_model_keeps_its_key(tmp_path):
    model, X, users = _distinct_ids_model()
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "a.safetensors"))
    again = sklearn_recsys.load(sklearn_recsys.save(loaded, tmp_path / "b.safetensors"))
    assert (tmp_path / "b.safetensors.key").read_text() == (
        tmp_path / "a.safetensors.key"
    ).read_text()
    _assert_same_outputs(model, again, users[:4], X)
    with pytest.raises(ValueError, match="raw ids are unknown"):
        sklearn_recsys.save(loaded, tmp_path / "c.safetensors", user_ids="raw")
    with pytest.raises(ValueError, match="another key"):
        sklearn_recsys.save(loaded, tmp_path / "c.safetensors", user_id_key=b"other")


# -- robustness against altered files ----------------------------------------------


def _rewrite(path, edit):
    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads(f.metadata()["sklearn_recsys"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(meta, tensors)
    save_file(tensors, str(path), metadata={"sklearn_recsys": json.dumps(meta)})


def test_altered_fitted_names_are_refused(tmp_path):
    path = sklearn_recsys.save(_fit("popularity"), tmp_path / "m.safetensors",
                               user_ids="raw")
    for name in ("recommend", "handle_unknown", "__class__", "user_ids_"):
        _rewrite(path, lambda meta, t, name=name: meta["fitted"].__setitem__(name, 1))
        with pytest.raises(ValueError, match="Unexpected fitted attribute"):
            sklearn_recsys.load(path)
        _rewrite(path, lambda meta, t, name=name: meta["fitted"].pop(name))


def test_altered_sizes_are_refused_before_allocating(tmp_path):
    path = sklearn_recsys.save(_fit("mf-mse"), tmp_path / "m.safetensors", user_ids="raw")

    def huge(meta, tensors):
        meta["fitted"]["net_"]["config"]["n_users"] = 30_000_000

    _rewrite(path, huge)
    with pytest.raises(ValueError, match="does not match its stored weights"):
        sklearn_recsys.load(path)


def test_filled_arrays_only_inside_matrices(tmp_path):
    path = sklearn_recsys.save(_fit("popularity"), tmp_path / "m.safetensors",
                               user_ids="raw")

    def bomb(meta, tensors):
        meta["fitted"]["item_popularity_"] = {
            "__array__": "x", "dtype": "|b1", "shape": [10**10], "fill": True,
        }

    _rewrite(path, bomb)
    with pytest.raises(ValueError, match="Malformed artifact"):
        sklearn_recsys.load(path)


def test_not_a_regular_file(tmp_path):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        sklearn_recsys.load(fifo)


def test_old_pickle_protocols_keep_the_full_state():
    model = _fit("mf-mse")
    for protocol in (0, 1, 2, pickle.HIGHEST_PROTOCOL):
        again = pickle.loads(pickle.dumps(model, protocol=protocol))
        assert hasattr(again.net_, "optimizer_"), protocol
        assert not getattr(again, "_from_artifact", False)


def test_network_config_records_kwargs_and_refuses_data():
    from sklearn_recsys.nn import BiasedMF, EASEScorer

    class Wrapped(BiasedMF):
        def __init__(self, n_users, n_items, **options):
            super().__init__(n_users, n_items, **options)

    net = Wrapped(3, 4, n_components=5, init_std=0.2)
    assert net.get_config() == {"n_users": 3, "n_items": 4, "n_components": 5,
                                "init_std": 0.2}
    rebuilt = Wrapped(**net.get_config())
    assert rebuilt.user_factors.weight.shape == net.user_factors.weight.shape
    scorer = EASEScorer(
        torch.zeros(3, 3), torch.zeros(2, dtype=torch.long), torch.zeros(0, dtype=torch.long),
        torch.zeros(0), torch.zeros(3),
    )
    with pytest.raises(ValueError, match="not recorded"):
        scorer.get_config()


def test_numpy_integers_in_object_ids(tmp_path):
    X = pd.DataFrame({"user": np.array([np.int64(5), "b", np.int64(5)], dtype=object),
                      "item": ["x", "y", "y"]})
    model = Popularity().fit(X)
    loaded = sklearn_recsys.load(
        sklearn_recsys.save(model, tmp_path / "m.safetensors", user_ids="raw")
    )
    assert loaded.user_ids_.tolist() == [5, "b"] or loaded.user_ids_.tolist() == ["b", 5]
