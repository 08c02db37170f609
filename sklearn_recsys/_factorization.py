"""Factorization recommenders: ``MatrixFactorization`` and ``CNNRecommender``.

Both score a (user, item) pair as a user vector times an item vector plus
biases and train on (user, item, target) rows; everything they share is
:class:`~sklearn_recsys._neural.PairRecommender`. The CNN computes its item
vectors from the items' content (:class:`~sklearn_recsys.ItemContent`)
through CNN towers, so that items without any interaction ("cold" items) can
be ranked from their content alone.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._attributes import Attributes
from ._content import ItemContent, _as_image_tensor, _as_text_tensor, _pad_texts
from ._docs import fill_doc
from ._gibbs import gibbs_factorization
from ._neural import AttributeRegistration, PairRecommender, _same_param
from ._privacy import DifferentialPrivacy
from ._training import RecommenderNet, derived_seed, fused_adam_params
from .nn import BiasedMF, HybridCNN, NeuMF, SparseDenseAdam

__all__ = ["CNNRecommender", "MatrixFactorization"]


@fill_doc
class MatrixFactorization(AttributeRegistration, PairRecommender):
    """Matrix factorization recommender trained with PyTorch through skorch.

    Biased MF scores a (user, item) pair as
    ``mu + b_u + b_i + p_u . q_i``; ``architecture="neumf"`` uses the NeuMF
    network instead (GMF and MLP towers fused, He et al. 2017). Trained with
    Adam on mini-batches sliced from tensors that live on ``device``, with
    negatives sampled there for implicit feedback. Ratings
    (``loss="mse"``) are by default fitted as Bayesian MF by Gibbs
    sampling instead (``solver``): every regularisation strength is drawn
    from its posterior, so it adapts to the data, and the model is the
    posterior mean of the scores.

    Input follows the package's two conventions:

    * an **interaction table** (pandas DataFrame, one row per interaction,
      columns ``user_col`` and ``item_col``, ids of any hashable type) with
      optional ``y`` (ratings for ``loss="mse"``; click labels in [0, 1] for
      ``"bce"``; non-negative weights for ``"bpr"`` and ``"softmax"``).
      ``predict`` returns one score per row;
    * a **user x item matrix** (scipy sparse or dense 2-D array): rows are
      users, columns items, stored (non-zero, for dense) entries are the
      interactions and their values the targets; ``y`` is ignored. ``predict``
      folds each row in and returns scores with the same sparsity pattern.

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        Dimension of the user and item factors. ``"auto"``: 64, and 10 for
        the Gibbs sampler (``solver``; chosen on validation splits of
        MovieLens-100K and latest-small, ``benchmarks/tune_defaults.py``:
        8, 10 and 16 were within the seeds' spread of 0.002 RMSE, and the
        sampler's cost grows as the square of it).
    loss : {"mse", "bce", "bpr", "softmax", "sampled_softmax"}, default="mse"
        ``"mse"`` for explicit ratings; for implicit feedback, ``"softmax"``
        (recommended: the cross-entropy of every interaction over the whole
        catalogue, a multinomial likelihood per user; ``architecture="dot"``
        only), ``"bce"`` (pointwise, with ``n_negatives`` sampled negatives
        per positive labelled 0) or ``"bpr"`` (pairwise ranking against
        sampled negatives). With ``"softmax"`` a mini-batch is a set of
        whole users holding about ``batch_size`` interactions; an epoch
        costs ``n_users * n_items * n_components`` multiply-adds, memory
        ``batch_size / mean_interactions_per_user * n_items`` scores.
        ``"sampled_softmax"`` (for catalogues too large for that): the same
        batches and loss, the catalogue replaced by ``n_negatives`` items
        drawn for the whole batch in proportion to their smoothed popularity,
        with the logQ correction: a batch costs its users times
        ``n_negatives`` scores, whatever the catalogue.
    architecture : {"dot", "neumf"}, default="dot"
        ``"dot"``: biased MF. ``"neumf"``: NeuMF (GMF + MLP fusion).
    hidden_layer_sizes : tuple of int, default=(64, 32)
        NeuMF's MLP tower; ignored for ``"dot"``.
    n_negatives : int or "auto", default="auto"
        Negatives sampled per positive for ``"bce"``/``"bpr"``, uniformly among
        items the user did not interact with ("auto": 4); items shared by a
        batch for ``"sampled_softmax"`` ("auto": 4096).
    alpha : float or "auto", default="auto"
        L2 penalty on the factors and biases a batch touches (mean squared
        norm per interaction; for ``"softmax"``, the user's squared norm plus
        the mean squared norm of the item factors). ``"auto"`` uses 0.14 for
        ``"mse"`` and 0.1 for ``"softmax"`` (chosen on validation splits of
        MovieLens-100K and latest-small, ``benchmarks/tune_defaults.py``),
        0.01 for ``"bpr"`` and ``"sampled_softmax"`` (the latter chosen
        among 0.003/0.01 on MovieLens-100K validation) and 0.03 for ``"bce"``
        (tuned on MovieLens-100K, ``benchmarks/bench_mf.py``). The Gibbs
        sampler (``solver``) draws its penalties from their posteriors
        instead.
    max_iter : int or "auto", default="auto"
        Number of epochs; for the Gibbs sampler, of sweeps (a draw of every
        parameter), the first ``max_iter // 5`` discarded as burn-in and the
        others averaged. ``"auto"``: 30 epochs, 150 sweeps.
    batch_size : int or "auto", default="auto"
        Interactions per mini-batch (for ``"softmax"``, the whole users
        holding about that many). ``"auto"``: 1024, and 4096 for
        ``"softmax"`` and ``"sampled_softmax"`` (chosen on validation splits
        of MovieLens-100K and latest-small: a step over the whole catalogue
        wants more data).
    learning_rate_init : float, default=5e-3
        Adam's learning rate.
    solver : {"auto", "adam", "sparse_adam", "gibbs"}, default="auto"
        ``"adam"``: dense embedding gradients and :class:`torch.optim.Adam`;
        every step updates the whole user and item tables, so a step costs
        ``O((n_users + n_items) x n_components)``. ``"sparse_adam"``: sparse
        embedding gradients and :class:`~sklearn_recsys.nn.SparseDenseAdam`
        (lazy Adam: only the rows in the batch move), a step costs
        ``O(batch_size x n_components)`` whatever the number of ids, which
        keeps an epoch linear in the number of interactions when the id
        space grows with the data. ``"auto"``: ``"gibbs"`` where it applies
        (below), else ``"sparse_adam"`` when
        ``n_users + n_items`` exceeds 8 times the rows a batch touches
        (``batch_size x (2 + n_negatives)``, negatives counting for
        ``"bce"``/``"bpr"`` only), where it was measured faster, else
        ``"adam"``. Both reach the same accuracy on MovieLens-100K. Under
        ``warm_start`` the first fit's solver is kept (a fit of the Gibbs
        sampler cannot be continued). ``loss="softmax"``
        updates every item at every step: ``"auto"`` is ``"adam"`` and
        ``"sparse_adam"`` is refused; so it is with an ``accelerator`` of
        several processes (data-parallel training all-reduces dense
        gradients).

        ``"gibbs"``: Bayesian probabilistic MF (Salakhutdinov & Mnih 2008)
        with biases, by Gibbs sampling, on ``device``. The factors have
        Gaussian priors whose mean and precision have Normal-Wishart
        hyperpriors, the biases Gaussian priors with Gamma-distributed
        precisions, and the noise a Gamma-distributed precision: no
        ``alpha``, ``learning_rate_init`` or ``batch_size`` to set. Sample
        weights are relative precisions of the ratings (their scale does
        not matter). The fitted factors are the rank-``n_components``
        truncated SVD of the posterior mean of ``P Q^T`` (summed over the
        samples at rank ``4 n_components``), and the biases their
        posterior means; ``net_`` holds that network, without training
        state. ``n_iter_`` counts the sweeps, and ``loss_curve_`` holds each
        sweep's training MSE (burn-in included). A sweep costs
        ``O(n_ratings k^2 + (n_users + n_items) k^3)`` for ``k =
        n_components``; memory is ``O(n_ratings + (n_users + n_items) k)``
        plus 256 MB at most for the per-id ``k x k`` precisions, built
        blocks of ids at a time. ``transform`` folds new users in as their
        posterior mean under a Gaussian prior fitted to the known users.
        Ratings only (``loss="mse"``, ``architecture="dot"``), without
        attributes, an accelerator, ``differential_privacy``,
        ``early_stopping`` (True or "auto"), ``warm_start``, ``callbacks``,
        skorch parameters, or a value set for the gradient solvers'
        ``alpha``, ``learning_rate_init``, ``batch_size`` or ``init_std``:
        ``"auto"`` picks it when none of these is set, and refuses it
        otherwise (on validation splits of MovieLens-100K and
        latest-small: RMSE 0.9005 and 0.8808, means over 3 seeds, against
        Adam's 0.9138 and 0.8859).
    init_std : float, default=0.1
        Standard deviation of the factors' normal initialisation (the
        Gibbs sampler starts from factors whose products have the ratings'
        variance).
    user_attributes, item_attributes : Attributes, default=None
        Attributes of the users (items), keyed by raw id (see
        :class:`Attributes`). A user's factors and bias are then its id's
        plus the weighted sum of the embeddings of its attribute features
        (LightFM's hybrid representation); ``alpha`` penalises the id part and
        the attribute part apart, so an id is shrunk towards the vector of
        its attributes. The ids of the table without
        interactions join the model: they are scored from their attributes
        alone (cold start), recommended to (users) and recommended (items)
        like any other. New users are recommended to from their attributes
        alone with ``recommend(Attributes(...))``, and :meth:`register_users`
        / :meth:`register_items` add ids after fit. ``architecture="dot"``
        only.
    id_dropout : float, default=0.0
        With attributes: in training, the probability of zeroing an id's own
        factors and bias at a step (for each user, or item, with
        attributes), so that the attribute part learns to score alone, as it
        must for ids without interactions (DropoutNet). Ids without training
        interactions always train with their attributes alone. The default
        0 keeps the accuracy on known ids (validation on MovieLens-100K and
        latest-small, ``benchmarks/bench_attributes.py --section
        validation``); raise it (0.25-0.5) when most of the traffic is cold.
    %(early_stopping_pairs)s
    %(privacy)s
        Needs ``loss="softmax"`` or ``"sampled_softmax"`` (a batch row is a
        user's whole history), and no attributes.
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids not seen at fit: ``"fallback"`` scores them with zero factors, i.e.
        the global mean plus the known side's bias (item popularity for an
        unknown user); ``"error"`` raises a ValueError naming them.
    %(id_columns)s
    %(neural_runtime)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is the :mod:`torch` module.
    %(id_attributes)s
    user_embeddings_ : ndarray of shape (n_users, n_components)
        User factors (GMF user embeddings for NeuMF); with
        ``n_components="auto"``, 64 columns, or 10 for the Gibbs sampler.
    item_embeddings_ : ndarray of shape (n_items, n_components)
        Item factors (GMF item embeddings for NeuMF).
    user_bias_ : ndarray of shape (n_users,)
    item_bias_ : ndarray of shape (n_items,)
    global_bias_ : float
    %(neural_attributes)s
    %(privacy_attributes)s

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
        **PairRecommender._parameter_constraints,
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"),
                         StrOptions({"auto"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "loss": [StrOptions({"mse", "bce", "bpr", "softmax", "sampled_softmax"})],
        "architecture": [StrOptions({"dot", "neumf"})],
        "hidden_layer_sizes": [tuple, list],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left"),
                        StrOptions({"auto"})],
        "init_std": [Interval(numbers.Real, 0, None, closed="neither")],
        "solver": [StrOptions({"auto", "adam", "sparse_adam", "gibbs"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"),
                       StrOptions({"auto"})],
        "differential_privacy": [DifferentialPrivacy, None],
        "user_attributes": [Attributes, None],
        "item_attributes": [Attributes, None],
        "id_dropout": [Interval(numbers.Real, 0, 1, closed="both")],
    }

    _AUTO_ALPHA = {
        "mse": 0.14, "bpr": 0.01, "bce": 0.03, "softmax": 0.1, "sampled_softmax": 0.1,
    }

    def _batch_size(self):
        if self.batch_size == "auto":
            return 4096 if self.loss in ("softmax", "sampled_softmax") else 1024
        return self.batch_size

    # alpha="auto" of the pure attribute model (id_dropout=1, chosen on the
    # cold-item validation splits of MovieLens-100K and latest-small)
    _AUTO_ALPHA_ATTRIBUTES = 0.03

    def _resolved_alpha(self):
        if self.alpha != "auto":
            return self.alpha
        if self.id_dropout == 1 and self._has_attributes():
            return self._AUTO_ALPHA_ATTRIBUTES
        return self._AUTO_ALPHA[self.loss]

    # n_components="auto" and max_iter="auto": (gradient solvers, Gibbs sampler)
    _AUTO_COMPONENTS = (64, 10)
    _AUTO_MAX_ITER = (30, 150)

    def _resolved_components(self):
        if self.n_components != "auto":
            return self.n_components
        return self._AUTO_COMPONENTS[self._uses_gibbs()]

    def _resolved_max_iter(self):
        if self.max_iter != "auto":
            return self.max_iter
        return self._AUTO_MAX_ITER[self._uses_gibbs()]

    # the gradient solvers' knobs (and their defaults): one set means Adam
    _GRADIENT_DEFAULTS = {
        "alpha": "auto", "learning_rate_init": 5e-3, "batch_size": "auto", "init_std": 0.1,
    }

    def _gibbs_conflicts(self):
        """The settings the Gibbs sampler cannot honour (empty: it can)."""
        conflicts = {
            f"{name}={getattr(self, name)!r}": not _same_param(getattr(self, name), default)
            for name, default in self._GRADIENT_DEFAULTS.items()
        }
        conflicts |= {
            f"loss={self.loss!r}": self.loss != "mse",
            f"architecture={self.architecture!r}": self.architecture != "dot",
            "user_attributes or item_attributes": self._has_attributes(),
            "an accelerator": self.accelerator is not None,
            "differential_privacy": self.differential_privacy is not None,
            f"early_stopping={self.early_stopping!r}": self.early_stopping is not False,
            "warm_start=True": bool(self.warm_start),
            "callbacks": bool(self.callbacks),
            f"skorch parameters {sorted(self._net_params())}": bool(self._net_params()),
        }
        return [name for name, conflict in conflicts.items() if conflict]

    def _uses_gibbs(self):
        """Whether this fit samples (``solver="gibbs"``, or ``"auto"`` on ratings)."""
        if self.solver == "gibbs":
            return True
        return self.solver == "auto" and not self._gibbs_conflicts()

    def __init__(
        self, *, n_components="auto", loss="mse", architecture="dot",
        hidden_layer_sizes=(64, 32), n_negatives="auto", alpha="auto", max_iter="auto",
        batch_size="auto", learning_rate_init=5e-3, solver="auto", init_std=0.1,
        user_attributes=None, item_attributes=None, id_dropout=0.0,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, tol=1e-4,
        warm_start=False, differential_privacy=None, handle_unknown="fallback",
        user_col="user", item_col="item", device="cpu", callbacks=None, verbose=0,
        random_state=None, accelerator=None,
        **kwargs,
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
        self.user_attributes = user_attributes
        self.item_attributes = item_attributes
        self.id_dropout = id_dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.differential_privacy = differential_privacy
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.accelerator = accelerator
        self._store_net_params(kwargs)

    def _attribute_id_dropout(self):
        return float(self.id_dropout)

    def _has_attributes(self):
        return self.user_attributes is not None or self.item_attributes is not None

    def _check_params(self):
        if self.solver == "gibbs" and self._gibbs_conflicts():
            raise ValueError(
                "solver='gibbs' samples a biased MF of ratings (loss='mse', "
                "architecture='dot') without gradient training; it cannot use "
                f"{self._gibbs_conflicts()[0]}. Use solver='auto' or 'adam'."
            )
        if self._has_attributes() and self.architecture != "dot":
            raise ValueError(
                "user_attributes and item_attributes add to the factors of "
                "architecture='dot'; got architecture='neumf'."
            )
        if self._has_attributes() and self.differential_privacy is not None:
            raise ValueError(
                "differential_privacy protects users' interactions through their "
                "own factors; it does not cover attributes: leave user_attributes "
                "and item_attributes at None with differential_privacy."
            )
        if self.differential_privacy is not None and self.loss not in (
            "softmax", "sampled_softmax"
        ):
            raise ValueError(
                "differential_privacy protects users, and needs loss='softmax' (or "
                "'sampled_softmax'), whose batch rows are whole users (the other "
                f"losses train on single interactions); got loss={self.loss!r}."
            )
        if self.loss in ("softmax", "sampled_softmax") and self.architecture != "dot":
            raise ValueError(
                f"loss={self.loss!r} scores items for a batch of users at once and "
                f"needs architecture='dot', got architecture={self.architecture!r}."
            )
        if self.solver == "sparse_adam" and self._n_processes() > 1:
            raise ValueError(
                "solver='sparse_adam' keeps sparse embedding gradients, which "
                "data-parallel training does not all-reduce: use solver='auto' or "
                "'adam' with an accelerator of several processes."
            )
        if self.loss == "softmax" and self.solver == "sparse_adam":
            raise ValueError(
                "loss='softmax' updates every item at every step: solver='sparse_adam' "
                "cannot train it; use solver='auto' or 'adam'."
            )
        sizes = self.hidden_layer_sizes
        if len(sizes) == 0 or any(
            isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
            for h in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a non-empty sequence of positive "
                f"integers, got {sizes!r}."
            )

    def _build_module(self, fit, training):
        kwargs = dict(
            n_users=fit.n_users, n_items=fit.n_items,
            n_components=self._resolved_components(),
            global_bias=self._target_mean(fit), init_std=self.init_std,
            sparse=self._sparse_solver(fit.n_users, fit.n_items),
        )
        if self.architecture == "neumf":
            return NeuMF(**self._module_kwargs(
                **kwargs, hidden_layer_sizes=tuple(self.hidden_layer_sizes)
            ))
        # (id_dropout=1: the attributes are the whole model, no map needed)
        sizes = self._attribute_sizes(training, standalone=self.id_dropout < 1)
        module = BiasedMF(**self._module_kwargs(**kwargs, **sizes))
        self._fill_attribute_rows(module, fit, training)
        return module

    def _optimizer(self, fit):
        if self._sparse_solver(fit.n_users, fit.n_items):
            return SparseDenseAdam, {}
        if "optimizer" in self._net_params() or self.differential_privacy is not None:
            return torch.optim.Adam, {}  # kwargs of the user's optimizer; Opacus's
        return torch.optim.Adam, fused_adam_params(fit.device)

    # Table rows per row a batch touches above which solver="auto" goes sparse:
    # the crossover of the two solvers' epoch times measured on 1 CPU thread
    # (mse and bce, 1.5k to 150k ids; see benchmarks/bench_scaling.py).
    _AUTO_SPARSE_ROWS = 8

    def _sparse_solver(self, n_users, n_items):
        """Whether this fit trains with sparse embedding gradients."""
        if self._uses_gibbs():
            return False
        if not self._optimizer_takes_sparse(self.solver):
            return False
        if self.solver != "auto":
            return self.solver == "sparse_adam"
        if self._n_processes() > 1:  # DDP all-reduces dense gradients
            return False
        if self.loss == "softmax":  # every item, every step
            return False
        if self.loss == "sampled_softmax":  # the batch's items and the shared sample
            touched = 2 * self._batch_size() + self._resolved_negatives()
        else:
            negatives = self._resolved_negatives() if self.loss != "mse" else 0
            touched = self._batch_size() * (2 + negatives)
        return n_users + n_items > self._AUTO_SPARSE_ROWS * touched

    # -- the Gibbs sampler ---------------------------------------------------------

    def _continues(self, fit):
        if (self.warm_start and hasattr(self, "net_")
                and getattr(self, "_fold_in_prior_", None) is not None):
            raise ValueError(
                "warm_start=True continues a gradient fit, but this model was fitted "
                "by the Gibbs sampler (solver='gibbs'), which keeps no training "
                "state; set warm_start=False to fit afresh."
            )
        return super()._continues(fit)

    def _fit(self, fit):
        if not self._uses_gibbs():
            return {**super()._fit(fit), "_fold_in_prior_": None}
        values = torch.as_tensor(self._check_targets(fit.data.values), dtype=torch.float64)
        weights = fit.data.weights
        weights = (torch.ones_like(values) if weights is None
                   else torch.as_tensor(weights, dtype=torch.float64))
        device, sweeps = fit.device, self._resolved_max_iter()
        burn_in = sweeps // 5
        generator = torch.Generator(device=device).manual_seed(derived_seed(fit.seed, "gibbs"))
        users = torch.as_tensor(fit.data.users, device=device)
        items = torch.as_tensor(fit.data.items, device=device)
        sample = gibbs_factorization(
            users, items, values.to(device), weights.to(device), fit.n_users, fit.n_items,
            self._resolved_components(), burn_in, sweeps - burn_in, generator,
            log=print if self.verbose else None,
        )
        with torch.random.fork_rng(devices=[]):  # torch's global generator untouched
            module = BiasedMF(**self._module_kwargs(
                n_users=fit.n_users, n_items=fit.n_items,
                n_components=self._resolved_components(), global_bias=sample["global_bias"],
            ))
        rated_users = torch.bincount(users, minlength=fit.n_users) > 0
        rated_items = torch.bincount(items, minlength=fit.n_items) > 0
        with torch.no_grad():  # ids without ratings: the fallback (zero) rows
            for name, rated in (("user", rated_users), ("item", rated_items)):
                factors = sample[f"{name}_factors"] * rated[:, None]
                bias = sample[f"{name}_bias"] * rated
                getattr(module, f"{name}_factors").weight[: len(rated)] = factors
                getattr(module, f"{name}_bias").weight[: len(rated), 0] = bias
        net = RecommenderNet(module, criterion=torch.nn.MSELoss, device=device)
        net.initialize()
        for sweep, (mse, seconds) in enumerate(  # one row per sweep
            zip(sample["train_mse"], sample["sweep_seconds"]), 1
        ):
            net.history.new_epoch()
            net.history.record("epoch", sweep)
            net.history.record("train_loss", float(mse))
            net.history.record("dur", float(seconds))
        net.module_.eval()
        # new users fold in under a Gaussian prior fitted to the known users
        # (mean and covariance of their factors and bias) and the noise level
        known = torch.cat([sample["user_factors"], sample["user_bias"][:, None]], 1)
        known = known[rated_users].cpu()
        covariance = torch.atleast_2d(torch.cov(known.T)) if len(known) > 1 else None
        if covariance is None or not torch.isfinite(covariance).all():
            covariance = torch.eye(known.shape[1], dtype=torch.float64)
        jitter = 1e-6 * float(covariance.trace()) / len(covariance) + 1e-300
        covariance += jitter * torch.eye(len(covariance), dtype=torch.float64)
        precision = sample["noise_variance"] * torch.linalg.inv(covariance)
        return {
            "net_": net,
            "loss_curve_": [float(v) for v in sample["train_mse"]],
            "validation_loss_curve_": None,
            "n_iter_": sweeps,
            "_fitted_params": self.get_params(deep=False),
            "_user_encoder": None,
            "_item_encoder": None,
            "_fold_in_prior_": {
                "precision": precision.numpy(), "mean": known.mean(0).numpy(),
            },
        }

    def _user_features(self, reprs):
        if self.architecture == "neumf":
            return reprs[:, : self._resolved_components()]
        return reprs[:, :-1]

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


@fill_doc
class CNNRecommender(PairRecommender):
    """Hybrid recommender scoring items from their images/texts through CNNs.

    A (user, item) pair is scored ``p_u . v_i + b_u + c_i + mu``, where the
    item vector ``v_i`` (and bias ``c_i``) is the projection of the item's
    content features -- a convolutional tower over its image
    (conv ``kernel_size`` + ReLU + 2x2 max-pooling per entry of
    ``conv_channels``, then a dense layer of ``dense_size``) and a Kim-style
    text CNN over its token ids -- plus an item-id embedding for items seen
    in training (zero for the others). Items that have content but no
    interaction ("cold" items) are therefore scored from their content
    alone: they are part of the fitted item space and can be recommended,
    e.g. ``recommend(users, items=cold_ids)``. Trained with Adam through
    skorch on mini-batches of device tensors; each batch runs the towers once
    on its unique (positive and negative) items, and scoring computes every
    item vector once per call before one matrix product per user block.

    **Content.** ``item_content`` is an :class:`ItemContent` (see there why
    it is an immutable parameter object shared by clones). The fitted item
    space is the items of the interactions plus the items of
    ``item_content``. With a user x item matrix, item ids are column
    indices: content ids must be columns of ``X`` (cold items are empty
    columns). Items of the interactions without content are scored by their
    id embedding alone. Content can be added or replaced after fit with
    :meth:`register_items`; new ids then become cold items (interaction
    tables only). Without ``item_content`` the model is an id-only biased
    matrix factorization.

    Parameters
    ----------
    item_content : ItemContent, default=None
        Images and/or token-id texts of the items.
    n_components : int, default=32
        Dimension of the user factors and item vectors.
    loss : {"bce", "mse", "bpr"}, default="bce"
        ``"bce"``: clicks/implicit feedback, logistic loss with
        ``n_negatives`` sampled negatives per positive (``predict`` returns
        probabilities). ``"mse"``: explicit ratings. ``"bpr"``: pairwise
        ranking against sampled negatives.
    conv_channels : tuple of int, default=(32, 64, 128)
        Output channels of the image tower's convolution blocks.
    kernel_size : int, default=3
        Side of the square convolution kernels.
    dense_size : int, default=128
        Width of the image tower's dense layer.
    embedding_dim : int, default=32
        Dimension of the token embeddings of the text tower.
    text_filters : int, default=64
        Filters per kernel size of the text tower.
    text_kernel_sizes : tuple of int, default=(2, 3, 4)
        Widths (in tokens) of the text convolutions.
    use_item_ids : bool, default=True
        Add item-id embeddings to the content vectors of items seen in
        training (hybrid). False: a pure content model.
    id_dropout : float, default=0.0
        During training, probability of dropping an item's id embedding for
        a batch (items with content only), so that the content path learns to
        score items alone as it must for cold items (DropoutNet).
    n_negatives : int, default=4
        Negatives sampled per positive for ``"bce"``/``"bpr"``, uniformly among
        the items that have training interactions and that the user did not
        interact with (content-only items have no feedback yet and are never
        used as negatives).
    alpha : float, default=1e-4
        L2 penalty on the user factors and the item-id embeddings a batch
        touches (mean squared norm per interaction).
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=1024
        Interactions per mini-batch.
    learning_rate_init : float, default=5e-3
        Adam's learning rate.
    init_std : float, default=0.1
        Standard deviation of the embeddings' normal initialisation.
    user_attributes, item_attributes : Attributes, default=None
        Attributes of the users (items), keyed by raw id (see
        :class:`Attributes`): the weighted sum of the embeddings of an id's
        attribute features joins its factors (users) or its content and id
        parts (items). The ids of the tables without interactions join the
        model; users without interactions are scored from a ridge map of
        their attributes (as in :class:`MatrixFactorization`), also new users
        with ``recommend(Attributes(...))``. Items added by
        :meth:`register_items` have no attributes.
    %(early_stopping_pairs)s
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids unknown to the model (users not seen at fit; items neither in the
        interactions nor in the content): ``"fallback"`` scores them with
        zero factors (user bias plus global bias for an unknown item);
        ``"error"`` raises a ValueError naming them.
    %(id_columns)s
    %(neural_runtime)s

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is a
        :class:`sklearn_recsys.nn.HybridCNN` holding the content tensors
        as buffers.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order.
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (interaction and content items, then
        items added by :meth:`register_items`).
    cold_item_ids_ : ndarray of shape (n_cold_items,)
        Items of the id space without training interactions.
    user_embeddings_ : ndarray of shape (n_users, n_components)
    item_embeddings_ : ndarray of shape (n_items, n_components)
        Item vectors ``v_i`` (content projection plus id embedding).
    %(neural_attributes)s

    Notes
    -----
    Cost: every training batch encodes each of its unique positive and
    negative items once, so an epoch costs about
    ``n_batches * min(n_items, batch_size * (1 + n_negatives))`` tower
    passes; larger batches (with a larger learning rate) amortise the towers.
    Memory: the content tensors are module buffers (no copy on CPU for
    uint8/float32 C-contiguous arrays), moved to ``device`` for the whole
    fit; a warm start reads them afresh from ``item_content``. They are not
    in the module's ``state_dict`` (the content is data, not weights); a
    pickled model stores them with its module, besides the ``item_content``
    parameter.

    See Also
    --------
    MatrixFactorization : The id-only model (cannot score cold items).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_recsys import CNNRecommender
    >>> from sklearn_recsys import ItemContent
    >>> rng = np.random.RandomState(0)
    >>> content = ItemContent(["a", "b", "c", "new"],
    ...                       images=rng.randint(0, 256, (4, 8, 8)).astype(np.uint8))
    >>> X = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "b", "c"]})
    >>> est = CNNRecommender(item_content=content, conv_channels=(4, 8),
    ...                      dense_size=8, n_components=4, max_iter=2,
    ...                      random_state=0).fit(X)
    >>> est.cold_item_ids_
    array(['new'], dtype=object)
    >>> item_ids, scores = est.recommend([1, 2], k=1, items=["c", "new"])
    >>> item_ids.shape, scores.shape
    ((2, 1), (2, 1))
    """

    _parameter_constraints = {
        **PairRecommender._parameter_constraints,
        "item_content": [ItemContent, None],
        "user_attributes": [Attributes, None],
        "item_attributes": [Attributes, None],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "loss": [StrOptions({"mse", "bce", "bpr"})],
        "conv_channels": [tuple, list],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "dense_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "text_filters": [Interval(numbers.Integral, 1, None, closed="left")],
        "text_kernel_sizes": [tuple, list],
        "use_item_ids": ["boolean"],
        "id_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left")],
        "init_std": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self, *, item_content=None, n_components=32, loss="bce",
        conv_channels=(32, 64, 128), kernel_size=3, dense_size=128, embedding_dim=32,
        text_filters=64, text_kernel_sizes=(2, 3, 4), use_item_ids=True, id_dropout=0.0,
        n_negatives=4, alpha=1e-4, max_iter=20, batch_size=1024,
        learning_rate_init=5e-3, init_std=0.1, user_attributes=None, item_attributes=None,
        early_stopping=False,
        validation_fraction=0.1, n_iter_no_change=5, tol=1e-4, warm_start=False,
        handle_unknown="fallback", user_col="user", item_col="item", device="cpu",
        callbacks=None, verbose=0, random_state=None, accelerator=None,
        **kwargs,
    ):
        self.item_content = item_content
        self.user_attributes = user_attributes
        self.item_attributes = item_attributes
        self.n_components = n_components
        self.loss = loss
        self.conv_channels = conv_channels
        self.kernel_size = kernel_size
        self.dense_size = dense_size
        self.embedding_dim = embedding_dim
        self.text_filters = text_filters
        self.text_kernel_sizes = text_kernel_sizes
        self.use_item_ids = use_item_ids
        self.id_dropout = id_dropout
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
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
        self.accelerator = accelerator
        self._store_net_params(kwargs)

    _unknown_item_hint = (
        " Items with neither interactions nor content are unknown to the model: "
        "pass their content with register_items(ItemContent(...)) to score them."
    )

    # -- validation ------------------------------------------------------------

    def _check_params(self):
        for name in ("conv_channels", "text_kernel_sizes"):
            sizes = getattr(self, name)
            if len(sizes) == 0 or any(
                isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
                for h in sizes
            ):
                raise ValueError(
                    f"{name} must be a non-empty sequence of positive integers, "
                    f"got {sizes!r}."
                )
        if not self.use_item_ids and self.item_content is None:
            raise ValueError(
                "use_item_ids=False makes a pure content model, which needs "
                "item_content; pass an ItemContent or set use_item_ids=True."
            )

    def _extra_items(self):
        """Content and attribute items join the item space (cold when not interacted)."""
        sources = [(name, value) for name, value in (
            ("item_content", self.item_content), ("item_attributes", self.item_attributes)
        ) if value is not None]
        if not sources:
            return None
        if len(sources) == 1:
            name, value = sources[0]
            return name, (value.item_ids if name == "item_content" else value.ids)
        ids = pd.unique(np.concatenate([
            np.asarray(self.item_content.item_ids, dtype=object),
            np.asarray(self.item_attributes.ids, dtype=object),
        ]))
        return "item_content or item_attributes", ids

    # -- content -----------------------------------------------------------------

    @staticmethod
    def _content_tensors(content, item_index, n_tokens=None):
        """``content_index`` over the item space, images and texts tensors."""
        index = np.full(len(item_index), -1, dtype=np.int64)
        if content is None:
            return torch.as_tensor(index), None, None
        index[item_index.transform(content.item_ids)] = np.arange(content.n_items)
        images = None if content.images is None else _as_image_tensor(content.images)
        texts = None if content.texts is None else _as_text_tensor(content.texts, n_tokens)
        return torch.as_tensor(index), images, texts

    def _check_same_modalities(self, module, content, where):
        has_img, has_txt = content.images is not None, content.texts is not None
        if has_img != (module.image_tower is not None) or has_txt != (
            module.text_tower is not None
        ):
            towers = (("images", module.image_tower), ("texts", module.text_tower))
            fitted = [name for name, tower in towers if tower is not None]
            raise ValueError(
                f"{where} needs content with the modalities of the fitted model "
                f"({' and '.join(fitted) or 'none'}); got images="
                f"{'yes' if has_img else 'None'}, texts={'yes' if has_txt else 'None'}."
            )
        if has_img and tuple(content.images.shape[1:]) != tuple(module.images.shape[1:]):
            raise ValueError(
                f"{where} needs images of shape (channels, height, width) = "
                f"{tuple(module.images.shape[1:])} like at fit, got "
                f"{tuple(content.images.shape[1:])}."
            )

    # -- fitting hooks -------------------------------------------------------------

    def _build_module(self, fit, training):
        index, images, texts = self._content_tensors(self.item_content, fit.item_index)
        if not self.use_item_ids:
            trained_items = np.unique(fit.data.items)
            lacking = trained_items[index.numpy()[trained_items] < 0]
            if len(lacking):
                raise ValueError(
                    "use_item_ids=False scores items from their content alone, "
                    f"but {len(lacking)} item(s) of the interactions have no "
                    "content, e.g. "
                    f"{fit.item_index.inverse_transform(lacking[:10]).tolist()}. "
                    "Add their content or set use_item_ids=True."
                )
        module = HybridCNN(**self._module_kwargs(
            n_users=fit.n_users, n_items=fit.n_items, n_components=self.n_components,
            content_index=index, images=images, texts=texts,
            conv_channels=tuple(self.conv_channels), kernel_size=self.kernel_size,
            dense_size=self.dense_size, embedding_dim=self.embedding_dim,
            text_filters=self.text_filters,
            text_kernel_sizes=tuple(self.text_kernel_sizes),
            use_item_ids=self.use_item_ids, id_dropout=self.id_dropout,
            global_bias=self._target_mean(fit), init_std=self.init_std,
            **self._attribute_sizes(training, standalone=True),
        ))
        self._fill_attribute_rows(module, fit, training)
        return module

    def _refresh_module(self, module, fit):
        """A warm start reads the content of ``item_content`` afresh."""
        if self.item_content is not None:
            self._check_same_modalities(module, self.item_content, "warm_start")
        n_tokens = (
            None if module.text_tower is None
            else module.text_tower.embedding.num_embeddings
        )
        device = fit.device
        tensors = self._content_tensors(self.item_content, fit.item_index, n_tokens)
        module.set_content(*(None if t is None else t.to(device) for t in tensors))

    # -- content after fit ----------------------------------------------------------

    def register_items(self, item_content):
        """Add or replace item content after fit, without retraining.

        Items whose ids are new join the item space as cold items (scored
        from their content alone, recommended like any other item); items
        already known get their content replaced. The content must have the
        fitted modalities and image shape, and images the fitted scale (the
        normalisation statistics of fit are reused). Text tokens outside the
        fitted vocabulary are treated as padding.

        Parameters
        ----------
        item_content : ItemContent
            Content of the items to add or update.

        Returns
        -------
        self : CNNRecommender
            The estimator, with a larger item space when new ids were given.
        """
        check_is_fitted(self)
        if not isinstance(item_content, ItemContent):
            raise TypeError(
                "register_items needs an ItemContent, got "
                f"{type(item_content).__name__}."
            )
        module = self._module()
        if not module.has_content:
            raise ValueError(
                "This CNNRecommender was fitted without item_content (id-only); "
                "it has no content towers to score new items. Refit with "
                "item_content=ItemContent(...)."
            )
        self._check_same_modalities(module, item_content, "register_items")
        ids = item_content.item_ids
        new = self._item_index.transform(ids) < 0
        if new.any() and self._convention == "matrix":
            raise ValueError(
                "This model was fitted on a user x item matrix, whose item ids "
                f"are its column indices; ids {ids[new][:10].tolist()} are not "
                "columns. register_items can only update the content of existing "
                "columns here; fit on an interaction table to add items."
            )
        item_index = self._item_index.extended(ids)
        index, images, texts = self._merged_content(module, item_content, item_index)
        seen = self._seen
        seen = sp.csr_array(
            (seen.data, seen.indices, seen.indptr), shape=(seen.shape[0], len(item_index))
        )
        # everything is built: replace the state at once
        module.set_content(index, images, texts)
        self._item_index, self._seen = item_index, seen
        return self

    @staticmethod
    def _merged_content(module, content, item_index):
        """The module's content with ``content`` added or replacing rows."""
        device = module.content_index.device
        pos = item_index.transform(content.item_ids)
        old_index = module.content_index[:-1].cpu().numpy()
        keep_items = np.flatnonzero(old_index >= 0)
        keep_items = keep_items[~np.isin(keep_items, pos)]
        keep_rows = torch.as_tensor(old_index[keep_items], device=device)
        index = np.full(len(item_index), -1, dtype=np.int64)
        index[keep_items] = np.arange(len(keep_items))
        index[pos] = len(keep_items) + np.arange(len(pos))
        images = texts = None
        if module.image_tower is not None:
            new_img = _as_image_tensor(content.images).to(device)
            old_img = module.images[keep_rows]
            if new_img.dtype != old_img.dtype:
                new_img, old_img = new_img.float(), old_img.float()
            images = torch.cat([old_img, new_img])
        if module.text_tower is not None:
            n_tokens = module.text_tower.embedding.num_embeddings
            new_txt = _as_text_tensor(content.texts, n_tokens).to(device)
            texts = torch.cat(_pad_texts(module.texts[keep_rows], new_txt))
        return torch.as_tensor(index, device=device), images, texts

    # -- fitted parameters as numpy ---------------------------------------------------

    @property
    def cold_item_ids_(self):
        check_is_fitted(self, "net_")
        counts = np.asarray(self._seen.sum(axis=0)).ravel()
        return self._item_index.ids[counts == 0]

    @property
    def user_embeddings_(self):
        check_is_fitted(self, "net_")
        return self._module().user_embeddings().detach().float().cpu().numpy().copy()

    @property
    def item_embeddings_(self):
        check_is_fitted(self, "net_")
        module = self._module()
        with module.scoring():
            return module.item_embeddings().float().cpu().numpy().copy()
