"""The training core shared by every neural recommender.

Estimators compose a :class:`skorch.NeuralNet` and hand it a
:class:`TensorDataset` whose tensors already live on the training device.
:class:`TensorBatchIterator` replaces skorch's per-sample ``DataLoader``: each
epoch it draws one permutation on the device and yields slices of the whole
tensors, sampling negatives on the device as well. skorch's per-sample path was
measured ~8x slower for matrix factorization (see the benchmarks).
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, ProgressBar
from torch import nn
from torch.nn import functional as F

__all__ = [
    "TensorDataset",
    "TensorBatchIterator",
    "PerUserValidSplit",
    "NegativeSampler",
    "RecommenderLoss",
    "build_net",
    "resolve_device",
]


def resolve_device(device):
    """Turn the ``device`` parameter into a torch device string.

    ``"auto"`` picks CUDA when available. Asking for CUDA on a machine without
    it raises a ValueError instead of skorch's bare AssertionError.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'cpu', 'cuda', "
            "'cuda:1', 'auto', ..."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available in this "
            "PyTorch build/machine; use device='cpu' or device='auto'."
        )
    return str(dev)


class TensorDataset(torch.utils.data.Dataset):
    """Named tensors of equal length, plus the target tensor ``y``.

    ``y`` is required for training (skorch converts it to a tensor at every
    step); implicit-feedback models pass unit weights.

    Batches are dicts ``{name: tensor}`` so the module's ``forward`` receives
    them as keyword arguments.
    """

    def __init__(self, tensors, y=None):
        lengths = {len(t) for t in tensors.values()}
        if y is not None:
            lengths.add(len(y))
        if len(lengths) != 1:
            raise ValueError(f"Tensors of different lengths: {sorted(lengths)}.")
        self.tensors = tensors
        self.y = y
        self._len = lengths.pop()

    def __len__(self):
        return self._len

    def __getitem__(self, i):  # for completeness; the iterator slices instead
        return {k: v[i] for k, v in self.tensors.items()}, (
            None if self.y is None else self.y[i]
        )

    def subset(self, indices):
        idx = torch.as_tensor(indices, device=next(iter(self.tensors.values())).device)
        return TensorDataset(
            {k: v[idx] for k, v in self.tensors.items()},
            None if self.y is None else self.y[idx],
        )


def _as_tensor_dataset(dataset):
    if isinstance(dataset, TensorDataset):
        return dataset
    if isinstance(dataset, torch.utils.data.Subset) and isinstance(
        dataset.dataset, TensorDataset
    ):
        return dataset.dataset.subset(dataset.indices)
    raise TypeError(
        "TensorBatchIterator needs a TensorDataset (or a Subset of one), got "
        f"{type(dataset).__name__}."
    )


class NegativeSampler:
    """Uniform negative items drawn on the device, avoiding known positives.

    Parameters
    ----------
    positive_keys : torch.Tensor
        Sorted int64 keys ``user * n_items + item`` of all training positives.
    n_items : int
        Size of the item catalogue.
    n_negatives : int
        Negatives drawn per positive.
    n_rounds : int, default=3
        Rounds of re-drawing negatives that hit a positive; what remains after
        them is kept (rare for sparse data).
    """

    def __init__(self, positive_keys, n_items, n_negatives, n_rounds=3):
        self.positive_keys = positive_keys
        self.n_items = n_items
        self.n_negatives = n_negatives
        self.n_rounds = n_rounds

    def _is_positive(self, users, negs):
        keys = users[:, None] * self.n_items + negs
        pos = torch.searchsorted(self.positive_keys, keys)
        pos = pos.clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[pos] == keys

    def __call__(self, batch, generator):
        """Add ``neg_items`` of shape ``(batch_size, n_negatives)`` to ``batch``."""
        batch["neg_items"] = self.sample(batch["users"], generator)
        return batch

    def sample(self, users, generator):
        shape = (len(users), self.n_negatives)
        negs = torch.randint(
            self.n_items, shape, generator=generator, device=users.device
        )
        for _ in range(self.n_rounds):
            hit = self._is_positive(users, negs)
            n_hit = int(hit.sum())
            if n_hit == 0:
                break
            negs[hit] = torch.randint(
                self.n_items, (n_hit,), generator=generator, device=users.device
            )
        return negs


class TensorBatchIterator:
    """Iterate over slices of device tensors, reshuffled every epoch.

    skorch builds it as ``iterator(dataset, batch_size=..., **kwargs)``.

    Parameters
    ----------
    dataset : TensorDataset or torch.utils.data.Subset of one
    batch_size : int
    shuffle : bool, default=False
        Draw a fresh permutation on the device at every pass.
    seed : int, default=0
        Seed of the iterator's own generator (permutations and negatives).
        Without shuffling the generator is re-seeded at every pass, so
        validation negatives are the same each epoch.
    batch_transform : callable, default=None
        ``batch_transform(batch, generator) -> batch`` applied to every batch
        dict on the device, e.g. a :class:`NegativeSampler` adding
        ``neg_items``.
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=0, batch_transform=None):
        self.dataset = _as_tensor_dataset(dataset)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.batch_transform = batch_transform
        device = next(iter(self.dataset.tensors.values())).device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed))
        self.device = device

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        tensors, y = self.dataset.tensors, self.dataset.y
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            self.generator.manual_seed(int(self.seed))
            order = None
        for start in range(0, n, self.batch_size):
            if order is None:
                idx = slice(start, start + self.batch_size)
            else:
                idx = order[start : start + self.batch_size]
            batch = {k: v[idx] for k, v in tensors.items()}
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, self.generator)
            yield batch, (None if y is None else y[idx])


class PerUserValidSplit:
    """skorch ``train_split`` holding out a fraction of each user's rows.

    Unlike skorch's default ``ValidSplit(5)`` (an unshuffled K-fold that on
    user-sorted data validates on users never seen in training), every
    validation user keeps training interactions: a user with ``c`` rows gives
    ``floor(fraction * c)`` of them, chosen at random, to validation.
    """

    def __init__(self, fraction, seed=0):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        dataset = _as_tensor_dataset(dataset)
        users = dataset.tensors["users"].cpu().numpy()
        rng = np.random.RandomState(self.seed)
        order = np.lexsort((rng.rand(len(users)), users))
        sorted_users = users[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
        counts = np.diff(np.r_[starts, len(users)])
        rank = np.arange(len(users)) - np.repeat(starts, counts)
        n_valid = np.floor(self.fraction * counts).astype(np.int64)
        is_valid = rank < np.repeat(n_valid, counts)
        valid_idx = np.sort(order[is_valid])
        train_idx = np.sort(order[~is_valid])
        if len(valid_idx) == 0:
            raise ValueError(
                "early_stopping=True needs validation data, but "
                f"validation_fraction={self.fraction} holds out no interaction "
                "(each user gives floor(fraction * n_user_interactions)). "
                "Increase validation_fraction or disable early stopping."
            )
        return dataset.subset(train_idx), dataset.subset(valid_idx)


class RecommenderLoss(nn.Module):
    """Loss on the module output ``(pos_scores, neg_scores, penalty)``.

    * ``"mse"``: mean squared error of ``pos_scores`` against ``y``.
    * ``"bce"``: binary cross-entropy with logits; positives are labelled
      ``y``, each sampled negative 0. Summed per
      positive row, averaged over rows.
    * ``"bpr"``: Bayesian personalised ranking, ``-log sigmoid(pos - neg)``
      weighted by ``y``.
    * ``"softmax"``: cross-entropy of the target among the scores given as
      ``neg_scores`` of shape ``(B, n_items)`` (full softmax; sequence models).

    ``alpha`` weights the module's L2 ``penalty``.
    """

    def __init__(self, loss="mse", alpha=0.0):
        super().__init__()
        self.loss = loss
        self.alpha = alpha

    def forward(self, y_pred, y_true=None):
        pos, neg, penalty = y_pred
        if self.loss == "mse":
            value = F.mse_loss(pos, y_true)
        elif self.loss == "bce":
            value = F.binary_cross_entropy_with_logits(pos, y_true, reduction="none")
            value = value + F.softplus(neg).sum(dim=1)
            value = value.mean()
        elif self.loss == "bpr":
            value = (-F.logsigmoid(pos[:, None] - neg).mean(dim=1) * y_true).mean()
        elif self.loss == "softmax":
            value = F.cross_entropy(neg, y_true)
        else:  # pragma: no cover - guarded by parameter validation
            raise ValueError(f"Unknown loss {self.loss!r}.")
        if self.alpha and penalty is not None:
            value = value + self.alpha * penalty
        return value


def _silent(*args, **kwargs):
    """A picklable sink that prints nothing."""


def build_net(
    module,
    *,
    loss,
    alpha,
    max_iter,
    batch_size,
    learning_rate_init,
    device,
    seed,
    batch_transform=None,
    criterion=None,
    train_split="per_user",
    optimizer_params=None,
    early_stopping=False,
    validation_fraction=0.1,
    n_iter_no_change=5,
    tol=1e-4,
    callbacks=None,
    verbose=0,
    optimizer=torch.optim.Adam,
):
    """Compose the skorch ``NeuralNet`` every recommender trains with.

    ``criterion`` defaults to ``RecommenderLoss(loss, alpha)``; models whose
    output does not fit its ``(pos, neg, penalty)`` protocol pass their own
    criterion module. ``batch_transform`` (e.g. a :class:`NegativeSampler`)
    runs on every training and validation batch. ``train_split`` defaults to
    :class:`PerUserValidSplit` (used only with ``early_stopping``); models
    with another notion of validation rows pass their own callable.
    ``optimizer_params`` are passed to the optimizer (e.g.
    ``{"weight_decay": 1e-4}``).

    Validation happens only with ``early_stopping=True`` (on a per-user
    holdout, never skorch's silent ``ValidSplit(5)``); the best epoch's weights
    are restored at the end.
    """
    extra = list(callbacks or [])
    if early_stopping:
        extra.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor="valid_loss",
                    patience=n_iter_no_change,
                    threshold=tol,
                    threshold_mode="abs",
                    load_best=True,
                    sink=print if verbose else _silent,
                ),
            )
        )
    if verbose:
        extra.append(("progress_bar", ProgressBar()))
    return NeuralNet(
        module=module,
        criterion=(
            RecommenderLoss(loss=loss, alpha=alpha) if criterion is None else criterion
        ),
        optimizer=optimizer,
        lr=learning_rate_init,
        max_epochs=max_iter,
        batch_size=batch_size,
        iterator_train=TensorBatchIterator,
        iterator_train__shuffle=True,
        iterator_train__seed=seed,
        iterator_train__batch_transform=batch_transform,
        iterator_valid=TensorBatchIterator,
        iterator_valid__seed=seed + 1,
        iterator_valid__batch_transform=batch_transform,
        train_split=(
            None
            if not early_stopping
            else PerUserValidSplit(validation_fraction, seed=seed)
            if train_split == "per_user"
            else train_split
        ),
        callbacks=extra,
        device=device,
        verbose=verbose,
        **{f"optimizer__{k}": v for k, v in (optimizer_params or {}).items()},
    )
