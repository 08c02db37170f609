"""The neural recommenders' fit and the two families built on it.

:class:`NeuralRecommender` implements :meth:`BaseRecommender._fit` once for
every neural model, through skorch. A model fills in the hooks that make it
different:

* ``_training_data(fit) -> TrainingData``: its training (and validation)
  rows as device tensors, the batch transform (negative sampling) and any
  extra fitted state;
* ``_build_module(fit, training) -> Scorer``: its network;
* ``_criterion(fit)``: the loss module (default: the pair loss of ``loss``);
* ``_optimizer(fit) -> (class, kwargs)`` (default: Adam);
* ``_refresh_module(module, fit)``: update a fitted module before a warm
  start continues it (default: nothing);
* ``_after_training(module, fit)``: last touches (default: nothing).

:class:`PairRecommender` (trained on (user, item, target) rows: MF, CNN) and
:class:`SequenceRecommender` (next-item models: LSTM, attention) fill the
hooks each family shares; the models themselves only build their network.
"""

import copy
import numbers

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import expit
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping, ProgressBar
from torch.nn import functional as F

from ._attributes import AttributeEncoder, Attributes
from ._base import BaseRecommender
from ._fold_in import fold_in_gradient, fold_in_ridge
from ._input import seen_matrix
from ._objectives import (
    NegativeSampler,
    RecommenderLoss,
    SequenceLoss,
    SequenceNegativeSampler,
    SharedNegatives,
    UserRowSample,
    UserRowTargets,
    UserTokenTargets,
    per_user_split,
    popularity_log_q,
    positive_keys,
)
from ._privacy import DifferentialPrivacy
from ._sequence_data import left_padded, order_histories, ordered, training_sequences
from ._training import (
    AcceleratedRecommenderNet,
    RecommenderNet,
    TensorDataset,
    TrainingData,
    derived_seed,
    init_generator,
)
from .nn import LinearItemScorer, SparseDenseAdam


def _silent(*args, **kwargs):
    """A picklable sink that prints nothing."""


# skorch's own parameters a neural estimator accepts as keyword arguments and
# routes to its net, as skorch documents them (``NeuralNet(lr=..., module__x=...)``)
_NET_PARAMS = ("lr", "max_epochs", "optimizer", "compile")
_NET_PREFIXES = (
    "module__", "optimizer__", "criterion__", "iterator_train__", "iterator_valid__",
    "callbacks__", "compile__",
)


def _is_net_param(name):
    return name in _NET_PARAMS or name.startswith(_NET_PREFIXES)


def _same_param(a, b):
    """Whether two parameter values are equal (arrays and objects included)."""
    try:
        return bool(np.all(a == b)) if type(a) is type(b) else False
    except (TypeError, ValueError):
        return a is b


class NeuralRecommender(BaseRecommender):
    """Base of the neural recommenders: one ``fit`` through skorch.

    Training knobs follow scikit-learn's MLP names (``max_iter``,
    ``batch_size``, ``learning_rate_init``, ``alpha``, ``early_stopping``,
    ``validation_fraction``, ``n_iter_no_change``, ``tol``, ``warm_start``,
    ``verbose``). The fitted network is ``net_`` (a
    :class:`~sklearn_recsys._training.RecommenderNet`), with ``loss_curve_``,
    ``validation_loss_curve_`` and ``n_iter_``.
    """

    _parameter_constraints = {
        **BaseRecommender._parameter_constraints,
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "callbacks": [list, None],
        "verbose": ["verbose"],
        "accelerator": [None, HasMethods(["prepare", "backward", "unwrap_model"])],
    }

    # "auto" early stopping: on above this many training interactions (the
    # threshold of scikit-learn's HistGradientBoosting* for its samples)
    _AUTO_EARLY_STOPPING = 10_000
    # Items shared by a batch under the sampled softmax (n_negatives="auto";
    # MF overrides it), chosen on validation NDCG@10 of both datasets
    # (benchmarks/tune_defaults.py), K = 512 / 1024 / 2048 against the full
    # softmax: attention ML-100K 0.1100 / 0.1141 / 0.1087 vs 0.1123,
    # latest-small 0.0575 / 0.0720 / 0.0643 vs 0.0790 (next-item figures on
    # a few hundred users are noisy).
    _AUTO_SHARED_NEGATIVES = 1024

    def _module(self):
        return self.net_.module_

    # -- data-parallel training (``accelerator``) -------------------------------

    def _n_processes(self):
        """Processes training together (1 without an accelerator)."""
        accelerator = getattr(self, "accelerator", None)
        return 1 if accelerator is None else int(accelerator.num_processes)

    def _optimizer_takes_sparse(self, solver):
        """Whether skorch's ``optimizer`` (if given) can train sparse gradients.

        ``solver="sparse_adam"`` with another optimizer raises a ValueError.
        """
        optimizer = self._net_params().get("optimizer")
        takes = optimizer is None or (
            isinstance(optimizer, type) and issubclass(optimizer, SparseDenseAdam)
        )
        if not takes and solver == "sparse_adam":
            raise ValueError(
                f"solver='sparse_adam' trains sparse gradients with SparseDenseAdam, "
                f"but optimizer={optimizer!r} was given: use solver='adam' with it."
            )
        return takes

    def _check_accelerator(self):
        """Settings that training through ``accelerator`` cannot honour."""
        if getattr(self, "accelerator", None) is None:
            return
        if self._private():
            raise ValueError(
                "differential_privacy samples users with its own per-example "
                "gradients, which the accelerator does not share out among processes: "
                "leave accelerator at None with differential_privacy."
            )
        if self.warm_start:
            raise ValueError(
                "warm_start=True continues the fitted network on one process; with an "
                "accelerator every fit starts afresh: set warm_start=False."
            )

    def _fit_seed(self, seed):
        """With several processes, every process takes the main process's seed."""
        if self._n_processes() > 1:
            from accelerate.utils import broadcast_object_list

            seed = broadcast_object_list([seed], from_process=0)[0]
        return seed

    def _fit_device(self):
        """With an accelerator, its device (``device`` must not contradict it)."""
        if getattr(self, "accelerator", None) is None:
            return super()._fit_device()
        device = torch.device(self.accelerator.device)
        # the same decision in every process: the kind of device, not its index
        if self.device not in ("cpu", "auto") and torch.device(self.device).type != device.type:
            raise ValueError(
                f"device={self.device!r} but the accelerator trains on {device.type!r}: "
                "leave device at 'cpu' (the accelerator places the network) or set "
                "the accelerator's device."
            )
        return "cpu" if device.type == "cpu" else str(device)

    # -- skorch's parameters -------------------------------------------------

    def _store_net_params(self, params):
        """Keep extra keyword arguments (``__init__``, ``set_params``).

        As skorch does, any name is kept and checked at ``fit``
        (:meth:`_net_params`); the accepted ones are skorch's parameters.
        """
        for name, value in params.items():
            setattr(self, name, value)

    def _net_params(self, check=False):
        """The extra keyword arguments given (skorch's parameters).

        They are the public attributes that are neither declared parameters
        nor fitted ones (trailing underscore). ``check=True`` raises a
        TypeError for a name that is not one of skorch's parameters.
        """
        declared = set(self._get_param_names())
        extra = {
            k: v for k, v in vars(self).items()
            if not k.startswith("_") and not k.endswith("_") and k not in declared
        }
        unknown = sorted(k for k in extra if not _is_net_param(k))
        if check and unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) "
                f"{unknown}. Besides its own parameters it accepts skorch's "
                f"{', '.join(_NET_PARAMS)} and parameters prefixed with "
                f"{', '.join(_NET_PREFIXES)}."
            )
        return extra

    def _net_params_for(self, prefix):
        """The skorch-style parameters ``prefix__*``, without the prefix."""
        start = len(prefix) + 2
        return {k[start:]: v for k, v in self._net_params().items() if k.startswith(prefix + "__")}

    def get_params(self, deep=True):
        """Get parameters, skorch-style ones (``optimizer__*``...) included.

        Parameters
        ----------
        deep : bool, default=True
            As for :meth:`sklearn.base.BaseEstimator.get_params`.

        Returns
        -------
        params : dict
        """
        return {**super().get_params(deep=deep), **self._net_params()}

    def set_params(self, **params):
        """Set parameters, skorch-style ones (``optimizer__*``...) included.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : object
        """
        declared = set(self._get_param_names())
        extra = {  # skorch's parameters, or other names checked at fit
            k: params.pop(k) for k in list(params)
            if k not in declared and (_is_net_param(k) or "__" not in k)
        }
        super().set_params(**params)
        self._store_net_params(extra)
        return self

    def _module_kwargs(self, **defaults):
        """Keyword arguments of the module: ``defaults`` and ``module__*``."""
        return {**defaults, **self._net_params_for("module")}

    def _early_stopping(self, fit):
        """Whether this fit holds out validation data and stops early."""
        if self._private():  # validation scores are not private: no early stopping
            return False
        if self.early_stopping == "auto":
            return len(fit.data) > self._AUTO_EARLY_STOPPING
        return self.early_stopping

    # -- differential privacy ----------------------------------------------------

    def _private(self):
        return getattr(self, "differential_privacy", None) is not None

    def _check_privacy(self):
        """Settings that differentially private training cannot honour."""
        if self.early_stopping is True:
            raise ValueError(
                "differential_privacy trains for max_iter epochs: early stopping "
                "would choose the epoch on validation scores computed from private "
                "data without noise. Set early_stopping=False (or 'auto')."
            )
        if self.warm_start:
            raise ValueError(
                "differential_privacy accounts for the privacy spent in one fit; "
                "warm_start=True would spend more without accounting for it. Set "
                "warm_start=False."
            )

    def _privacy_run(self, fit, training):
        """The fit's :class:`~sklearn_recsys._privacy.PrivacyRun` (None: not private).

        The unit of privacy is a user: the rows of a user (``users`` of the
        training rows) are sampled, clipped and accounted for together.
        """
        if not self._private():
            return None
        from ._privacy import PrivacyRun

        users = training.train.tensors["users"]
        _, units = torch.unique(users, return_inverse=True)
        return PrivacyRun(
            self.differential_privacy, units,
            epochs=self._net_params().get("max_epochs", self._resolved_max_iter()),
            seed=derived_seed(fit.seed, "noise"), device=fit.device,
            per_user=self._per_user_parameters(),
        )

    def _per_user_parameters(self):
        """Names of the network's parameters of which each row is one user's."""
        return ()

    def _privacy_attributes(self, run):
        if run is None:
            return {}
        return {
            "epsilon_": run.epsilon(), "delta_": run.delta,
            "noise_multiplier_": run.noise_multiplier,
        }

    # -- hooks -------------------------------------------------------------

    def _training_data(self, fit):
        raise NotImplementedError

    def _build_module(self, fit, training):
        raise NotImplementedError

    def _criterion(self, fit):
        log_q = None
        if getattr(self, "loss", None) == "sampled_softmax":
            log_q = popularity_log_q(fit.data.items, fit.n_items, fit.device)
        return RecommenderLoss(**{
            "loss": self.loss, "alpha": self._resolved_alpha(), "log_q": log_q,
            **self._net_params_for("criterion"),
        })

    def _optimizer(self, fit):
        return torch.optim.Adam, {}

    # -- attributes --------------------------------------------------------------

    def _extra_users(self):
        """Users of ``user_attributes`` join the user space (cold when not interacted)."""
        attributes = getattr(self, "user_attributes", None)
        return None if attributes is None else ("user_attributes", attributes.ids)

    def _extra_items(self):
        """Items of ``item_attributes`` join the item space."""
        attributes = getattr(self, "item_attributes", None)
        return None if attributes is None else ("item_attributes", attributes.ids)

    def _encoder(self, side, doing):
        encoder = getattr(self, f"_{side}_encoder", None)
        if encoder is None:
            raise ValueError(
                f"{doing} needs {side} attributes, but this {type(self).__name__} was "
                f"fitted without {side}_attributes; refit with "
                f"{side}_attributes=Attributes(...)."
            )
        return encoder

    def _register(self, side, attributes):
        check_is_fitted(self)
        if not isinstance(attributes, Attributes):
            raise TypeError(
                f"register_{side}s needs an Attributes, got {type(attributes).__name__}."
            )
        encoder = self._encoder(side, f"register_{side}s")
        id_index = getattr(self, f"_{side}_index")
        ids = self._check_matrix_indices(side, attributes.ids)
        new = id_index.transform(ids) < 0
        if new.any() and self._convention == "matrix":
            raise ValueError(
                f"This model was fitted on a user x item matrix, whose {side} ids are "
                f"its {'row' if side == 'user' else 'column'} indices; ids "
                f"{ids[new][:10].tolist()} are not. register_{side}s can only update "
                "existing ones here; fit on an interaction table to add ids."
            )
        extended = id_index.extended(ids)
        # no table when the attributes encode to no feature at all
        table = getattr(self._module(), f"{side}_attributes")
        n_old, n_new = len(id_index), len(extended)
        if table is not None:
            index = np.full((n_new + 1, encoder.width), encoder.n_features, dtype=np.int64)
            weight = np.zeros((n_new + 1, encoder.width), dtype=np.float32)
            has_id = np.zeros(n_new + 1, dtype=bool)
            index[:n_old] = table.feature_index[:n_old].cpu().numpy()
            weight[:n_old] = table.feature_weight[:n_old].cpu().numpy()
            has_id[:n_old] = table.has_id[:n_old].cpu().numpy()
            index[extended.transform(ids)], weight[extended.transform(ids)] = (
                encoder.encode(attributes, encoder.width)
            )
        seen = self._seen
        if side == "user":
            indptr = np.r_[seen.indptr, np.full(n_new - n_old, seen.indptr[-1])]
            seen = sp.csr_array((seen.data, seen.indices, indptr), shape=(n_new, seen.shape[1]))
        else:
            seen = sp.csr_array(
                (seen.data, seen.indices, seen.indptr), shape=(seen.shape[0], n_new)
            )
        extra = self._registered_state(side, n_old, n_new)
        # everything is built: replace the state at once
        if table is not None:
            table.set_rows(index, weight, has_id)
        setattr(self, f"_{side}_index", extended)
        self._seen = seen
        for name, value in extra.items():
            setattr(self, name, value)
        return self

    def _registered_state(self, side, n_old, n_new):
        """Fitted state that ``n_new - n_old`` registered ids extend (by name)."""
        return {}

    def _attribute_id_dropout(self):
        """Probability of training an id with its attributes alone (0: never)."""
        return 0.0

    @staticmethod
    def _attribute_sizes(training, standalone=False):
        """The network's attribute sizes (``n_item_features``...) for the encoders.

        ``standalone``: with any attributes, also ``standalone_attributes``
        (ids without their own vector are scored by the map of their
        attributes, see :meth:`_fit_standalone`).
        """
        sizes = {}
        for side in ("user", "item"):
            encoder = training.fitted[f"_{side}_encoder"]
            if encoder is not None:
                sizes[f"n_{side}_features"] = encoder.n_features
                sizes[f"{side}_feature_width"] = encoder.width
        if sizes and standalone:
            sizes["standalone_attributes"] = True
        return sizes

    def _fill_attribute_rows(self, module, fit, training):
        """Give the network's attribute tables the encoded rows of the fit's ids.

        Ids without training interactions train with their attributes alone
        (their own vectors would learn nothing, and are zeroed after
        training); the others drop their own vector with ``id_dropout``.
        """
        p = self._attribute_id_dropout()
        for side in ("user", "item"):
            table = getattr(module, f"{side}_attributes", None)
            if table is None:
                continue
            encoder = training.fitted[f"_{side}_encoder"]
            index, weight = encoder.aligned(
                getattr(self, f"{side}_attributes"), getattr(fit, f"{side}_index")
            )
            counts = np.bincount(getattr(fit.data, f"{side}s"), minlength=len(index))
            # id_dropout=1: the ids' own vectors never train, attributes only
            table.set_rows(index, weight, has_id=(counts > 0) & (p < 1))
            table.set_training_rows(counts > 0, np.where(counts > 0, p, 1.0))

    @staticmethod
    def _fit_standalone(table, vectors):
        """Ridge map from the attributes to the learned vectors of the ids.

        The ids with their own vector (``table.has_id``) give the examples:
        their attribute features -> ``vectors(rows)``, their whole learned
        vector; the penalty is chosen by efficient leave-one-out among 11
        values (:class:`~sklearn.linear_model.RidgeCV`). Ids without their
        own vector are then scored from the map of their attributes (the
        attribute-to-factor mapping of Gantner et al., 2010). Nothing to do
        for a table without a standalone map.
        """
        from sklearn.linear_model import Ridge, RidgeCV

        if table.standalone_weight is None:
            return
        rows = torch.nonzero(table.has_id[:-1]).ravel()
        if len(rows) == 0:
            return
        index = table.feature_index[rows].cpu().numpy()
        weight = table.feature_weight[rows].cpu().numpy()
        features = sp.csr_array(
            (weight.ravel(), index.ravel(), np.arange(0, index.size + 1, index.shape[1])),
            shape=(len(rows), table.n_features + 1),
        )[:, : table.n_features]
        target = vectors(rows).float().cpu().numpy()
        ridge = (
            RidgeCV(alphas=np.logspace(-2, 3, 11)) if len(rows) > 2 else Ridge(alpha=1.0)
        ).fit(features, target)
        table.set_standalone(np.asarray(ridge.coef_, dtype=np.float32).T,
                             np.asarray(ridge.intercept_, dtype=np.float32))

    def _refresh_module(self, module, fit):
        """Update the fitted module before a warm start continues it."""

    def _after_training(self, module, fit):
        """Last touches on the trained module."""

    def _resolved_alpha(self):
        """The L2 weight to train with (estimators may resolve ``"auto"``)."""
        return self.alpha

    def _resolved_max_iter(self):
        """The epochs to train for (estimators may resolve ``"auto"``)."""
        return self.max_iter

    # -- the fit -------------------------------------------------------------

    # Parameters a warm start may change: the rest shape the network or its
    # objective, which the fitted net keeps.
    _WARM_START_MUTABLE = frozenset({
        "max_iter", "max_epochs", "warm_start", "verbose", "n_iter_no_change", "tol",
        "random_state", "callbacks",
    })

    def _continues(self, fit):
        """Whether this fit continues ``net_`` (``warm_start``, same ids and net)."""
        if not (self.warm_start and hasattr(self, "net_")):
            return False
        if getattr(self, "_from_artifact", False):
            raise ValueError(
                "warm_start=True continues the previous fit, but this model was loaded "
                "from an artifact, which holds no training state (optimizer, "
                "history); set warm_start=False to fit afresh, or keep models to "
                "continue with pickle."
            )
        if not (
            np.array_equal(self._user_index.ids, fit.user_index.ids)
            and np.array_equal(self._item_index.ids, fit.item_index.ids)
        ):
            raise ValueError(
                "warm_start=True continues the previous fit and needs the same "
                "users and items; set warm_start=False to fit new data afresh."
            )
        previous, current = self._fitted_params, self.get_params(deep=False)
        changed = sorted(
            k for k in set(previous) | set(current)
            if k not in self._WARM_START_MUTABLE
            and not _same_param(previous.get(k), current.get(k))
        )
        if changed:
            raise ValueError(
                f"warm_start=True continues the fitted network, but {changed} changed "
                "since it was fitted; set them back, or set warm_start=False to fit "
                "afresh."
            )
        return True

    def _check_callbacks(self, training):
        """A callback monitoring validation scores needs validation data."""
        if training.valid is not None:
            return
        for callback in self.callbacks or []:
            callback = callback[1] if isinstance(callback, tuple) else callback
            monitor = getattr(callback, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("valid"):
                raise ValueError(
                    f"callbacks holds a {type(callback).__name__} monitoring "
                    f"{monitor!r}, but no validation data is held out: set "
                    "early_stopping=True (validation_fraction, n_iter_no_change "
                    "and tol configure it) instead of passing skorch's "
                    "EarlyStopping, or monitor 'train_loss'."
                )

    def _fit(self, fit):
        self._net_params(check=True)
        self._check_accelerator()
        if self._private():
            self._check_privacy()
        training = self._training_data(fit)
        for side in ("user", "item"):  # the attributes' fitted encodings
            attributes = getattr(self, f"{side}_attributes", None)
            training.fitted[f"_{side}_encoder"] = (
                None if attributes is None else AttributeEncoder(attributes)
            )
        self._check_callbacks(training)
        privacy = self._privacy_run(fit, training)
        if self._continues(fit):
            # continue a copy: a fit that raises leaves net_ as it was
            net = copy.deepcopy(self.net_)
            self._refresh_module(net.module_, fit)
            net.set_params(
                max_epochs=self._net_params().get("max_epochs", self._resolved_max_iter()),
                seed=fit.seed, batch_transform=training.batch_transform,
                callbacks=self._callbacks(training), verbose=self.verbose,
                batch_size=training.batch_size or self._batch_size(),
            )
            net.initialize_callbacks()  # this fit's callbacks, fresh
            net.partial_fit(training)
        else:
            # modules draw their default initialisation from torch's global
            # generator: leave it as it was (the fit's own generator decides)
            with torch.random.fork_rng(devices=[]):
                module = self._new_module(fit, training)
            net = self._make_net(module, fit, training, privacy).fit(training)
        self._after_training(net.module_, fit)
        net.set_params(batch_transform=None, privacy=None)  # training data: not kept
        if isinstance(net, AcceleratedRecommenderNet):
            net = net.trained_net(fit.device)  # the accelerator stays the process's
        # skorch's compile=True trained torch.compile'd modules: keep the
        # modules themselves (scoring, artifacts and pickles use them)
        for name in ("module_", "criterion_"):
            setattr(net, name, getattr(getattr(net, name), "_orig_mod", getattr(net, name)))
        net.module_.eval()  # scoring mode; training switches it back itself
        history = net.history
        return {
            "net_": net,
            "loss_curve_": [float(v) for v in history[:, "train_loss"]],
            "validation_loss_curve_": (
                [float(row.get("valid_loss", np.nan)) for row in history]
                if training.valid is not None else None
            ),
            "n_iter_": len(history),
            "_fitted_params": self.get_params(deep=False),
            **self._privacy_attributes(privacy),
            **training.fitted,
        }

    # -- portable state (artifacts, skops): the network's weights ----------------

    # the warm-start record of the parameters: training state, not stored
    _NOT_PORTABLE = ("_fitted_params", "_from_artifact")
    _RUNTIME_PARAMS = ("accelerator",)

    def _portable_value(self, name):
        return self.net_.module_ if name == "net_" else super()._portable_value(name)

    def _restored(self, state, device):
        """Wrap the restored network in a skorch net without training state."""
        module = state["net_"]
        net = RecommenderNet(module, criterion=torch.nn.MSELoss, device=str(device))
        net.initialize()  # takes the module instance as it is
        state["net_"] = net
        state["_from_artifact"] = True  # no optimizer state to continue
        return state

    def _new_module(self, fit, training):
        """The hook's network, initialised from the fit's own generator."""
        try:
            module = self._build_module(fit, training)
        except TypeError as exc:
            if not self._net_params_for("module"):
                raise
            raise TypeError(
                f"module__ parameters {sorted(self._net_params_for('module'))} "
                f"do not all fit the network of {type(self).__name__}: {exc}"
            ) from exc
        module.reset_parameters(init_generator(fit.seed))
        return module

    def _batch_size(self):
        """Rows per mini-batch (models with ``batch_size="auto"`` resolve it)."""
        return self.batch_size

    def _callbacks(self, training):
        """The user's callbacks, early stopping and the progress bar."""
        callbacks = list(self.callbacks or [])
        accelerator = getattr(self, "accelerator", None)
        sink = print if accelerator is None else accelerator.print  # main process only
        if training.valid is not None:
            callbacks.append(("early_stopping", EarlyStopping(
                monitor="valid_loss", patience=self.n_iter_no_change,
                threshold=self.tol, threshold_mode="abs", load_best=True,
                sink=sink if self.verbose else _silent,
            )))
        if self.verbose and (accelerator is None or accelerator.is_main_process):
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    def _make_net(self, module, fit, training, privacy=None):
        callbacks = self._callbacks(training)
        optimizer, optimizer_params = self._optimizer(fit)
        net = self._net_params()
        optimizer_params = {**optimizer_params, **self._net_params_for("optimizer")}
        routed = {  # skorch's iterator_*__ and callbacks__ parameters, as given
            k: v for k, v in net.items()
            if k.startswith(("iterator_train__", "iterator_valid__", "callbacks__", "compile__"))
            or k == "compile"
        }
        net_class, accelerated = RecommenderNet, {"device": fit.device}
        if getattr(self, "accelerator", None) is not None:
            # the accelerator places the network on its device
            net_class = AcceleratedRecommenderNet
            accelerated = {
                "accelerator": self.accelerator, "device": None,
                # skorch prints through any sink but `print` whatever verbose
                "callbacks__print_log__sink": self.accelerator.print if self.verbose else _silent,
            }
            if not getattr(self.accelerator, "device_placement", True):
                accelerated["device"] = fit.device  # skorch places the network
            accelerated.update((k, routed.pop(k)) for k in list(routed) if k in accelerated)
        return net_class(
            module, criterion=self._criterion(fit),
            optimizer=net.get("optimizer", optimizer),
            lr=net.get("lr", self.learning_rate_init),
            max_epochs=net.get("max_epochs", self._resolved_max_iter()),
            batch_size=training.batch_size or self._batch_size(), callbacks=callbacks,
            **accelerated,
            verbose=self.verbose, seed=fit.seed, batch_transform=training.batch_transform,
            privacy=privacy,
            **{f"optimizer__{k}": v for k, v in optimizer_params.items()}, **routed,
        )


class AttributeRegistration:
    """``register_users`` / ``register_items`` of the models reading attributes."""

    def register_users(self, user_attributes):
        """Add users (or replace their attributes) after fit, without retraining.

        New ids join the user space as users without interactions (for the
        sequence models, with an empty history): scored and recommended to
        from their attributes alone. Known ids get their attributes
        replaced. Categories unseen at fit add no feature; numeric columns
        are standardised as at fit. Needs ``user_attributes`` at fit.

        Parameters
        ----------
        user_attributes : Attributes
            Attributes of the users to add or update, with the columns of fit.

        Returns
        -------
        self : object
        """
        return self._register("user", user_attributes)

    def register_items(self, item_attributes):
        """Add items (or replace their attributes) after fit, without retraining.

        New ids join the item space as items without interactions: scored
        and recommended from their attributes alone. Known ids get their
        attributes replaced. Categories unseen at fit add no feature;
        numeric columns are standardised as at fit. Needs
        ``item_attributes`` at fit.

        Parameters
        ----------
        item_attributes : Attributes
            Attributes of the items to add or update, with the columns of fit.

        Returns
        -------
        self : object
        """
        return self._register("item", item_attributes)


class PairRecommender(NeuralRecommender):
    """Shared by recommenders trained on (user, item, target) rows.

    ``loss`` is one of ``"mse"`` (ratings), ``"bce"`` (click labels in
    [0, 1], sampled negatives labelled 0), ``"bpr"`` (non-negative
    weights, pairwise against sampled negatives) or ``"softmax"``
    (non-negative weights, cross-entropy over the whole catalogue, batches
    of whole users; models that support it). Negatives are drawn uniformly
    among the items with training interactions that the user did not
    interact with.
    """

    def _check_targets(self, values):
        """Targets of the rows, validated for ``loss`` (unit weights if none)."""
        if values is None:
            if self.loss == "mse":
                raise ValueError(
                    "loss='mse' needs explicit targets: pass the ratings as y "
                    "(or use a user x item matrix whose values are the ratings), "
                    "or choose an implicit-feedback loss ('softmax' for MF, "
                    "'bce' or 'bpr')."
                )
            return None
        if self.loss == "bce" and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                "loss='bce' needs click labels in [0, 1], got targets in "
                f"[{values.min():g}, {values.max():g}]. Binarize ratings first "
                "(e.g. sklearn.preprocessing.Binarizer) or use loss='mse'."
            )
        if self.loss in ("bpr", "softmax", "sampled_softmax") and values.min() < 0:
            raise ValueError(
                f"loss={self.loss!r} needs non-negative interaction weights, got a "
                f"minimum of {values.min():g}."
            )
        return values

    def _target_mean(self, fit):
        """Initial global bias: the mean rating for ``"mse"``, else 0."""
        if self.loss != "mse":
            return 0.0
        return float(torch.as_tensor(fit.data.values).mean())

    def _training_data(self, fit):
        data, device = fit.data, fit.device
        values = self._check_targets(data.values)
        if values is None:
            values = np.ones(len(data.users), dtype=np.float32)
        if self.loss in ("softmax", "sampled_softmax"):
            return self._user_rows_data(fit, values)
        users = torch.as_tensor(data.users, device=device)
        items = torch.as_tensor(data.items, device=device)
        y = torch.as_tensor(values, device=device)
        if data.weights is not None:  # (target, sample weight) rows
            y = torch.stack([y, torch.as_tensor(data.weights, device=device)], dim=1)
        dataset = TensorDataset({"users": users, "items": items}, y)
        valid = None
        train_idx, valid_idx = self._validation_rows(fit)
        if valid_idx is not None:
            dataset, valid = dataset.subset(train_idx), dataset.subset(valid_idx)
        sampler = None
        if self.loss != "mse":
            trained = np.unique(data.items)
            sampler = NegativeSampler(
                positive_keys(users, items, fit.n_items), fit.n_items, self._resolved_negatives(),
                None if len(trained) == fit.n_items
                else torch.as_tensor(trained, device=device),
            )
        return TrainingData(dataset, valid, sampler)

    def _validation_rows(self, fit):
        """Training and validation row indices, or ``(None, None)`` without."""
        if not self._early_stopping(fit):
            return None, None
        train_idx, valid_idx = per_user_split(
            fit.data.users, self.validation_fraction, seed=fit.seed
        )
        if len(valid_idx):
            return train_idx, valid_idx
        if self.early_stopping is True:
            raise ValueError(
                "early_stopping=True needs validation data, but "
                f"validation_fraction={self.validation_fraction} holds out no "
                "interaction (each user gives floor(fraction * "
                "n_user_interactions)). Increase validation_fraction or "
                "disable early stopping."
            )
        return None, None

    def _user_rows_data(self, fit, values):
        """Training data of the full-catalogue loss: batches of whole users.

        The interactions (their target weights times their sample weights)
        stay a CSR matrix on the device; :class:`UserRowTargets` makes the
        rows of a batch dense. Validation rows (early stopping) are a second
        block of rows of the same matrix. A batch holds about ``batch_size``
        interactions.
        """
        data, device, n_users = fit.data, fit.device, fit.n_users
        if data.weights is not None:
            values = values * data.weights
        rows = data.users.astype(np.int64)
        train_idx, valid_idx = self._validation_rows(fit)
        if valid_idx is not None:
            rows = rows.copy()
            rows[valid_idx] += n_users
        matrix = sp.csr_array(
            (np.asarray(values, dtype=np.float32), (rows, data.items)),
            shape=(2 * n_users, fit.n_items),
        )
        # users by their mass: an all-zero-weight user is no user
        mass = np.asarray(matrix.sum(axis=1)).ravel()

        def users_with_data(block):
            users = np.flatnonzero(mass[block * n_users : (block + 1) * n_users] > 0)
            return TensorDataset({
                "users": torch.as_tensor(users, device=device),
                "rows": torch.as_tensor(users + block * n_users, device=device),
            }, torch.ones(len(users), device=device))

        train = users_with_data(0)
        valid = users_with_data(1) if valid_idx is not None else None
        csr = (
            torch.as_tensor(matrix.indptr.astype(np.int64), device=device),
            torch.as_tensor(matrix.indices.astype(np.int64), device=device),
            torch.as_tensor(matrix.data, device=device), fit.n_items,
        )
        if self.loss == "sampled_softmax":
            transform = UserRowSample(
                *csr, popularity_log_q(data.items, fit.n_items, device),
                self._resolved_negatives(),
            )
        else:
            transform = UserRowTargets(*csr)
        n_train = np.count_nonzero(matrix.data[: matrix.indptr[n_users]])
        per_user = n_train / max(1, len(train))
        # Per batch the loss is (sum of cross-entropies) / (batch mass) +
        # alpha * mean |p_u|^2, so a user's penalty weighs like the mean
        # mass of a training user: fold-in uses the same.
        user_mass = float(mass[:n_users].sum()) / max(1, len(train))
        return TrainingData(
            train, valid, transform, fitted={"_user_mass_": user_mass},
            batch_size=max(1, int(round(self._batch_size() / per_user))),
        )

    @torch.no_grad()
    def _after_training(self, module, fit):
        """Users/items without training data get the fallback (zero) rows;
        with attributes, the ridge maps that score them are fitted."""
        cold_users = np.setdiff1d(np.arange(fit.n_users), fit.data.users)
        cold_items = np.setdiff1d(np.arange(fit.n_items), fit.data.items)
        for name, emb in module.named_children():
            cold = cold_users if name.startswith("user_") else cold_items
            if isinstance(emb, torch.nn.Embedding) and name.startswith(("user_", "item_")):
                if len(cold):
                    emb.weight[torch.as_tensor(cold, device=emb.weight.device)] = 0
        module.eval()
        if getattr(module, "user_attributes", None) is not None:
            self._fit_standalone(module.user_attributes, module.user_representation)
        if getattr(module, "item_attributes", None) is not None:

            def item_vectors(rows):
                q_aug, offset = module.item_linear_terms(rows)
                return torch.cat([q_aug[:, :-1], (offset - module.global_bias)[:, None]], 1)

            self._fit_standalone(module.item_attributes, item_vectors)

    # -- attributes after fit ----------------------------------------------------

    def _attribute_user_reprs(self, attributes):
        encoder = self._encoder("user", "recommend(Attributes(...))")
        index, weight = encoder.encode(attributes, encoder.width)
        module, device = self._module(), self._device()
        with module.scoring():
            table = module.user_attributes
            return table.embed(
                torch.as_tensor(index, device=device), torch.as_tensor(weight, device=device),
                standalone=table.standalone_weight is not None,
            )


    # MF's shared sample (n_negatives="auto"): mean validation NDCG@10 over
    # seeds 0-2 (benchmarks/tune_defaults.py --task topn --seeds 0 1 2), K =
    # 1024 / 2048 / 4096 against the full softmax: ML-100K 0.2649 / 0.2648 /
    # 0.2677 vs 0.2684, latest-small 0.1900 / 0.1931 / 0.1966 vs 0.1969.
    _AUTO_SHARED_NEGATIVES = 4096

    def _resolved_negatives(self):
        """``n_negatives``, with ``"auto"`` resolved (see the models' docs)."""
        if self.n_negatives != "auto":
            return self.n_negatives
        return self._AUTO_SHARED_NEGATIVES if self.loss == "sampled_softmax" else 4

    def _per_user_parameters(self):
        # the user factors and biases: a row is reached by its user's loss only
        return ("user_factors.weight", "user_bias.weight")

    def _postprocess_scores(self, scores):
        return expit(scores) if self.loss == "bce" else scores

    def _negative_items(self, device):
        """Boolean mask of the items fold-in treats as negatives (None: all)."""
        trained = np.asarray(self._seen.sum(axis=0)).ravel() > 0
        return None if trained.all() else torch.as_tensor(trained, device=device)

    def _fold_in(self, histories):
        """User representations for new users' histories, the model frozen.

        Ratings on a model linear in the user representation: exact ridge
        regression (:func:`~sklearn_recsys._fold_in.fold_in_ridge`).
        Otherwise: full-batch Adam on the model's own objective
        (:func:`~sklearn_recsys._fold_in.fold_in_gradient`), every item with
        training data a negative for the implicit losses.
        """
        if self.loss == "mse" and histories.values is None:
            raise ValueError(
                "loss='mse' folds new users in from their ratings, which an "
                "interaction table of histories does not carry; pass a user x "
                "item matrix of ratings (columns = item_ids_) instead."
            )
        H = histories.to_csr(len(self._item_index))
        if self.loss in ("bpr", "softmax", "sampled_softmax") and H.nnz and H.data.min() < 0:
            raise ValueError(
                f"loss={self.loss!r} folds new users in from non-negative "
                f"interaction weights; the histories hold {H.data.min():g}."
            )
        module, device, alpha = self._module(), self._device(), self._resolved_alpha()
        with module.scoring():
            if isinstance(module, LinearItemScorer):
                q_aug, offset = module.item_linear_terms()
                if self.loss == "mse":
                    # a model fitted by Gibbs sampling: its users' prior
                    return fold_in_ridge(q_aug, offset, H, alpha,
                                         prior=getattr(self, "_fold_in_prior_", None))

                def score_all(x):
                    return torch.addmm(offset[None, :], x, q_aug.T)

                dim = q_aug.shape[1]
            else:
                score_all = module.score_all
                dim = module.user_representation(
                    torch.zeros(1, dtype=torch.long, device=device)
                ).shape[1]
            return fold_in_gradient(
                score_all, dim, len(self._item_index), H, device=device,
                # the sampled softmax estimates the full one: fold in with it
                loss="softmax" if self.loss == "sampled_softmax" else self.loss,
                alpha=alpha, n_negatives=self._resolved_negatives(),
                negatives=self._negative_items(device), cost=module.score_cost,
                # softmax: the penalty of a user weighs like the mean training
                # mass of a user (see ``_user_rows_data``)
                penalty_mass=(
                    self._user_mass_ if self.loss in ("softmax", "sampled_softmax") else None
                ),
            )


# Sequences encoded at once when computing user representations.
_ENCODE_BLOCK = 256


class SequenceRecommender(AttributeRegistration, NeuralRecommender):
    """Shared training data, history handling and scoring of the sequential models.

    Fitted state besides ``net_``: the ordered training histories, so that a
    known user is encoded from its whole training history.
    """

    # matrix values give the order: keep float64 so that nearby Unix
    # timestamps stay distinct (float32 steps are 128 s around 1.7e9)
    _matrix_dtype = np.float64
    _sequential = True

    _parameter_constraints = {
        **NeuralRecommender._parameter_constraints,
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_len": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "loss": [StrOptions({"auto", "softmax", "sampled_softmax", "bce"})],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left"),
                        StrOptions({"auto"})],
        "time_col": [str, numbers.Integral, None],
        "differential_privacy": [DifferentialPrivacy, None],
        "item_attributes": [Attributes, None],
        "user_attributes": [Attributes, None],
        "solver": [StrOptions({"auto", "adam", "sparse_adam"})],
    }

    def _check_params(self):
        if getattr(self, "solver", "auto") == "sparse_adam":
            reasons = {
                "item_attributes": self.item_attributes is not None,
                "differential_privacy": self.differential_privacy is not None,
                "an accelerator of several processes": self._n_processes() > 1,
            }
            refused = [name for name, given in reasons.items() if given]
            if refused:
                raise ValueError(
                    f"solver='sparse_adam' cannot train with {refused[0]}: use "
                    "solver='auto' or 'adam'."
                )
        for side in ("item", "user"):
            if (
                getattr(self, f"{side}_attributes") is not None
                and self.differential_privacy is not None
            ):
                raise ValueError(
                    "differential_privacy protects users' interactions; it does not "
                    f"cover {side} attributes: leave {side}_attributes at None with "
                    "differential_privacy."
                )

    @torch.no_grad()
    def _after_training(self, module, fit):
        """Items without interactions: their own vectors (never trained) are
        zeroed, and the ridge map of the item attributes scores them."""
        if module.item_attributes is None:
            return
        cold = np.setdiff1d(np.arange(fit.n_items), fit.data.items)
        if len(cold):
            cold = torch.as_tensor(cold, device=module.output_bias.device)
            module.item_embedding.weight[cold + 1] = 0
            module.output_bias[cold] = 0
            if module.output_embedding is not None:
                module.output_embedding.weight[cold] = 0
        module.eval()

        def item_vectors(rows):
            weight, bias = module._output_terms()
            return torch.cat([weight, bias[:, None]], dim=1)[rows]

        self._fit_standalone(module.item_attributes, item_vectors)

    # -- fitting hooks -----------------------------------------------------------

    def _validation_users(self, counts, fit):
        """Users whose last item validates (early stopping), sorted."""
        if not self._early_stopping(fit):
            return ()
        eligible = np.flatnonzero(counts >= 3)
        n_valid = int(round(self.validation_fraction * len(eligible)))
        if n_valid == 0 and self.early_stopping == "auto":
            return ()
        if n_valid == 0:
            raise ValueError(
                "early_stopping=True validates on the last item of "
                f"validation_fraction={self.validation_fraction} of the "
                f"users with 3+ interactions ({len(eligible)} here), i.e. "
                "on no user. Increase validation_fraction or disable early "
                "stopping."
            )
        rng = np.random.RandomState(fit.seed)
        return np.sort(rng.choice(eligible, n_valid, replace=False))

    def _training_data(self, fit):
        data, device = fit.data, fit.device
        keys = data.values if fit.convention == "matrix" else data.times
        flat, indptr, *flat_weights = order_histories(
            data.users, data.items, keys, fit.n_users, data.weights
        )
        counts = np.diff(indptr)
        if not (counts >= 2).any():
            raise ValueError(
                f"{type(self).__name__} learns from item transitions and needs "
                "at least one user with two or more interactions; every user "
                f"has at most one (n_users = {fit.n_users}, n_features = "
                f"{fit.n_items} items)."
            )
        with_users = self._reads_user_tokens()  # the user token's targets
        n_token = self._USER_TOKEN_TARGETS if with_users else 0
        valid_users = self._validation_users(counts, fit)
        users, seqs, targets, n_train, *weights = training_sequences(
            flat, indptr, self.max_len, valid_users, *flat_weights, token_targets=n_token,
        )
        targets = torch.as_tensor(targets, device=device)
        # The module reads the targets (to score the non-padded positions
        # only); skorch needs them as y as well, with the sample weights.
        y = targets
        if weights:
            y = torch.stack([targets.float(), torch.as_tensor(weights[0], device=device)], -1)
        dataset = TensorDataset(
            {
                "users": torch.as_tensor(users, device=device),
                "seqs": torch.as_tensor(seqs, device=device),
                "targets": targets,
            },
            y,
        )
        valid = None
        if n_train < len(dataset):
            valid = dataset.subset(np.arange(n_train, len(dataset)))
            dataset = dataset.subset(np.arange(n_train))
        if self._resolved_loss(fit) == "sampled_softmax":
            sampler = SharedNegatives(
                popularity_log_q(data.items, fit.n_items, device),
                self._resolved_negatives(fit), drop_users=not with_users,
            )
        else:
            sampler = SequenceNegativeSampler(
                positive_keys(
                    torch.as_tensor(data.users, device=device),
                    torch.as_tensor(data.items, device=device), fit.n_items,
                ),
                fit.n_items, self._resolved_negatives(fit) if self.loss == "bce" else 0,
                keep_users=with_users,
            )
        if with_users:  # the user token learns an item of its user at every batch
            train_ends = indptr[1:] - np.isin(np.arange(fit.n_users), valid_users)
            sampler = UserTokenTargets(
                torch.as_tensor(flat, device=device),
                torch.as_tensor(indptr[:-1], device=device),
                torch.as_tensor(train_ends - indptr[:-1], device=device), n_token,
                then=sampler,
            )
        fitted = {"_history_items": flat, "_history_indptr": indptr}
        return TrainingData(dataset, valid, sampler, fitted)

    # the seen items are the training histories' items: rebuilt on loading
    _NOT_PORTABLE = (*NeuralRecommender._NOT_PORTABLE, "_seen")

    def _restored(self, state, device):
        indptr = state["_history_indptr"]
        users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        state["_seen"] = seen_matrix(
            users, state["_history_items"], (len(indptr) - 1, len(state["_item_index"]))
        )
        return super()._restored(state, device)

    def _criterion(self, fit):
        loss = self._resolved_loss(fit)
        log_q = None
        if loss == "sampled_softmax":
            log_q = popularity_log_q(fit.data.items, fit.n_items, fit.device)
        return SequenceLoss(**{
            "loss": loss, "log_q": log_q, **self._net_params_for("criterion"),
        })

    # Positions x items of full-softmax logits in one batch above which
    # loss="auto" samples the softmax (2**26 floats: 256 MiB, as much again
    # for their gradient).
    _AUTO_SAMPLED_LOGITS = 2**26
    def _resolved_loss(self, fit):
        """``loss``, with ``"auto"`` resolved for this fit's catalogue."""
        if self.loss != "auto":
            return self.loss
        positions = self._batch_size() * self.max_len
        return "softmax" if positions * fit.n_items <= self._AUTO_SAMPLED_LOGITS else (
            "sampled_softmax"
        )

    def _resolved_negatives(self, fit):
        if self.n_negatives != "auto":
            return self.n_negatives
        if self._resolved_loss(fit) == "sampled_softmax":
            return min(self._AUTO_SHARED_NEGATIVES, fit.n_items)
        return 1

    def _optimizer(self, fit):
        optimizer = SparseDenseAdam if self._sparse_solver(fit) else torch.optim.Adam
        return optimizer, {"weight_decay": self.alpha}

    # Items read by a batch, times which the catalogue must exceed for
    # solver="auto" to go sparse (as MatrixFactorization's _AUTO_SPARSE_ROWS).
    _AUTO_SPARSE_ROWS = 8

    def _sparse_solver(self, fit):
        """Whether this fit's item tables have sparse gradients."""
        solver = getattr(self, "solver", "auto")
        loss = self._resolved_loss(fit)
        if solver == "sparse_adam" and loss == "softmax":
            raise ValueError(
                "The full softmax reads every item at every step: solver='sparse_adam' "
                f"cannot train it (loss={self.loss!r} is 'softmax' for this "
                "catalogue); use solver='auto' or 'adam', or loss='sampled_softmax'."
            )
        if not self._optimizer_takes_sparse(solver):
            return False
        if solver != "auto":
            return solver == "sparse_adam"
        if (
            loss == "softmax" or self.item_attributes is not None
            or self._private() or self._n_processes() > 1
        ):
            return False
        positions = self._batch_size() * self.max_len
        negatives = self._resolved_negatives(fit)
        read = positions + negatives if loss == "sampled_softmax" else positions * (1 + negatives)
        return fit.n_items > self._AUTO_SPARSE_ROWS * read

    # Items of its user the token's state is trained on per window and batch:
    # cold-start validation split of ML-100K users (bench_attributes' cold-user
    # protocol on the training users), NDCG@10 with 1 / 8 / 16 targets:
    # attention 0.497 / 0.532 / 0.540, LSTM 0.531 / 0.545 / 0.554 (Popularity
    # 0.540); but warm validation (inner UserHoldout), attention with user and
    # item attributes 0.1118 / 0.1132 / 0.1056 (none: 0.1113).
    _USER_TOKEN_TARGETS = 8

    def _reads_user_tokens(self):
        """Whether the encoder reads user tokens: user attributes with features
        (a table whose columns are all empty encodes to none)."""
        return (
            self.user_attributes is not None
            and AttributeEncoder(self.user_attributes).n_features > 0
        )

    def _attribute_sizes_of(self, fit, training):
        """The encoder's attribute sizes: the user table's rows with user
        attributes, the standalone map with item attributes."""
        sizes = self._attribute_sizes(training, standalone=self.item_attributes is not None)
        if self.user_attributes is not None:
            sizes["n_users"] = fit.n_users
        return sizes

    # -- attributes after fit ----------------------------------------------------

    def _registered_state(self, side, n_old, n_new):
        if side == "item":
            return {}
        indptr = self._history_indptr  # new users: empty histories
        return {"_history_indptr": np.r_[indptr, np.full(n_new - n_old, indptr[-1])]}

    # -- user representations ------------------------------------------------------

    def _encode(self, flat, indptr, users=None, user_tokens=None):
        """Final states ``(n_histories, embedding_dim)`` of ordered histories.

        With user attributes, each history is read after the token of its
        user (``users``: rows of the user attribute table; ``user_tokens``:
        the tokens themselves; neither: the unknown user's).
        """
        module = self._module()
        device = self._device()
        seqs = left_padded(flat, indptr[:-1], indptr[1:], self.max_len)
        if users is not None:
            users = torch.as_tensor(users, device=device)

        def block(s):
            rows = slice(s, s + _ENCODE_BLOCK)
            return module.user_representation(
                torch.as_tensor(seqs[rows], device=device),
                users=None if users is None else users[rows],
                user_tokens=None if user_tokens is None else user_tokens[rows],
            )

        with module.scoring():
            out = [block(s) for s in range(0, len(seqs), _ENCODE_BLOCK)]
        if not out:
            return torch.zeros(0, module.embedding_dim, device=device)
        return torch.cat(out)

    def _known_user_repr(self, users_idx):
        """States of known users after their training history.

        Index ``n_users`` (an unknown user under ``"fallback"``) gets the
        state of the empty history (zero; with user attributes, that of the
        unknown user's zero token).
        """
        users_idx = np.asarray(users_idx, dtype=np.int64)
        indptr = np.r_[self._history_indptr, self._history_indptr[-1]]
        starts, ends = indptr[users_idx], indptr[users_idx + 1]
        lengths = ends - starts
        sub_indptr = np.r_[0, np.cumsum(lengths)]
        take = np.repeat(starts - sub_indptr[:-1], lengths) + np.arange(lengths.sum())
        return self._encode(self._history_items[take], sub_indptr, users=users_idx)

    def _attribute_user_reprs(self, attributes):
        """New users known by their attributes alone: the state of their token."""
        encoder = self._encoder("user", "recommend(Attributes(...))")
        index, weight = encoder.encode(attributes, encoder.width)
        module, device = self._module(), self._device()
        tokens = None  # attributes without any feature: no token, the empty state
        if module.user_attributes is not None:
            with module.scoring():
                tokens = module.user_attributes.embed(
                    torch.as_tensor(index, device=device),
                    torch.as_tensor(weight, device=device),
                )
        empty = np.zeros(len(index) + 1, dtype=np.int64)
        return self._encode(np.zeros(0, dtype=np.int64), empty, user_tokens=tokens)

    def _fold_in(self, histories):
        """States after the histories, ordered by time (tables) or value (matrices)."""
        keys = histories.times if histories.times is not None else histories.values
        return self._encode(*ordered(histories, keys))

    def _user_features(self, reprs):
        return reprs

    # -- scoring -------------------------------------------------------------------

    def _score_pairs(self, user_repr, items, rows=None):
        """Log-probabilities of (row of user_repr, item) pairs.

        ``loss="softmax"``: ``log P(next item = i | history)`` (log-softmax
        over the catalogue); ``loss="bce"``: ``log sigmoid(logit)``. An item
        unseen at fit (index ``n_items``) gets logit 0.
        """
        module = self._module()
        device = self._device()
        n_items = len(self._item_index)
        items = np.asarray(items, dtype=np.int64)
        rows = np.arange(len(items)) if rows is None else np.asarray(rows, dtype=np.int64)
        known = items < n_items
        logits = torch.as_tensor(
            super()._score_pairs(user_repr, np.where(known, items, 0), rows), device=device
        ) * torch.as_tensor(known, device=device)
        if self.loss == "bce":
            return F.logsigmoid(logits).cpu().numpy()
        lse = torch.empty(user_repr.shape[0], device=device)
        block = self._user_block(n_items)
        with module.scoring():
            for s in range(0, user_repr.shape[0], block):
                lse[s : s + block] = torch.logsumexp(
                    module.score_all(user_repr[s : s + block]).float(), dim=1
                )
        return (logits - lse[torch.as_tensor(rows, device=device)]).cpu().numpy()

    @property
    def item_embeddings_(self):
        """ndarray of shape (n_items, embedding_dim): output item embeddings."""
        check_is_fitted(self, "net_")
        return self._module().item_embeddings().detach().float().cpu().numpy().copy()
