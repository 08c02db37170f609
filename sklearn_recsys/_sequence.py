"""Sequential recommenders: ``LSTMRecommender`` and ``AttentionRecommender``.

Both read each user's interactions as a sequence ordered in time and learn to
predict the next item; everything they share is
:class:`~sklearn_recsys._neural.SequenceRecommender`.
"""

import numbers

from sklearn.utils._param_validation import Interval

from ._docs import fill_doc
from ._neural import SequenceRecommender
from .nn._sequence import LSTMEncoder, SelfAttentionEncoder

__all__ = ["AttentionRecommender", "LSTMRecommender"]


@fill_doc
class LSTMRecommender(SequenceRecommender):
    """Next-item recommender with a stacked LSTM over the user's sequence.

    Each user's interactions, ordered in time, are read by an LSTM over
    item embeddings; the state after each item scores the catalogue for the
    next one (``h . e_i + b_i`` with the input item embeddings tied to the
    output ones). Training maximises the likelihood of the next item at every
    position of every user's sequence, on mini-batches of padded sequences
    sliced from tensors on ``device``.

    Input follows the package's two conventions, with an order:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col``, ``item_col`` and ``time_col``): each user's rows
      ordered by time (ties keep their row order). Without a ``time_col``
      column the row order is the order;
    * a **user x item matrix** (scipy sparse or dense): rows are users,
      stored (non-zero, for dense) entries are interactions and their
      values give the order -- a smaller value is an earlier interaction,
      ties by column index (e.g. a matrix of timestamps or of ranks).

    Parameters
    ----------
    embedding_dim : int, default=64
        Dimension of the item embeddings and of the LSTM states.
    max_len : int, default=50
        Number of items the model reads at once: a recommendation reads the
        ``max_len`` most recent items of a history; training cuts every
        history into windows of ``max_len`` items, so every position of a
        long history is trained on (at a cost linear in its length).
    n_layers : int, default=2
        Number of stacked LSTM layers.
    dropout : float, default=0.3
        Dropout on the embeddings, between LSTM layers and on the states.
    %(sequence_loss)s
    alpha : float, default=0.0
        L2 penalty (Adam's weight decay) on all the weights.
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=64
        Training windows per mini-batch: one per ``max_len`` positions of a
        user's history (a short history is one window).
    learning_rate_init : float, default=5e-3
        Adam's learning rate (chosen on validation splits of MovieLens-100K
        and latest-small, ``benchmarks/tune_defaults.py``).
    %(sequence_solver)s
    %(early_stopping_sequences)s
    %(privacy)s
    %(sequence_item_attributes)s
    handle_unknown : {"fallback", "error"}, default="fallback"
        Unknown user ids: ``"fallback"`` gives them an empty history (zero
        state, so items are ranked by their learned bias, a popularity
        prior); ``"error"`` raises. Unknown items in new histories are
        dropped under ``"fallback"``; unknown items in ``predict`` get logit
        0.
    %(id_columns)s
    %(time_column)s
    %(neural_runtime)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is an
        :class:`~sklearn_recsys.nn.LSTMEncoder`.
    %(id_attributes)s
    item_embeddings_ : ndarray of shape (n_items, embedding_dim)
        Output (tied) item embeddings.
    %(neural_attributes)s
    %(privacy_attributes)s

    See Also
    --------
    AttentionRecommender : The same task with causal self-attention (SASRec).

    Notes
    -----
    ``recommend`` also accepts histories of users unseen at fit (a list of
    lists of item ids, an interaction table or a matrix) and encodes them
    without refitting; ``transform`` returns the state after each history.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import LSTMRecommender
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3, 3, 3],
    ...                   "item": ["a", "b", "c", "a", "b", "b", "c", "a"],
    ...                   "timestamp": [1, 2, 3, 1, 2, 1, 2, 3]})
    >>> model = LSTMRecommender(embedding_dim=8, max_iter=2, random_state=0)
    >>> model = model.fit(X)
    >>> item_ids, scores = model.recommend([2], k=1)
    >>> item_ids.shape
    (1, 1)
    >>> item_ids, scores = model.recommend([["a"], ["b", "c"]], k=2)
    >>> item_ids.shape
    (2, 2)
    >>> new = pd.DataFrame({"user": ["x", "x"], "item": ["a", "b"],
    ...                     "timestamp": [5, 6]})
    >>> model.transform(new).shape
    (1, 8)
    """

    _parameter_constraints = {
        **SequenceRecommender._parameter_constraints,
        "n_layers": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self, *, embedding_dim=64, max_len=50, n_layers=2, dropout=0.3, loss="auto",
        n_negatives="auto", alpha=0.0, max_iter=20, batch_size=64, learning_rate_init=5e-3,
        solver="auto", early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
        warm_start=False, differential_privacy=None, item_attributes=None,
        user_attributes=None,
        handle_unknown="fallback", user_col="user", item_col="item", time_col="timestamp",
        device="cpu", callbacks=None, verbose=0, random_state=None, accelerator=None,
        **kwargs,
    ):
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.n_layers = n_layers
        self.dropout = dropout
        self.loss = loss
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.differential_privacy = differential_privacy
        self.item_attributes = item_attributes
        self.user_attributes = user_attributes
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.accelerator = accelerator
        self._store_net_params(kwargs)

    def _build_module(self, fit, training):
        module = LSTMEncoder(**self._module_kwargs(
            n_items=fit.n_items, embedding_dim=self.embedding_dim, max_len=self.max_len,
            n_layers=self.n_layers, dropout=self.dropout,
            **self._attribute_sizes_of(fit, training),
            sparse=self._sparse_solver(fit),
        ))
        self._fill_attribute_rows(module, fit, training)
        return module


@fill_doc
class AttentionRecommender(SequenceRecommender):
    """Next-item recommender with causal self-attention (SASRec).

    Each user's interactions, ordered in time, are read by a stack of
    ``n_blocks`` transformer blocks (causal multi-head self-attention and a
    feed-forward network, with learned positional embeddings, layer norm and
    dropout; Kang & McAuley, 2018); the state after each item scores the
    catalogue for the next one (``h . e_i + b_i``, item embeddings tied
    between input and output). Training maximises the likelihood of the next
    item at every position of every user's sequence.

    Input follows the package's two conventions, with an order:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col``, ``item_col`` and ``time_col``): each user's rows
      ordered by time (ties keep their row order). Without a ``time_col``
      column the row order is the order;
    * a **user x item matrix** (scipy sparse or dense): rows are users,
      stored (non-zero, for dense) entries are interactions and their
      values give the order -- a smaller value is an earlier interaction,
      ties by column index (e.g. a matrix of timestamps or of ranks).

    Parameters
    ----------
    embedding_dim : int, default=64
        Model dimension (item and positional embeddings, hidden states);
        divisible by ``n_heads``.
    max_len : int, default=50
        Number of items the model reads at once (and of positional
        embeddings): a recommendation reads the ``max_len`` most recent items
        of a history; training cuts every history into windows of
        ``max_len`` items, so every position of a long history is trained on
        (at a cost linear in its length).
    n_blocks : int, default=2
        Number of transformer blocks.
    n_heads : int, default=1
        Attention heads per block.
    dropout : float, default=0.3
        Dropout on the embeddings and the residual branches (not on the
        attention weights).
    %(sequence_loss)s
    alpha : float, default=0.0
        L2 penalty (Adam's weight decay) on all the weights.
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=64
        Training windows per mini-batch: one per ``max_len`` positions of a
        user's history (a short history is one window).
    learning_rate_init : float, default=5e-3
        Adam's learning rate (chosen on validation splits of MovieLens-100K
        and latest-small, ``benchmarks/tune_defaults.py``).
    %(sequence_solver)s
    %(early_stopping_sequences)s
    %(privacy)s
    %(sequence_item_attributes)s
    handle_unknown : {"fallback", "error"}, default="fallback"
        Unknown user ids: ``"fallback"`` gives them an empty history (zero
        state, so items are ranked by their learned bias, a popularity
        prior); ``"error"`` raises. Unknown items in new histories are
        dropped under ``"fallback"``; unknown items in ``predict`` get logit
        0.
    %(id_columns)s
    %(time_column)s
    %(neural_runtime)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is a
        :class:`~sklearn_recsys.nn.SelfAttentionEncoder`.
    %(id_attributes)s
    item_embeddings_ : ndarray of shape (n_items, embedding_dim)
        Output (tied) item embeddings.
    %(neural_attributes)s
    %(privacy_attributes)s

    See Also
    --------
    LSTMRecommender : The same task with a stacked LSTM.

    Notes
    -----
    ``recommend`` also accepts histories of users unseen at fit (a list of
    lists of item ids, an interaction table or a matrix) and encodes them
    without refitting; ``transform`` returns the state after each history.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_recsys import AttentionRecommender
    >>> # user x item matrix: stored values give the order (1 = first)
    >>> X = np.array([[1, 2, 3, 0],
    ...               [0, 1, 2, 3],
    ...               [3, 0, 1, 2]])
    >>> model = AttentionRecommender(embedding_dim=8, max_iter=2, random_state=0)
    >>> model = model.fit(X)
    >>> item_ids, scores = model.recommend([0, 1], k=1)
    >>> item_ids.shape
    (2, 1)
    >>> model.recommend([[2, 3]], k=2)[0].shape
    (1, 2)
    >>> model.predict(X).shape
    (3, 4)
    """

    _parameter_constraints = {
        **SequenceRecommender._parameter_constraints,
        "n_blocks": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self, *, embedding_dim=64, max_len=50, n_blocks=2, n_heads=1, dropout=0.3,
        loss="auto", n_negatives="auto", alpha=0.0, max_iter=20, batch_size=64,
        learning_rate_init=5e-3, solver="auto", early_stopping=False, validation_fraction=0.1,
        n_iter_no_change=5, tol=1e-4, warm_start=False, differential_privacy=None,
        item_attributes=None, user_attributes=None, handle_unknown="fallback",
        user_col="user", item_col="item",
        time_col="timestamp", device="cpu", callbacks=None, verbose=0, random_state=None,
        accelerator=None, **kwargs,
    ):
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.dropout = dropout
        self.loss = loss
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.differential_privacy = differential_privacy
        self.item_attributes = item_attributes
        self.user_attributes = user_attributes
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.accelerator = accelerator
        self._store_net_params(kwargs)

    def _check_params(self):
        super()._check_params()
        if self.embedding_dim % self.n_heads:
            raise ValueError(
                f"embedding_dim={self.embedding_dim} must be divisible by "
                f"n_heads={self.n_heads}."
            )

    def _build_module(self, fit, training):
        module = SelfAttentionEncoder(**self._module_kwargs(
            n_items=fit.n_items, embedding_dim=self.embedding_dim, max_len=self.max_len,
            n_blocks=self.n_blocks, n_heads=self.n_heads, dropout=self.dropout,
            **self._attribute_sizes_of(fit, training),
            sparse=self._sparse_solver(fit),
        ))
        self._fill_attribute_rows(module, fit, training)
        return module
