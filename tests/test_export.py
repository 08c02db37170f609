"""Tests for sklearn_recsys.export: the neural models' scoring graphs.

Every graph (``torch.export`` and, through onnxruntime, ONNX) must give the
scores ``predict`` gives for every (user, item) pair, for batches of any
size, unknown users and -- for the sequence models -- histories shorter and
longer than ``max_len``; its top items must be ``recommend``'s.
"""

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.special import log_softmax
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression

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
from sklearn_recsys.export import prepare_inputs, to_onnx, to_torch_export

TOL = dict(atol=1e-5, rtol=1e-5)
N_USERS, N_ITEMS, MAX_LEN = 24, 18, 4
UNKNOWN = "nobody"


def interactions(seed=0):
    """Users with 2 to 8 distinct items (shorter and longer than ``MAX_LEN``)."""
    rng = np.random.RandomState(seed)
    rows = []
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, rng.randint(2, 9), replace=False)
        rows += [(f"u{u}", f"i{i:02d}", t) for t, i in enumerate(items)]
    X = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    ratings = rng.randint(1, 6, len(X)).astype(float)
    clicks = (rng.rand(len(X)) < 0.7).astype(float)
    return X, {"ratings": ratings, "clicks": clicks, None: None}


def digit_content():
    """8x8 digit images of most items (3 without content), plus 2 cold items."""
    images = load_digits().images[: N_ITEMS + 2].astype(np.float32)
    ids = [f"i{i:02d}" for i in range(3, N_ITEMS)] + ["cold0", "cold1"]
    return ItemContent(ids, images=images[: len(ids)])


CNN = dict(n_components=4, max_iter=2, batch_size=32, random_state=0)
SEQ = dict(embedding_dim=8, max_len=MAX_LEN, max_iter=2, batch_size=64, random_state=0)
MF = dict(n_components=4, max_iter=3, batch_size=32, random_state=0)

CASES = {
    "mf-dot-mse": (lambda: MatrixFactorization(loss="mse", **MF), "ratings"),
    "mf-dot-bce": (lambda: MatrixFactorization(loss="bce", **MF), "clicks"),
    "mf-dot-softmax": (lambda: MatrixFactorization(loss="softmax", **MF), None),
    "mf-neumf-bce": (
        lambda: MatrixFactorization(
            architecture="neumf", hidden_layer_sizes=(8, 4), module__dropout=0.3, loss="bce", **MF
        ),
        None,
    ),
    "cnn-ids": (lambda: CNNRecommender(**CNN), None),
    "cnn-images": (
        lambda: CNNRecommender(
            item_content=digit_content(), conv_channels=(4, 8), dense_size=8,
            id_dropout=0.5, **CNN,
        ),
        None,
    ),
    "lstm-softmax": (lambda: LSTMRecommender(n_layers=2, **SEQ), None),
    "lstm-bce": (lambda: LSTMRecommender(n_layers=1, loss="bce", **SEQ), None),
    "attention-softmax": (lambda: AttentionRecommender(n_heads=2, **SEQ), None),
}
SEQUENCE_CASES = [name for name in CASES if name.startswith(("lstm", "attention"))]
# ONNX exports take a second or two each: the other cases' graphs are made of
# the same operators (a 2-layer LSTM is the 1-layer one twice).
ONNX_CASES = [name for name in CASES if name not in ("mf-dot-softmax", "lstm-softmax")]


@pytest.fixture(scope="module")
def data():
    return interactions()


@pytest.fixture(scope="module")
def fitted(data):
    """Fitted estimators, by case name, fitted once per module."""
    X, targets = data
    cache = {}

    def get(name):
        if name not in cache:
            make, target = CASES[name]
            cache[name] = make().fit(X, targets[target])
        return cache[name]

    return get


@pytest.fixture(scope="module")
def program(fitted):
    """Exported programs, by (case, inputs, scores)."""
    cache = {}

    def get(name, inputs="auto", scores="predict"):
        key = (name, inputs, scores)
        if key not in cache:
            cache[key] = to_torch_export(fitted(name), inputs=inputs, scores=scores)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def onnx_session(fitted, tmp_path_factory):
    """onnxruntime sessions of the ONNX files, by (case, inputs, scores)."""
    pytest.importorskip("onnxscript")  # the exporter's (onnx comes with it)
    ort = pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(name, inputs="auto", scores="predict"):
        key = (name, inputs, scores)
        if key not in cache:
            path = folder / f"{name}-{inputs}-{scores}.onnx"
            to_onnx(fitted(name), path, inputs=inputs, scores=scores)
            cache[key] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return cache[key]

    return get


def all_users(est):
    return [*est.user_ids_, UNKNOWN]


def predicted(est, users):
    """``predict`` of every (user, item) pair, ``(n_users, n_items)``."""
    items = est.item_ids_
    table = pd.DataFrame({
        "user": np.repeat(np.asarray(users, dtype=object), len(items)),
        "item": np.tile(items, len(users)),
    })
    return est.predict(table).reshape(len(users), len(items))


def run_torch(program, feeds):
    ((_, value),) = feeds.items()
    with torch.no_grad():
        return program.module()(torch.as_tensor(value)).numpy()


def run_onnx(session, feeds):
    (scores,) = session.run(["scores"], feeds)
    return scores


def histories(est):
    """New histories: 1 item, 3 items, max_len + 3 items (truncated), one unknown item."""
    items = list(est.item_ids_)
    return [
        [items[4]],
        [items[1], items[7], items[2]],
        items[:MAX_LEN + 3],
        [items[9], "unknown item", items[3]],
    ]


def matrix_of(est, lists):
    """User x item matrix of the histories, values giving the order."""
    H = np.zeros((len(lists), len(est.item_ids_)))
    position = {item: j for j, item in enumerate(est.item_ids_)}
    for row, history in enumerate(lists):
        for t, item in enumerate(history):
            if item in position:
                H[row, position[item]] = t + 1
    return sp.csr_array(H)


# -- the graphs give predict's scores ------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_torch_export_equals_predict(name, fitted, program):
    est = fitted(name)
    program = program(name)
    users = all_users(est)  # batch of n_users + 1 (exported with 2), unknown last
    expected = predicted(est, users)
    scores = run_torch(program, prepare_inputs(est, users))
    assert scores.dtype == np.float32 and scores.shape == (N_USERS + 1, len(est.item_ids_))
    np.testing.assert_allclose(scores, expected, **TOL)
    # a batch of one, and an unknown user alone
    for user in (users[5], UNKNOWN):
        one = run_torch(program, prepare_inputs(est, [user]))
        np.testing.assert_allclose(one, predicted(est, [user]), **TOL)


@pytest.mark.parametrize("name", ONNX_CASES)
def test_onnx_equals_predict(name, fitted, program, onnx_session):
    est = fitted(name)
    session = onnx_session(name)
    users = all_users(est)  # for the sequence models: histories of 2 to 8 items
    expected = predicted(est, users)
    feeds = prepare_inputs(est, users)
    scores = run_onnx(session, feeds)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, **TOL)
    np.testing.assert_allclose(
        run_onnx(session, prepare_inputs(est, users[-3:-1])), expected[-3:-1], **TOL
    )
    if name in SEQUENCE_CASES:  # new histories (see test_sequence_histories)
        feeds = prepare_inputs(est, histories(est))
        np.testing.assert_allclose(
            run_onnx(session, feeds), run_torch(program(name), feeds), **TOL
        )
    # the interface: one int64 input with a dynamic batch dimension
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == next(iter(feeds)) and inp.type == "tensor(int64)"
    assert inp.shape[0] == "batch" and out.name == "scores"
    assert out.shape == ["batch", len(est.item_ids_)]


@pytest.mark.parametrize("name", CASES)
def test_top_items_are_recommends(name, fitted, program):
    est = fitted(name)
    users = all_users(est)
    k = 5
    rec_ids, rec_scores = est.recommend(users, k=k, exclude_seen=False)
    predict_scores = run_torch(program(name), prepare_inputs(est, users))
    raw_scores = run_torch(program(name, scores="raw"), prepare_inputs(est, users))
    for scores in (predict_scores, raw_scores):  # both rank the items alike
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(est.item_ids_[top], rec_ids)
    # recommend returns the raw scores; predict's are their post-processing
    top = np.argsort(-raw_scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_allclose(np.take_along_axis(raw_scores, top, 1), rec_scores, **TOL)
    if name in ("mf-dot-mse", "mf-dot-softmax"):  # no post-processing
        np.testing.assert_allclose(raw_scores, predict_scores, **TOL)


# -- sequence models: histories -----------------------------------------------------


@pytest.mark.parametrize("name", SEQUENCE_CASES)
def test_sequence_histories(name, fitted, program):
    est = fitted(name)
    lists = histories(est)
    feeds = prepare_inputs(est, lists)
    seqs = feeds["sequences"]
    assert seqs.shape == (len(lists), MAX_LEN)
    items = list(est.item_ids_)
    # left-padded, item index + 1, the max_len most recent items, unknown item dropped
    np.testing.assert_array_equal(seqs[0], [0, 0, 0, 5])
    np.testing.assert_array_equal(seqs[2], np.arange(4, 4 + MAX_LEN))
    np.testing.assert_array_equal(seqs[3], [0, 0, items.index(items[9]) + 1, 4])
    torch_scores = run_torch(program(name), feeds)
    # predict folds the histories in and scores their entries
    H = matrix_of(est, lists)
    expected = est.predict(H).tocoo()
    np.testing.assert_allclose(torch_scores[expected.row, expected.col], expected.data, **TOL)
    # recommend's (raw) scores of every item for the same histories
    rec_ids, rec_scores = est.recommend(lists, k=len(items), exclude_seen=False)
    raw = np.empty_like(rec_scores)
    for row in range(len(lists)):
        raw[row, [items.index(i) for i in rec_ids[row]]] = rec_scores[row]
    post = -np.logaddexp(0, -raw) if est.loss == "bce" else log_softmax(raw, axis=1)
    np.testing.assert_allclose(torch_scores, post, **TOL)
    # the same histories as a table (ordered by time) and as a matrix
    table = pd.DataFrame(
        [(r, item, -t) for r, h in enumerate(lists) for t, item in enumerate(h[::-1])
         if item in items],
        columns=["user", "item", "timestamp"],
    )
    np.testing.assert_array_equal(prepare_inputs(est, table)["sequences"], seqs)
    np.testing.assert_array_equal(prepare_inputs(est, H)["sequences"], seqs)


@pytest.mark.parametrize("name", ["lstm-softmax", "attention-softmax"])
def test_sequence_model_by_user_index(name, fitted, program, onnx_session):
    est = fitted(name)
    users = all_users(est)
    feeds = prepare_inputs(est, users, inputs="users")
    np.testing.assert_array_equal(feeds["users"], np.arange(N_USERS + 1))
    expected = predicted(est, users)
    np.testing.assert_allclose(run_torch(program(name, "users"), feeds), expected, **TOL)
    if name == "attention-softmax":  # and the raw scores, as recommend gives them
        raw = run_onnx(onnx_session(name, inputs="users", scores="raw"), feeds)
        np.testing.assert_allclose(log_softmax(raw, axis=1), expected, **TOL)


def test_training_histories_as_sequences(fitted, data):
    est = fitted("attention-softmax")
    X, _ = data
    seqs = prepare_inputs(est, ["u3", UNKNOWN])["sequences"]
    history = X[X.user == "u3"].sort_values("timestamp").item.to_numpy()[-MAX_LEN:]
    expected = np.searchsorted(est.item_ids_, history) + 1
    np.testing.assert_array_equal(seqs[0, MAX_LEN - len(history):], expected)
    assert not seqs[0, : MAX_LEN - len(history)].any() and not seqs[1].any()


# -- what the graphs hold ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["mf-neumf-bce", "cnn-images", "lstm-softmax"])
def test_graph_holds_no_training_code(name, fitted):
    est = fitted(name)
    module = est.net_.module_
    before = predicted(est, all_users(est)[:3])
    exported = to_torch_export(est)
    targets = " ".join(str(node.target) for node in exported.graph.nodes)
    for op in ("dropout", "rand", "bernoulli", "batch_norm"):
        assert op not in targets
    # the estimator is left as it was
    assert module is est.net_.module_ and not module.training
    np.testing.assert_array_equal(predicted(est, all_users(est)[:3]), before)


def test_onnx_opset_version(fitted, tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "mf.onnx"
    program = to_onnx(fitted("mf-dot-mse"), path, opset_version=18)
    model = onnx.load(path)
    assert {op.domain: op.version for op in model.opset_import}[""] == 18
    assert program.model_proto.graph.output[0].name == "scores"


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", [Popularity, ItemKNN, EASE])
def test_baselines_are_refused(baseline, data, tmp_path):
    X, _ = data
    est = baseline().fit(X)
    with pytest.raises(TypeError, match=f"{baseline.__name__} is a baseline"):
        to_torch_export(est)
    with pytest.raises(TypeError, match="baseline"):
        prepare_inputs(est, ["u0"])


def test_not_a_recommender():
    with pytest.raises(TypeError, match="got LinearRegression"):
        to_torch_export(LinearRegression())
    with pytest.raises(NotFittedError):
        to_torch_export(MatrixFactorization())


def test_bad_options(fitted):
    mf, lstm = fitted("mf-dot-mse"), fitted("lstm-softmax")
    with pytest.raises(ValueError, match="inputs must be one of .* got 'items'"):
        to_torch_export(mf, inputs="items")
    with pytest.raises(ValueError, match="only the sequence models"):
        to_torch_export(mf, inputs="sequences")
    with pytest.raises(ValueError, match="scores must be one of .* got 'proba'"):
        to_torch_export(lstm, scores="proba")
    with pytest.raises(ValueError, match="only the sequence models"):
        prepare_inputs(mf, ["u0"], inputs="sequences")


def test_bad_prepare_inputs(fitted, data):
    mf, lstm = fitted("mf-dot-mse"), fitted("lstm-softmax")
    X, _ = data
    with pytest.raises(ValueError, match="fold-in.*MatrixFactorization.transform"):
        prepare_inputs(mf, X.head(3))
    with pytest.raises(ValueError, match="inputs='sequences'"):
        prepare_inputs(lstm, [["i01"]], inputs="users")
    with pytest.raises(ValueError, match="1-D"):
        prepare_inputs(mf, [["u0", "u1"]])
    strict = MatrixFactorization(handle_unknown="error", **MF).fit(X, data[1]["ratings"])
    with pytest.raises(ValueError, match="not seen during fit: 'nobody'"):
        prepare_inputs(strict, ["u0", UNKNOWN])


def test_onnx_path_folder_must_exist(fitted, tmp_path):
    pytest.importorskip("onnxscript")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_onnx(fitted("mf-dot-mse"), tmp_path / "missing" / "mf.onnx")


def test_missing_onnx_dependencies(fitted, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r'sklearn_recsys\[export\]'):
        to_onnx(fitted("mf-dot-mse"), tmp_path / "mf.onnx")
    assert not (tmp_path / "mf.onnx").exists()


def test_bad_graph_inputs(program, onnx_session):
    session = onnx_session("mf-dot-bce")
    out_of_range = np.array([N_USERS + 1])
    with pytest.raises(IndexError):
        run_torch(program("mf-dot-bce"), {"users": out_of_range})
    with pytest.raises(Exception, match="out of data bounds|indices"):
        run_onnx(session, {"users": out_of_range})
    with pytest.raises(Exception, match="int32|data type"):
        run_onnx(session, {"users": np.array([0], dtype=np.int32)})
    too_long = {"sequences": np.zeros((1, MAX_LEN + 1), dtype=np.int64)}
    with pytest.raises(AssertionError, match=f"sequences.size\\(\\)\\[1\\] == {MAX_LEN}"):
        run_torch(program("lstm-bce"), too_long)
