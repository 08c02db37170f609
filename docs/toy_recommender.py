"""A complete recommender written against the hooks of sklearn_recsys.

The worked example of the developer guide ("Adding a recommender"). The test
suite runs it through scikit-learn's estimator checks and the package's
recommend contract (``tests/test_common.py``).

``DotProductRecommender`` scores a (user, item) pair by the dot product of
two learned vectors. Everything else -- input conventions, ids, training
through skorch, negative sampling, early stopping, warm start, fold-in of
new users, ``predict``/``recommend``/``score`` -- comes from the bases.
"""

import numbers

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from sklearn_recsys._neural import PairRecommender
from sklearn_recsys.nn import LinearItemScorer
from sklearn_recsys.nn._protocol import augmented


class DotScorer(LinearItemScorer):
    """``score(u, i) = p_u . q_i``: the network, a pure torch module.

    Row ``n_users`` (``n_items``) of each table is the zero fallback for ids
    unknown at fit. A user representation is ``[p_u, 0]``: the protocol of a
    linear item scorer keeps a last column for a user bias, none here.
    """

    def __init__(self, n_users, n_items, n_components):
        super().__init__()
        self.n_items = n_items
        self.users = nn.Embedding(n_users + 1, n_components, padding_idx=n_users)
        self.items = nn.Embedding(n_items + 1, n_components, padding_idx=n_items)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """N(0, 0.1) vectors from the fit's generator, zero fallback rows."""
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=0.1, generator=generator)
            with torch.no_grad():
                table.weight[-1].zero_()

    def user_representation(self, users):
        p = self.users(users)
        return torch.cat([p, torch.zeros_like(p[:, :1])], dim=1)

    def item_linear_terms(self, items=None):
        q = self.items.weight[: self.n_items] if items is None else self.items(items)
        return augmented(q, torch.zeros_like(q[..., 0]), 0.0)

    def forward(self, users, items, neg_items=None):
        """Training output ``(pos, neg, penalty)`` read by the pair losses."""
        u = self.user_representation(users)
        pos = self.score_pairs(u, items)
        neg = None
        if neg_items is not None:
            neg = (u[:, None, :] * self.item_linear_terms(neg_items)[0]).sum(-1)
        penalty = (u * u).sum(-1) + (self.items(items) ** 2).sum(-1)
        return pos, neg, penalty


class DotProductRecommender(PairRecommender):
    """Dot-product matrix factorization: the estimator, hooks only.

    Parameters are those of :class:`~sklearn_recsys.MatrixFactorization`
    with the same meaning (a subset of them), skorch's ``**kwargs``
    included.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]])
    >>> model = DotProductRecommender(max_iter=5, random_state=0).fit(X)
    >>> model.recommend([0], k=2)[0].shape
    (1, 2)
    """

    # the network class that loading a saved model (skops, sklearn_recsys.load)
    # may rebuild besides sklearn_recsys.nn's
    _portable_modules = (DotScorer,)

    _parameter_constraints = {
        **PairRecommender._parameter_constraints,
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "loss": [StrOptions({"mse", "bce", "bpr"})],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self, *, n_components=16, loss="bpr", n_negatives=4, alpha=1e-4,
        max_iter=20, batch_size=256, learning_rate_init=1e-2,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
        tol=1e-4, warm_start=False, handle_unknown="fallback", user_col="user",
        item_col="item", device="cpu", callbacks=None, verbose=0,
        random_state=None, **kwargs,
    ):
        self.n_components = n_components
        self.loss = loss
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self._store_net_params(kwargs)  # skorch's own: lr, module__*, ...

    def _build_module(self, fit, training):
        return DotScorer(**self._module_kwargs(
            n_users=fit.n_users, n_items=fit.n_items, n_components=self.n_components
        ))
