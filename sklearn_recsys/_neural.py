"""Training knobs and the skorch fit shared by the neural recommenders."""

import numbers

import torch
from sklearn.utils._param_validation import Interval

from ._training import build_net


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
    ):
        """Fit ``module`` on ``dataset`` through skorch (or continue fitting).

        Builds the ``NeuralNet`` with :func:`~sklearn_recsys._training.build_net`
        (device tensors sliced per batch, per-user validation split when
        ``early_stopping``), or, with ``warm_start=True`` and a fitted
        ``net_``, continues training it (with fresh shuffles: the iterators
        are re-seeded with the number of epochs already run). Sets ``net_``,
        ``loss_curve_``, ``validation_loss_curve_`` and ``n_iter_``.
        ``train_split``/``optimizer_params``: see
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
