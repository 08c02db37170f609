"""Matrix factorization (biased MF and NeuMF) as a scikit-learn estimator."""

import numbers

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender
from ._fold_in import fold_in_gradient, fold_in_ridge
from ._neural import NeuralRecommenderMixin, PairRecommenderMixin, frozen
from ._training import NegativeSampler
from .nn import BiasedMF, NeuMF, SparseDenseAdam


class MatrixFactorization(PairRecommenderMixin, NeuralRecommenderMixin, BaseRecommender):
    """Matrix factorization recommender trained with PyTorch through skorch.

    Biased MF scores a (user, item) pair as
    ``mu + b_u + b_i + p_u . q_i``; ``architecture="neumf"`` uses the NeuMF
    network instead (GMF and MLP towers fused, He et al. 2017). Trained with
    Adam on mini-batches sliced from tensors that live on ``device``, with
    negatives sampled there for implicit feedback.

    Input follows the package's two conventions:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col`` and ``item_col``, ids of any hashable type) with
      optional ``y`` (ratings for ``loss="mse"``; click labels in [0, 1] for
      ``"bce"``; non-negative weights for ``"bpr"``). ``predict`` returns one
      score per row;
    * a **user x item matrix** (scipy sparse or dense 2-D array): rows are
      users, columns items, stored (non-zero, for dense) entries are the
      interactions and their values the targets; ``y`` is ignored. ``predict``
      folds each row in and returns scores with the same sparsity pattern.

    Parameters
    ----------
    n_components : int, default=64
        Dimension of the user and item factors.
    loss : {"mse", "bce", "bpr"}, default="mse"
        ``"mse"`` for explicit ratings; ``"bce"`` (pointwise, with
        ``n_negatives`` sampled negatives per positive labelled 0) and
        ``"bpr"`` (pairwise ranking against sampled negatives) for implicit
        feedback.
    architecture : {"dot", "neumf"}, default="dot"
        ``"dot"``: biased MF. ``"neumf"``: NeuMF (GMF + MLP fusion).
    hidden_layer_sizes : tuple of int, default=(64, 32)
        NeuMF's MLP tower; ignored for ``"dot"``.
    n_negatives : int, default=4
        Negatives sampled per positive for ``"bce"``/``"bpr"``, uniformly among
        items the user did not interact with.
    alpha : float or "auto", default="auto"
        L2 penalty on the factors and biases a batch touches (mean squared
        norm per interaction). ``"auto"`` uses 0.1 for ``"mse"``, 0.01 for
        ``"bpr"`` and 0.03 for ``"bce"``, values tuned on MovieLens-100K
        (see ``benchmarks/bench_mf.py``): ratings need a much stronger
        penalty than ranking losses.
    max_iter : int, default=30
        Number of epochs.
    batch_size : int, default=1024
        Interactions per mini-batch.
    learning_rate_init : float, default=5e-3
        Adam's learning rate.
    solver : {"auto", "adam", "sparse_adam"}, default="auto"
        ``"adam"``: dense embedding gradients and :class:`torch.optim.Adam`;
        every step updates the whole user and item tables, so a step costs
        ``O((n_users + n_items) x n_components)``. ``"sparse_adam"``: sparse
        embedding gradients and :class:`~sklearn_recsys.nn.SparseDenseAdam`
        (lazy Adam: only the rows in the batch move), a step costs
        ``O(batch_size x n_components)`` whatever the number of ids, which
        keeps an epoch linear in the number of interactions when the id
        space grows with the data. ``"auto"``: ``"sparse_adam"`` when
        ``n_users + n_items`` exceeds 8 times the rows a batch touches
        (``batch_size x (2 + n_negatives)``, negatives counting for
        ``"bce"``/``"bpr"`` only), where it was measured faster, else
        ``"adam"``. Both reach the same accuracy on MovieLens-100K. Under
        ``warm_start`` the first fit's solver is kept.
    init_std : float, default=0.1
        Standard deviation of the factors' normal initialisation.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of each user's interactions and stop
        when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the best epoch's weights are kept.
    validation_fraction : float, default=0.1
        Fraction of each user's interactions used for validation.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the validation loss.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (same users
        and items required) instead of starting afresh.
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids not seen at fit: ``"fallback"`` scores them with zero factors, i.e.
        the global mean plus the known side's bias (item popularity for an
        unknown user); ``"error"`` raises a ValueError naming them.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    device : str, default="cpu"
        Torch device to train and score on: ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ... or ``"auto"`` (CUDA when available).
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch ``NeuralNet`` (``(name, callback)`` tuples
        allowed).
    verbose : int, default=0
        0: silent. 1 or more: skorch's per-epoch log and progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and negative sampling. Two fits with
        the same integer seed give the same model on CPU.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is the :mod:`torch` module.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order (row indices for a matrix).
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (column indices for a matrix).
    user_embeddings_ : ndarray of shape (n_users, n_components)
        User factors (GMF user embeddings for NeuMF).
    item_embeddings_ : ndarray of shape (n_items, n_components)
        Item factors (GMF item embeddings for NeuMF).
    user_bias_ : ndarray of shape (n_users,)
    item_bias_ : ndarray of shape (n_items,)
    global_bias_ : float
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when ``early_stopping=True``.
    n_iter_ : int
        Number of epochs run (over all fits when ``warm_start=True``).
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    See Also
    --------
    sklearn_recsys.metrics.make_ranking_scorer : Ranking scorer for model
        selection.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import MatrixFactorization
    >>> X = pd.DataFrame({"user": ["ann", "ann", "bob", "bob", "cy"],
    ...                   "item": ["a", "b", "a", "c", "b"]})
    >>> y = [5.0, 3.0, 4.0, 1.0, 2.0]
    >>> mf = MatrixFactorization(n_components=4, max_iter=5, random_state=0)
    >>> mf.fit(X, y).predict(X).shape
    (5,)
    >>> item_ids, scores = mf.recommend(["ann"], k=1)
    >>> item_ids
    array([['c']], dtype=object)
    """

    _parameter_constraints = {
        **BaseRecommender._parameter_constraints,
        **NeuralRecommenderMixin._training_constraints,
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "loss": [StrOptions({"mse", "bce", "bpr"})],
        "architecture": [StrOptions({"dot", "neumf"})],
        "hidden_layer_sizes": [tuple, list],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left")],
        "init_std": [Interval(numbers.Real, 0, None, closed="neither")],
        "solver": [StrOptions({"auto", "adam", "sparse_adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
    }

    _AUTO_ALPHA = {"mse": 0.1, "bpr": 0.01, "bce": 0.03}

    def _resolved_alpha(self):
        return self._AUTO_ALPHA[self.loss] if self.alpha == "auto" else self.alpha

    def __init__(
        self,
        *,
        n_components=64,
        loss="mse",
        architecture="dot",
        hidden_layer_sizes=(64, 32),
        n_negatives=4,
        alpha="auto",
        max_iter=30,
        batch_size=1024,
        learning_rate_init=5e-3,
        solver="auto",
        init_std=0.1,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        warm_start=False,
        handle_unknown="fallback",
        user_col="user",
        item_col="item",
        device="cpu",
        callbacks=None,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.loss = loss
        self.architecture = architecture
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.init_std = init_std
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

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        if len(sizes) == 0 or any(
            isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
            for h in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a non-empty sequence of positive "
                f"integers, got {sizes!r}."
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the factorization.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Interaction table (one row per interaction) or user x item matrix
            (stored entries = interactions, values = targets).
        y : array-like of shape (n_interactions,), default=None
            Targets of an interaction table (ratings, click labels or
            weights, according to ``loss``). Ignored for a matrix.

        Returns
        -------
        self : MatrixFactorization
            The fitted estimator.
        """
        self._check_params()
        previous = self._previous_ids()
        data = self._validate_fit_input(X, y)
        values = self._check_targets(data.values)
        self._check_same_ids(previous)
        seed, device = self._seed_and_device()
        n_users, n_items = len(self._user_index), len(self._item_index)
        dataset = self._pair_dataset(data, values, device)
        sampler = None
        if self.loss != "mse":
            users, items = dataset.tensors["users"], dataset.tensors["items"]
            keys = torch.unique(users * n_items + items)  # sorted
            sampler = NegativeSampler(keys, n_items, self.n_negatives)
        mean = float(dataset.y.mean()) if self.loss == "mse" else 0.0
        sparse = self._sparse_solver(n_users, n_items)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.architecture == "dot":
                module = BiasedMF(
                    n_users, n_items, self.n_components, global_bias=mean,
                    init_std=self.init_std, sparse=sparse,
                )
            else:
                module = NeuMF(
                    n_users, n_items, self.n_components,
                    hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                    global_bias=mean, init_std=self.init_std, sparse=sparse,
                )
        self._train(
            module, dataset, loss=self.loss, seed=seed, device=device,
            batch_transform=sampler,
            optimizer=SparseDenseAdam if sparse else torch.optim.Adam,
        )
        self._zero_untrained_rows(data)
        return self

    # Table rows per row a batch touches above which solver="auto" goes sparse:
    # the crossover of the two solvers' epoch times measured on 1 CPU thread
    # (mse and bce, 1.5k to 150k ids; see benchmarks/bench_scaling.py).
    _AUTO_SPARSE_ROWS = 8

    def _sparse_solver(self, n_users, n_items):
        """Whether this fit trains with sparse embedding gradients."""
        if self.solver != "auto":
            return self.solver == "sparse_adam"
        touched = self.batch_size * (2 + (self.n_negatives if self.loss != "mse" else 0))
        return n_users + n_items > self._AUTO_SPARSE_ROWS * touched

    @torch.no_grad()
    def _zero_untrained_rows(self, data):
        """Users/items without training data get the fallback (zero) rows."""
        module = self._module()
        n_users, n_items = len(self._user_index), len(self._item_index)
        cold_users = np.setdiff1d(np.arange(n_users), data.users)
        cold_items = np.setdiff1d(np.arange(n_items), data.items)
        for name, emb in module.named_children():
            if name.startswith("user_") and len(cold_users):
                emb.weight[torch.as_tensor(cold_users, device=emb.weight.device)] = 0
            elif name.startswith("item_") and len(cold_items):
                emb.weight[torch.as_tensor(cold_items, device=emb.weight.device)] = 0

    def _factors_of(self, reprs):
        if self.architecture == "neumf":
            return reprs[:, : self.n_components]
        return reprs[:, :-1]

    # -- fold-in -------------------------------------------------------------

    def _fold_in(self, H):
        """User representations for the rows of a history matrix ``H``.

        Ratings with the dot architecture: exact ridge regression on the
        frozen item factors (:func:`~sklearn_recsys._fold_in.fold_in_ridge`).
        Otherwise: full-batch Adam on the model's own objective with the item
        side frozen (:func:`~sklearn_recsys._fold_in.fold_in_gradient`).
        """
        module = self._module()
        module.eval()
        alpha = self._resolved_alpha()
        device = self._device()
        if self.architecture == "dot":
            with torch.no_grad():
                q_aug, offset = module.item_linear_terms()
            if self.loss == "mse":
                return fold_in_ridge(q_aug, offset, H, alpha)

            def score_all(x):
                return torch.addmm(offset[None, :], x, q_aug.T)

            dim = q_aug.shape[1]
        else:
            score_all = module.score_all
            dim = module.user_representation(
                torch.zeros(1, dtype=torch.long, device=device)
            ).shape[1]
        with frozen(module):
            return fold_in_gradient(
                score_all, dim, len(self._item_index), H, device=device,
                loss=self.loss, alpha=alpha, n_negatives=self.n_negatives,
                cost=getattr(module, "score_cost", 1),
            )

    # -- fitted parameters as numpy --------------------------------------------

    def _param_numpy(self, tensor):
        return tensor.detach().float().cpu().numpy().copy()

    @property
    def user_embeddings_(self):
        check_is_fitted(self, "net_")
        return self._param_numpy(self._module().user_embeddings())

    @property
    def item_embeddings_(self):
        check_is_fitted(self, "net_")
        return self._param_numpy(self._module().item_embeddings())

    @property
    def user_bias_(self):
        check_is_fitted(self, "net_")
        m = self._module()
        return self._param_numpy(m.user_bias.weight[: m.n_users, 0])

    @property
    def item_bias_(self):
        check_is_fitted(self, "net_")
        m = self._module()
        return self._param_numpy(m.item_bias.weight[: m.n_items, 0])

    @property
    def global_bias_(self):
        check_is_fitted(self, "net_")
        return float(self._module().global_bias.detach().cpu())

