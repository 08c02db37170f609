"""Export the scoring path of a fitted neural recommender (``torch.export``, ONNX).

A fitted :class:`~sklearn_recsys.MatrixFactorization`,
:class:`~sklearn_recsys.CNNRecommender`,
:class:`~sklearn_recsys.LSTMRecommender` or
:class:`~sklearn_recsys.AttentionRecommender` becomes one graph from the user
side to the scores of every item: :func:`to_torch_export` returns a
:class:`torch.export.ExportedProgram`, :func:`to_onnx` writes an ONNX file
(through ``torch.onnx.export(..., dynamo=True)``) that onnxruntime runs
without PyTorch or this package. :func:`prepare_inputs` turns raw ids and
histories into the graph's input, as the estimators do.

**What a graph takes.** One int64 input, its first dimension ``batch``
dynamic (any number of users, one included):

* ``inputs="users"`` -- input ``users`` of shape ``(batch,)``: user indices,
  i.e. positions in ``estimator.user_ids_``; index ``n_users`` (one past the
  last) is a user unknown at fit, scored as the estimator's
  ``handle_unknown="fallback"`` scores it (biases only for the factorization
  models, the empty history for the sequence models). The default for
  :class:`~sklearn_recsys.MatrixFactorization` and
  :class:`~sklearn_recsys.CNNRecommender`, and for the sequence models fitted
  with ``user_attributes``; the other sequence models accept it too (the
  graph then holds each user's training history, and user token).
* ``inputs="sequences"`` (sequence models only, the default of those without
  ``user_attributes``) -- input ``sequences`` of shape ``(batch, max_len)``:
  each row a history encoded as the estimators encode them, item index + 1
  (the index in ``estimator.item_ids_``, shifted so that 0 is padding), most
  recent item last, left-padded with 0, only the ``max_len`` most recent
  items kept. A row of zeros is the empty history (an unknown user). Each
  history is read as a new user's: with ``user_attributes``, after the
  unknown user's (zero) token, as ``recommend`` reads histories of new
  users; known users are scored with their own tokens by ``"users"``.

Raw ids map to indices through ``estimator.user_ids_`` and
``estimator.item_ids_`` (index ``i`` is the id ``user_ids_[i]``); for a model
fitted on a user x item matrix they are the row and column indices.
:func:`prepare_inputs` does this mapping (unknown ids follow the estimator's
``handle_unknown``), the padding and the truncation.

**What a graph returns.** One float32 output ``scores`` of shape
``(batch, n_items)``: column ``j`` scores the item ``estimator.item_ids_[j]``.
With ``scores="predict"`` (the default) it is the value ``predict`` returns
for that (user, item) pair, after the estimator's post-processing: the
sigmoid for ``loss="bce"`` of the factorization and CNN models, the
log-softmax over the catalogue (``loss="softmax"``) or the log-sigmoid
(``loss="bce"``) of the sequence models, the model's score otherwise. With
``scores="raw"`` it is the model's score before that post-processing, which
is what ``recommend`` returns as scores. The post-processing is increasing
along a row, so both rank the items of a user alike: the top columns of a
row are ``recommend``'s items (``recommend`` also leaves out the items a user
interacted with, ``exclude_seen``, which the graph does not, and ranks equal
scores by item index).

**What a graph holds.** The network in evaluation mode (no dropout, the
batch-norm running statistics), nothing of training, on the CPU in float32.
Models linear in the user representation (biased MF, the CNN hybrid) are
exported as their scoring algebra, ``users -> U[users] @ Q.T + offset``,
with every user's representation ``U`` and every item's vector and offset
``Q``/``offset`` computed at export time: for
:class:`~sklearn_recsys.CNNRecommender` the image/text towers run then, once
per item, and are not part of the graph (items registered after an export
need a new export). Users folded in from histories (``transform``) are not
part of any graph of the factorization models.

**What a graph checks.** Nothing beyond what its operators check: an index
past the end of a table (``users > n_users``, a sequence entry
``> n_items``) raises in both runtimes, a wrong dtype or rank in
onnxruntime, but ONNX's ``Gather`` wraps negative indices around (``-1`` is
the last row) where PyTorch raises. Build the inputs with
:func:`prepare_inputs`, which validates them as the estimator does.

Exporting to ONNX needs the ``export`` extra:
``pip install -c constraints.txt "sklearn_recsys[export]"`` (onnx and
onnxscript to export, onnxruntime to run the file).
"""

import copy
import importlib
import logging
import os
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from ._base import BaseRecommender, _check_users_1d, _refuse_int8_compute
from ._input import as_input
from ._neural import NeuralRecommender, PairRecommender, SequenceRecommender
from ._sequence_data import left_padded, ordered
from .nn import LinearItemScorer

__all__ = ["prepare_inputs", "to_onnx", "to_torch_export"]

_INPUTS = ("auto", "users", "sequences")
_SCORES = ("predict", "raw")
# Users in the example input of the exports (not 0 or 1: torch.export would
# specialise the batch dimension on them).
_EXAMPLE_BATCH = 2
_EXTRA = 'pip install -c constraints.txt "sklearn_recsys[export]"'


# -- the exported modules ------------------------------------------------------


class _PostProcess(nn.Module):
    """The estimator's mapping of raw scores to ``predict`` values."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, scores):
        scores = scores.float()
        if self.kind == "sigmoid":
            return torch.sigmoid(scores)
        if self.kind == "log_softmax":
            return F.log_softmax(scores, dim=1)
        if self.kind == "logsigmoid":
            return F.logsigmoid(scores)
        return scores


class _LinearScores(nn.Module):
    """``scores = post(user_table[users] @ q_aug.T + offset)`` (biased MF, CNN)."""

    def __init__(self, user_table, q_aug, offset, post):
        super().__init__()
        self.register_buffer("user_table", user_table)
        self.register_buffer("q_aug", q_aug)
        self.register_buffer("offset", offset)
        self.post = _PostProcess(post)

    def forward(self, users):
        user_repr = F.embedding(users, self.user_table)
        return self.post(torch.addmm(self.offset[None, :], user_repr, self.q_aug.T))


class _ScorerScores(nn.Module):
    """``scores = post(score_all(user_representation(x)))`` of a copied scorer.

    ``x`` is what the scorer's ``user_representation`` reads (user indices,
    or padded sequences); with ``histories`` (an int64 ``(n_users + 1, L)``
    table), ``x`` is user indices and the scorer reads their rows.
    """

    def __init__(self, module, post, histories=None):
        super().__init__()
        self.module = module
        self.post = _PostProcess(post)
        if histories is not None:
            self.register_buffer("histories", histories)
        else:
            self.histories = None

    def forward(self, x):
        if self.histories is None:
            return self.post(self.module.score_all(self.module.user_representation(x)))
        # a sequence encoder reads the user's history (after its user token)
        user_repr = self.module.user_representation(self.histories[x], users=x)
        return self.post(self.module.score_all(user_repr))


class _UsersInput(nn.Module):
    """Names the graph's input ``users``."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, users):
        return self.scores(users)


class _SequencesInput(nn.Module):
    """Names the graph's input ``sequences``."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, sequences):
        return self.scores(sequences)


# -- checks ----------------------------------------------------------------------


def _check_estimator(estimator):
    """A fitted neural recommender of this package, or a TypeError."""
    if isinstance(estimator, NeuralRecommender):
        check_is_fitted(estimator, "net_")
        _refuse_int8_compute(estimator, "sklearn_recsys.export")
        if isinstance(estimator, (PairRecommender, SequenceRecommender)):
            return estimator
    if isinstance(estimator, BaseRecommender) and not isinstance(estimator, NeuralRecommender):
        raise TypeError(
            f"{type(estimator).__name__} is a baseline scored from its training "
            "matrix, which sklearn_recsys.export does not export; it exports the "
            "neural recommenders (MatrixFactorization, CNNRecommender, "
            "LSTMRecommender, AttentionRecommender). Serve a baseline with its "
            "recommend() or predict(), or save it with sklearn_recsys.save."
        )
    raise TypeError(
        "sklearn_recsys.export exports a fitted neural recommender of "
        "sklearn_recsys (MatrixFactorization, CNNRecommender, LSTMRecommender, "
        f"AttentionRecommender); got {type(estimator).__name__}."
    )


def _resolve_inputs(estimator, inputs):
    """``"users"`` or ``"sequences"``: what the graph of ``estimator`` reads."""
    if not isinstance(inputs, str) or inputs not in _INPUTS:
        raise ValueError(
            f"inputs must be one of {', '.join(map(repr, _INPUTS))}; got {inputs!r}."
        )
    sequential = isinstance(estimator, SequenceRecommender)
    if inputs == "auto":  # user tokens: the users' own, by index
        tokens = sequential and estimator._module().user_attributes is not None
        return "sequences" if sequential and not tokens else "users"
    if inputs == "sequences" and not sequential:
        raise ValueError(
            f"inputs='sequences' reads item histories, which only the sequence "
            f"models (LSTMRecommender, AttentionRecommender) score; "
            f"{type(estimator).__name__} scores users by index: use "
            "inputs='users' (or 'auto')."
        )
    return inputs


def _check_scores(scores):
    if not isinstance(scores, str) or scores not in _SCORES:
        raise ValueError(
            f"scores must be one of {', '.join(map(repr, _SCORES))}; got {scores!r}."
        )


def _post_processing(estimator):
    """Name of the estimator's ``_postprocess_scores``/``_score_pairs`` mapping."""
    if isinstance(estimator, SequenceRecommender):
        return "logsigmoid" if estimator.loss == "bce" else "log_softmax"
    return "sigmoid" if estimator.loss == "bce" else None


def _cpu_float(tensor):
    return tensor.detach().to("cpu", torch.float32).clone()


def _cpu_copy(module):
    """A float32 CPU copy of ``module`` in evaluation mode, without gradients."""
    module = copy.deepcopy(module).to("cpu", torch.float32).eval()
    return module.requires_grad_(False)


def _training_sequences(estimator, users_idx):
    """Left-padded ``(n, max_len)`` training histories of user indices.

    Index ``n_users`` (unknown user) gets the empty history (a row of zeros),
    as in ``SequenceRecommender._known_user_repr``.
    """
    indptr = np.r_[estimator._history_indptr, estimator._history_indptr[-1]]
    users_idx = np.asarray(users_idx, dtype=np.int64)
    return left_padded(
        estimator._history_items, indptr[users_idx], indptr[users_idx + 1],
        estimator.max_len,
    )


def _scoring_module(estimator, inputs, scores):
    """The module exported for ``estimator`` and its example input."""
    module = estimator._module()
    post = _post_processing(estimator) if scores == "predict" else None
    n_users = len(estimator._user_index)
    if inputs == "sequences":
        graph = _ScorerScores(_cpu_copy(module), post)
        example = torch.zeros((_EXAMPLE_BATCH, estimator.max_len), dtype=torch.long)
        return _SequencesInput(graph).eval(), example
    example = torch.zeros(_EXAMPLE_BATCH, dtype=torch.long)
    if isinstance(estimator, SequenceRecommender):
        histories = _training_sequences(estimator, np.arange(n_users + 1))
        graph = _ScorerScores(_cpu_copy(module), post, torch.as_tensor(histories))
    elif isinstance(module, LinearItemScorer):
        with module.scoring():
            users = torch.arange(n_users + 1, device=estimator._device())
            user_table = module.user_representation(users)
            q_aug, offset = module.item_linear_terms()
            graph = _LinearScores(
                _cpu_float(user_table), _cpu_float(q_aug), _cpu_float(offset), post
            )
    else:
        graph = _ScorerScores(_cpu_copy(module), post)
    return _UsersInput(graph).eval(), example


@contextmanager
def _quiet_exporters():
    """Silence the exporters' notices that concern PyTorch, not the user."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "torchvision is not installed"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\).*",
                category=FutureWarning,
            )
            # nn.LSTM refreshes its _flat_weights list while traced; export
            # restores it and warns (pytorch/pytorch#163809): harmless.
            warnings.filterwarnings(
                "ignore", message=r"The tensor attributes .*_flat_weights",
                category=UserWarning,
            )
            yield
    finally:
        logger.setLevel(level)


def _require_onnx():
    """Import the ONNX exporter's dependencies, or say how to install them."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"to_onnx needs {' and '.join(missing)}, which are not installed. "
            f"Install the export extra: {_EXTRA} (onnx and onnxscript to "
            "export, onnxruntime to run the exported file)."
        )


# -- public API ------------------------------------------------------------------


def to_torch_export(estimator, *, inputs="auto", scores="predict"):
    """Export the scoring graph of a fitted neural recommender with ``torch.export``.

    The graph maps users (indices, or encoded histories) to the scores of
    every item, as ``predict`` scores them; its batch dimension is dynamic.
    See :mod:`sklearn_recsys.export` for what it takes and returns.

    Parameters
    ----------
    estimator : MatrixFactorization, CNNRecommender, LSTMRecommender or \
AttentionRecommender
        A fitted neural recommender; it is not modified.
    inputs : {"auto", "users", "sequences"}, default="auto"
        What the graph reads. ``"users"``: int64 user indices of shape
        ``(batch,)``, index ``n_users`` for an unknown user. ``"sequences"``
        (sequence models only): int64 encoded histories of shape
        ``(batch, max_len)``, read as new users' histories. ``"auto"``:
        ``"sequences"`` for the sequence models without ``user_attributes``,
        ``"users"`` for the others.
    scores : {"predict", "raw"}, default="predict"
        What the graph returns. ``"predict"``: the values ``predict``
        returns (post-processed: sigmoid, log-softmax or log-sigmoid
        depending on the model and its loss). ``"raw"``: the model's scores
        before that post-processing, as ``recommend`` returns them.

    Returns
    -------
    program : torch.export.ExportedProgram
        On the CPU, float32. ``program.module()(x)`` returns the scores of
        shape ``(batch, n_items)``, columns in the order of
        ``estimator.item_ids_``.

    Raises
    ------
    TypeError
        If ``estimator`` is not a neural recommender of this package (the
        baselines are not exported).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        For an unknown ``inputs`` or ``scores``, or ``inputs="sequences"``
        with a model that scores users by index.

    See Also
    --------
    to_onnx : The same graph as an ONNX file.
    prepare_inputs : The graph's input from raw ids or histories.

    Examples
    --------
    >>> import pandas as pd
    >>> import torch
    >>> from sklearn_recsys import MatrixFactorization
    >>> from sklearn_recsys.export import prepare_inputs, to_torch_export
    >>> X = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "b", "c", "a"]})
    >>> ratings = [5.0, 3.0, 4.0, 2.0, 1.0]
    >>> model = MatrixFactorization(n_components=4, max_iter=2, random_state=0)
    >>> model = model.fit(X, ratings)
    >>> program = to_torch_export(model)
    >>> feeds = prepare_inputs(model, [1, 3, 99])  # 99: unknown
    >>> feeds["users"]
    array([0, 2, 3])
    >>> scores = program.module()(torch.as_tensor(feeds["users"]))
    >>> scores.shape  # columns: model.item_ids_
    torch.Size([3, 3])
    >>> expected = model.predict(pd.DataFrame({"user": [1], "item": ["b"]}))
    >>> bool(abs(scores[0, 1].item() - expected[0]) < 1e-5)
    True
    """
    estimator = _check_estimator(estimator)
    inputs = _resolve_inputs(estimator, inputs)
    _check_scores(scores)
    module, example = _scoring_module(estimator, inputs, scores)
    batch = torch.export.Dim("batch")
    with _quiet_exporters():
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


def to_onnx(estimator, path, *, inputs="auto", scores="predict", opset_version=None):
    """Export the scoring graph of a fitted neural recommender to an ONNX file.

    The graph of :func:`to_torch_export`, converted by PyTorch's ONNX
    exporter (``torch.onnx.export(..., dynamo=True)``). Its input is named
    ``users`` or ``sequences`` (int64, first dimension ``batch`` dynamic),
    its output ``scores`` (float32, ``(batch, n_items)``); see
    :mod:`sklearn_recsys.export`. onnxruntime runs it without PyTorch.

    Parameters
    ----------
    estimator : MatrixFactorization, CNNRecommender, LSTMRecommender or \
AttentionRecommender
        A fitted neural recommender; it is not modified.
    path : str or path-like
        File to write (its directory must exist). A model over 2 GB keeps its
        weights in a data file next to it.
    inputs : {"auto", "users", "sequences"}, default="auto"
        What the graph reads, see :func:`to_torch_export`.
    scores : {"predict", "raw"}, default="predict"
        What the graph returns, see :func:`to_torch_export`.
    opset_version : int, default=None
        ONNX opset of the file; PyTorch's default when None.

    Returns
    -------
    onnx_program : torch.onnx.ONNXProgram
        The exported program (``onnx_program.model_proto`` is the ONNX
        model), already saved to ``path``.

    Raises
    ------
    ImportError
        If onnx or onnxscript is missing (install the ``export`` extra:
        ``pip install -c constraints.txt "sklearn_recsys[export]"``).
    FileNotFoundError
        If the folder of ``path`` does not exist.
    TypeError
        If ``estimator`` is not a neural recommender of this package.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        For an unknown ``inputs`` or ``scores`` (see :func:`to_torch_export`).

    See Also
    --------
    to_torch_export : The same graph as a :class:`torch.export.ExportedProgram`.
    prepare_inputs : The graph's input from raw ids or histories.

    Examples
    --------
    >>> import os, tempfile
    >>> import onnxruntime
    >>> import pandas as pd
    >>> from sklearn_recsys import LSTMRecommender
    >>> from sklearn_recsys.export import prepare_inputs, to_onnx
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3, 3, 3],
    ...                   "item": ["a", "b", "c", "a", "b", "b", "c", "a"],
    ...                   "timestamp": [1, 2, 3, 1, 2, 1, 2, 3]})
    >>> model = LSTMRecommender(embedding_dim=8, max_len=4, max_iter=2, random_state=0)
    >>> model = model.fit(X)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "lstm.onnx")
    ...     _ = to_onnx(model, path)
    ...     session = onnxruntime.InferenceSession(path)
    ...     feeds = prepare_inputs(model, [["a", "b"], ["c"]])
    ...     (scores,) = session.run(["scores"], feeds)
    >>> feeds["sequences"]
    array([[0, 0, 1, 2],
           [0, 0, 0, 3]])
    >>> scores.shape  # log-probabilities of the next item, columns: model.item_ids_
    (2, 3)
    """
    _require_onnx()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Cannot write {path!r}: the folder {folder!r} does not exist."
        )
    program = to_torch_export(estimator, inputs=inputs, scores=scores)
    with _quiet_exporters():
        onnx_program = torch.onnx.export(
            program, dynamo=True, opset_version=opset_version, output_names=["scores"],
            dynamic_shapes=({0: "batch"},), verbose=False,
        )
    onnx_program.save(path)
    return onnx_program


def prepare_inputs(estimator, X, *, inputs="auto"):
    """The input of an exported graph for raw user ids or item histories.

    Maps raw ids to indices through ``estimator.user_ids_`` and
    ``estimator.item_ids_`` exactly as the estimator does (unknown ids follow
    its ``handle_unknown``) and, for ``inputs="sequences"``, encodes
    histories as the estimator does: item index + 1, the ``max_len`` most
    recent items, left-padded with 0.

    Parameters
    ----------
    estimator : MatrixFactorization, CNNRecommender, LSTMRecommender or \
AttentionRecommender
        The fitted recommender the graph was exported from.
    X : array-like of shape (n_users,), list of lists, DataFrame or matrix
        Raw ids of users seen at fit; an unknown one gets index ``n_users``
        (the empty history for ``"sequences"``) under
        ``handle_unknown="fallback"`` and raises under ``"error"``. For
        ``inputs="sequences"`` also histories of new users, as
        :meth:`recommend` reads them: a list of lists of item ids (oldest
        first), an interaction table (ordered by ``time_col``) or a user x
        item matrix (ordered by value); unknown items are dropped under
        ``"fallback"``.
    inputs : {"auto", "users", "sequences"}, default="auto"
        The ``inputs`` the graph was exported with.

    Returns
    -------
    feeds : dict of str to ndarray
        ``{"users": int64 array of shape (n_users,)}`` or
        ``{"sequences": int64 array of shape (n_users, max_len)}``: the
        graph's input by name, e.g. for ``InferenceSession.run(None, feeds)``.

    Raises
    ------
    ValueError
        For unknown ids under ``handle_unknown="error"``, histories given to
        a model that scores users by index, or malformed ids.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import AttentionRecommender
    >>> from sklearn_recsys.export import prepare_inputs
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2],
    ...                   "item": ["a", "b", "c", "c", "a"],
    ...                   "timestamp": [1, 2, 3, 1, 2]})
    >>> model = AttentionRecommender(embedding_dim=4, max_len=2, max_iter=1,
    ...                              random_state=0).fit(X)
    >>> prepare_inputs(model, [1, 2, 9])  # training histories, 9 is unknown
    {'sequences': array([[2, 3],
           [3, 1],
           [0, 0]])}
    >>> prepare_inputs(model, [1, 2, 9], inputs="users")
    {'users': array([0, 1, 2])}
    """
    estimator = _check_estimator(estimator)
    inputs = _resolve_inputs(estimator, inputs)
    X = as_input(X)
    if estimator._is_history_input(X):
        if inputs == "users":
            raise ValueError(
                "Histories of new users need their own representation (fold-in), "
                "which a graph exported with inputs='users' does not hold: pass raw "
                "ids of users seen at fit"
                + (
                    ", or export with inputs='sequences'."
                    if isinstance(estimator, SequenceRecommender)
                    else f", or fold them in with {type(estimator).__name__}.transform "
                    "/ recommend."
                )
            )
        histories, _ = estimator._histories(X, id_lists=True)
        keys = histories.times if histories.times is not None else histories.values
        flat, indptr = ordered(histories, keys)
        seqs = left_padded(flat, indptr[:-1], indptr[1:], estimator.max_len)
        return {"sequences": seqs}
    users_idx = estimator._map_users(_check_users_1d(X)).astype(np.int64)
    if inputs == "users":
        return {"users": users_idx}
    return {"sequences": _training_sequences(estimator, users_idx)}
