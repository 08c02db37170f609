"""Training knobs and the skorch fit shared by the neural recommenders."""

import numbers
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from sklearn.utils._param_validation import Interval

from ._training import TensorDataset, build_net


class NeuralRecommenderMixin:
    """Training knobs shared by the neural recommenders (sklearn MLP names)."""

    _training_constraints = {
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "callbacks": [list, None],
        "verbose": ["verbose"],
    }

    def _module(self):
        return self.net_.module_

    _FIT_STATE = ("_user_index", "_item_index", "_seen", "_convention", "n_features_in_")

    def _previous_ids(self):
        """Snapshot of the id spaces a ``warm_start`` fit continues, else None."""
        if self.warm_start and hasattr(self, "net_"):
            return {a: getattr(self, a) for a in self._FIT_STATE if hasattr(self, a)}
        return None

    def _check_same_ids(self, previous):
        """A warm start needs the previous id spaces; else restore and raise."""
        if previous is None:
            return
        if not (
            np.array_equal(previous["_user_index"].ids, self._user_index.ids)
            and np.array_equal(previous["_item_index"].ids, self._item_index.ids)
        ):
            for attr in self._FIT_STATE:
                if attr in previous:
                    setattr(self, attr, previous[attr])
                elif hasattr(self, attr):
                    delattr(self, attr)
            raise ValueError(
                "warm_start=True continues the previous fit and needs the same "
                "users and items; set warm_start=False to fit new data afresh."
            )

    def _resolved_alpha(self):
        """The L2 weight to train with (estimators may resolve ``"auto"``)."""
        return self.alpha

    def _train(
        self,
        module,
        dataset,
        *,
        loss,
        seed,
        device,
        batch_transform=None,
        criterion=None,
        train_split="per_user",
        optimizer_params=None,
        optimizer=torch.optim.Adam,
    ):
        """Fit ``module`` on ``dataset`` through skorch (or continue fitting).

        Builds the ``NeuralNet`` with :func:`~sklearn_recsys._training.build_net`
        (device tensors sliced per batch, per-user validation split when
        ``early_stopping``), or, with ``warm_start=True`` and a fitted
        ``net_``, continues training it (with fresh shuffles: the iterators
        are re-seeded with the number of epochs already run). Sets ``net_``,
        ``loss_curve_``, ``validation_loss_curve_`` and ``n_iter_``.
        ``train_split``/``optimizer_params``/``optimizer``: see
        :func:`~sklearn_recsys._training.build_net`.
        """

        devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            if self.warm_start and hasattr(self, "net_"):
                net = self.net_
                offset = len(net.history)
                net.set_params(max_epochs=self.max_iter)
                # skorch stores iterator params as plain attributes (read by
                # get_iterator); its set_params refuses them on an initialised
                # net, so set them the way it would.
                vars(net).update(
                    iterator_train__seed=seed + offset,
                    iterator_valid__seed=seed + offset + 1,
                    iterator_train__batch_transform=batch_transform,
                    iterator_valid__batch_transform=batch_transform,
                )
                if train_split != "per_user" and self.early_stopping:
                    net.set_params(train_split=train_split)
                net.partial_fit(dataset, None)
            else:
                net = build_net(
                    module,
                    loss=loss,
                    alpha=self._resolved_alpha(),
                    max_iter=self.max_iter,
                    batch_size=self.batch_size,
                    learning_rate_init=self.learning_rate_init,
                    device=device,
                    seed=seed,
                    batch_transform=batch_transform,
                    criterion=criterion,
                    train_split=train_split,
                    optimizer_params=optimizer_params,
                    optimizer=optimizer,
                    early_stopping=self.early_stopping,
                    validation_fraction=self.validation_fraction,
                    n_iter_no_change=self.n_iter_no_change,
                    tol=self.tol,
                    callbacks=self.callbacks,
                    verbose=self.verbose,
                )
                net.fit(dataset, None)
        self.net_ = net
        history = net.history
        self.loss_curve_ = [float(v) for v in history[:, "train_loss"]]
        self.validation_loss_curve_ = (
            [float(v) for v in history[:, "valid_loss"]] if self.early_stopping else None
        )
        self.n_iter_ = len(history)
        return net


@contextmanager
def frozen(module):
    """Temporarily stop gradients into ``module``'s parameters."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class PairRecommenderMixin:
    """Shared by recommenders trained on (user, item, target) rows (MF, CNN).

    ``loss`` is one of ``"mse"`` (ratings), ``"bce"`` (click labels in
    [0, 1], sampled negatives labelled 0) or ``"bpr"`` (non-negative
    weights, pairwise against sampled negatives).
    """

    def _check_targets(self, values):
        """Targets of the rows, validated for ``loss`` (unit weights if none)."""
        if values is None:
            if self.loss == "mse":
                raise ValueError(
                    "loss='mse' needs explicit targets: pass the ratings as y "
                    "(or use a user x item matrix whose values are the ratings), "
                    "or choose loss='bce'/'bpr' for implicit feedback."
                )
            return None
        if self.loss == "bce" and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                "loss='bce' needs click labels in [0, 1], got targets in "
                f"[{values.min():g}, {values.max():g}]. Binarize ratings first "
                "(e.g. sklearn.preprocessing.Binarizer) or use loss='mse'."
            )
        if self.loss == "bpr" and values.min() < 0:
            raise ValueError(
                "loss='bpr' needs non-negative interaction weights, got a "
                f"minimum of {values.min():g}."
            )
        return values

    def _histories(self, X):
        if self.loss == "mse" and isinstance(X, pd.DataFrame):
            raise ValueError(
                "loss='mse' folds new users in from their ratings, which an "
                "interaction table of histories does not carry; pass a user x "
                "item matrix of ratings (columns = item_ids_) instead."
            )
        return super()._histories(X)

    def _pair_dataset(self, data, values, device):
        """Device tensors of the rows; implicit rows without targets weigh 1."""
        if values is None:
            values = np.ones(len(data.users), dtype=np.float32)
        users = torch.as_tensor(data.users, device=device)
        items = torch.as_tensor(data.items, device=device)
        return TensorDataset(
            {"users": users, "items": items}, torch.as_tensor(values, device=device)
        )

    def _postprocess_scores(self, scores):
        if self.loss == "bce":
            return expit(scores)
        return scores
