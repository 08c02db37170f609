"""What the neural recommenders train on: negative samplers, validation
splits and losses, all in one place.

* Samplers are batch transforms (``sampler(batch, generator) -> batch``)
  that :class:`~sklearn_recsys._training.TensorBatchIterator` applies on the
  training device, drawing from the iterator's own generator.
* Splits return the row indices of the training and validation parts of the
  training rows an estimator built; they never hold out a user entirely
  (skorch's default ``ValidSplit(5)`` would, on user-sorted data).
* Losses are the criteria of the skorch net: they read the module's
  ``forward`` output.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "NegativeSampler",
    "SharedNegatives",
    "UserRowSample",
    "SequenceNegativeSampler",
    "UserTokenTargets",
    "UserRowTargets",
    "per_user_split",
    "RecommenderLoss",
    "SequenceLoss",
]


# -- negative samplers -------------------------------------------------------


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
    candidates : torch.Tensor of shape (n_candidates,), default=None
        Item indices negatives are drawn from (e.g. the items with training
        data); all ``n_items`` items when None.
    n_rounds : int, default=3
        Rounds of re-drawing negatives that hit a positive; what remains after
        them is kept (rare for sparse data).
    """

    def __init__(self, positive_keys, n_items, n_negatives, candidates=None, n_rounds=3):
        self.positive_keys = positive_keys
        self.n_items = n_items
        self.n_negatives = n_negatives
        self.candidates = candidates
        self.n_rounds = n_rounds

    def _draw(self, shape, generator, device):
        if self.candidates is None:
            return torch.randint(self.n_items, shape, generator=generator, device=device)
        pos = torch.randint(len(self.candidates), shape, generator=generator, device=device)
        return self.candidates.to(device)[pos]

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
        """Negatives ``(len(users), n_negatives)`` for the given user indices."""
        negs = self._draw((len(users), self.n_negatives), generator, users.device)
        for _ in range(self.n_rounds):
            hit = self._is_positive(users, negs)
            n_hit = int(hit.sum())
            if n_hit == 0:
                break
            negs[hit] = self._draw((n_hit,), generator, users.device)
        return negs


class SequenceNegativeSampler(NegativeSampler):
    """Negatives for every position of a batch of sequences, on the device.

    Adds ``neg_items`` of shape ``(B, L, n_negatives)`` (0-based item
    indices drawn uniformly among the items the user never interacted with
    in training, ``L`` the targets' length) and removes ``users`` from the
    batch, unless ``keep_users`` (encoders reading user attributes). With
    ``n_negatives=0`` only ``users`` is removed (full-softmax training).
    """

    def __init__(self, positives, n_items, n_negatives, keep_users=False):
        super().__init__(positives, n_items, n_negatives)
        self.keep_users = keep_users

    def __call__(self, batch, generator):
        users = batch["users"] if self.keep_users else batch.pop("users")
        if self.n_negatives:
            batch_size, length = batch["targets"].shape
            negs = self.sample(users.repeat_interleave(length), generator)
            batch["neg_items"] = negs.view(batch_size, length, self.n_negatives)
        return batch


class UserTokenTargets:
    """Targets of the user token: an item of each row's user, drawn per batch.

    The batch transform of the sequence encoders reading user attributes:
    the first ``n_targets`` columns of ``targets`` (the targets of the user
    token, read before any item) become items drawn uniformly, with
    replacement, from the row user's training history, anew at every batch,
    so that the token's state learns the distribution of its users' items --
    what scores users known by their attributes alone. Entries that are 0
    (validation rows) stay 0. ``then`` (another batch transform, e.g. the
    negative sampler) follows.

    Parameters
    ----------
    flat : torch.Tensor of shape (n_interactions,)
        The training histories' items (0-based), grouped by user.
    starts, counts : torch.Tensor of shape (n_users,)
        Where each user's training history starts in ``flat``, and its length.
    n_targets : int, default=1
        Targets of the token per row.
    then : callable, default=None
    """

    def __init__(self, flat, starts, counts, n_targets=1, then=None):
        self.flat = flat
        self.starts = starts
        self.counts = counts
        self.n_targets = n_targets
        self.then = then

    def __call__(self, batch, generator):
        users = batch["users"][:, None].expand(-1, self.n_targets)
        counts = self.counts[users]
        draw = torch.rand(users.shape, generator=generator, device=users.device)
        offset = torch.minimum((draw * counts).long(), (counts - 1).clamp(min=0))
        index = (self.starts[users] + offset).clamp(max=max(len(self.flat) - 1, 0))
        targets = batch["targets"].clone()  # a view of the dataset for slices
        token = targets[:, : self.n_targets]
        targets[:, : self.n_targets] = torch.where(token > 0, self.flat[index] + 1, token)
        batch["targets"] = targets
        return batch if self.then is None else self.then(batch, generator)


def popularity_log_q(items, n_items, device, power=0.75):
    """Log-probabilities of the sampled-softmax proposal, ``(n_items,)``.

    Items are drawn in proportion to ``(count + 1) ** power`` of their
    training interactions (smoothed popularity, as word2vec draws words).
    """
    counts = np.bincount(np.asarray(items), minlength=n_items).astype(np.float64)
    weights = (counts + 1.0) ** power
    return torch.as_tensor(np.log(weights / weights.sum()), dtype=torch.float32, device=device)


class SharedNegatives:
    """One sample of ``n_negatives`` items shared by a whole batch.

    The batch transform of the sampled softmax: adds ``shared_items``, the
    same ``n_negatives`` items for every row of the batch, drawn with
    replacement from the proposal of
    log-probabilities ``log_q`` (:func:`popularity_log_q`) on the device. Its
    cost per batch does not grow with the catalogue.

    Parameters
    ----------
    log_q : torch.Tensor of shape (n_items,)
    n_negatives : int
    drop_users : bool, default=False
        Remove ``users`` from the batch (the sequence encoders do not read it).
    """

    def __init__(self, log_q, n_negatives, drop_users=False):
        self.log_q = log_q
        self.probs = log_q.exp()
        self.n_negatives = n_negatives
        self.drop_users = drop_users

    def __call__(self, batch, generator):
        rows = len(next(iter(batch.values())))
        if self.drop_users:
            batch.pop("users")
        sample = torch.multinomial(
            self.probs, self.n_negatives, replacement=True, generator=generator
        )
        # one row per batch row (a stride-0 view), as skorch wants every
        # input of a batch to have the batch's length
        batch["shared_items"] = sample[None, :].expand(rows, -1)
        return batch


def sampled_softmax_loss(pos, neg, pos_items, neg_items, log_q):
    """Sampled softmax with the logQ correction, per row ``(N,)``.

    ``pos`` ``(N,)`` scores the rows' own items ``pos_items``, ``neg``
    ``(N, K)`` the shared sample ``neg_items`` ``(K,)``. Each score is
    corrected by the log-probability of drawing its item (Bengio & Senecal
    2008; Yi et al. 2019), so that the loss estimates the cross-entropy over
    the whole catalogue; a sampled item equal to the row's own item is left
    out (an accidental hit).
    """
    logits = torch.cat([(pos - log_q[pos_items])[:, None], neg - log_q[neg_items][None, :]], 1)
    hits = neg_items[None, :] == pos_items[:, None]
    logits[:, 1:] = logits[:, 1:].masked_fill(hits, float("-inf"))
    return torch.logsumexp(logits, dim=1) - logits[:, 0]


class UserRowSample:
    """The positives of a batch of users and one shared sample of items.

    The batch transform of MF's sampled softmax (batches of whole users, as
    the full softmax): a batch holds ``rows`` of a CSR matrix of target
    weights on the device and gets ``pos_items``/``pos_values`` ``(B, M)``
    (each row's items and weights, padded with item 0 and weight 0 to the
    batch's longest row), ``shared_items`` ``(B, K)`` (the same ``K`` items,
    drawn from the proposal ``log_q``, in every row) and ``shared_weights``
    ``(B, K)`` (self-normalised importance weights ``1 / q``: the weighted
    mean over the sample estimates the mean over the catalogue). Memory grows
    with the batch's users times ``M + K``, never with the catalogue.

    Parameters
    ----------
    indptr, indices, values : torch.Tensor
        The CSR matrix (int64 row pointers, sorted int64 column indices,
        float weights).
    n_items : int
    log_q : torch.Tensor of shape (n_items,)
    n_negatives : int
    """

    def __init__(self, indptr, indices, values, n_items, log_q, n_negatives):
        self.indptr = indptr
        self.indices = indices
        self.values = values
        self.n_items = n_items
        self.sampler = SharedNegatives(log_q, n_negatives)

    def __call__(self, batch, generator):
        rows = batch.pop("rows")
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        width = int(counts.max()) if len(rows) else 0
        slot = torch.arange(width, device=rows.device)
        valid = slot[None, :] < counts[:, None]
        entries = (starts[:, None] + slot[None, :]).clamp(max=max(len(self.indices) - 1, 0))
        batch["pos_items"] = torch.where(valid, self.indices[entries], 0)
        batch["pos_values"] = torch.where(valid, self.values[entries], 0)
        batch = self.sampler(batch, generator)
        # weights making the sample's mean an estimate of the catalogue's mean
        # (for the L2 term on the item factors): 1 / (n_items * q), normalised
        w = torch.exp(-self.sampler.log_q[batch["shared_items"][0]])
        batch["shared_weights"] = (w / w.sum())[None, :].expand(len(rows), -1)
        return batch


def sampled_multinomial_loss(pos, pos_items, pos_values, neg, neg_items, log_q):
    """Sampled softmax over batches of whole users: the weighted mean per interaction.

    ``pos`` ``(B, M)`` scores each row's own items ``pos_items`` (weights
    ``pos_values``, 0 for padding), ``neg`` ``(B, K)`` the shared sample
    ``neg_items`` ``(K,)``. Each interaction's loss is the cross-entropy of
    its item over itself and the sample, all scores corrected by ``log_q``.
    The row's own items stay in the sample: the full softmax's denominator
    holds every item, a user's other items included, so that they compete
    with each other (leaving them out optimises another objective, measured
    worse, and the more so the larger the sample).
    """
    pos_c = pos - log_q[pos_items]
    neg_c = neg - log_q[neg_items][None, :]
    lse_neg = torch.logsumexp(neg_c, dim=1, keepdim=True)
    value = torch.logaddexp(pos_c, lse_neg) - pos_c
    mass = pos_values.sum().clamp(min=torch.finfo(pos.dtype).tiny)
    return (value * pos_values).sum() / mass


class UserRowTargets:
    """Dense target rows of a batch of users, built on the device.

    The batch transform of the full-catalogue (``"softmax"``) loss: a batch
    holds ``rows`` of a CSR matrix of target weights kept on the device, and
    gets ``targets`` of shape ``(batch_size, n_items)``. Only a batch is ever
    dense: memory grows with ``batch_size * n_items``, never with the
    number of users.

    Parameters
    ----------
    indptr, indices, values : torch.Tensor
        The CSR matrix (int64 row pointers and column indices, float weights).
    n_items : int
    """

    def __init__(self, indptr, indices, values, n_items):
        self.indptr = indptr
        self.indices = indices
        self.values = values
        self.n_items = n_items

    def __call__(self, batch, generator):
        rows = batch.pop("rows")
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        entry_row = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
        offsets = torch.cumsum(counts, 0) - counts
        entries = (
            torch.arange(len(entry_row), device=rows.device)
            - torch.repeat_interleave(offsets, counts)
            + torch.repeat_interleave(starts, counts)
        )
        targets = torch.zeros(len(rows), self.n_items, device=rows.device,
                              dtype=self.values.dtype)
        targets.index_put_(
            (entry_row, self.indices[entries]), self.values[entries], accumulate=True
        )
        batch["targets"] = targets
        return batch


def positive_keys(users, items, n_items):
    """Sorted unique keys ``user * n_items + item`` of a sampler, as a tensor."""
    return torch.unique(users * n_items + items)


# -- validation splits ---------------------------------------------------------


def per_user_split(users, fraction, seed=0):
    """Hold out a random ``fraction`` of each user's rows for validation.

    A user with ``c`` rows gives ``floor(fraction * c)`` of them, so every
    validation user keeps training rows (unlike skorch's default
    ``ValidSplit(5)``, an unshuffled K-fold that on user-sorted data
    validates on users never seen in training).

    Parameters
    ----------
    users : ndarray of shape (n_rows,)
        User index of each training row.
    fraction : float
    seed : int, default=0

    Returns
    -------
    train, valid : ndarray of int64
        Sorted row indices (``valid`` is empty when every user has fewer
        than ``1 / fraction`` rows).
    """
    users = np.asarray(users)
    rng = np.random.RandomState(seed)
    order = np.lexsort((rng.rand(len(users)), users))
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_valid = np.floor(fraction * counts).astype(np.int64)
    is_valid = rank < np.repeat(n_valid, counts)
    return np.sort(order[~is_valid]), np.sort(order[is_valid])


# -- losses ----------------------------------------------------------------------


class RecommenderLoss(nn.Module):
    """Loss on a pair model's output ``(pos_scores, neg_scores, penalty)``.

    * ``"mse"``: mean squared error of ``pos_scores`` against ``y``.
    * ``"bce"``: binary cross-entropy with logits; positives are labelled
      ``y``, each sampled negative 0. Summed per positive row, averaged over
      rows.
    * ``"bpr"``: Bayesian personalised ranking, ``-log sigmoid(pos - neg)``
      weighted by ``y``.
    * ``"sampled_softmax"``: the ``"softmax"`` loss estimated on a sample of
      items shared by the batch (:class:`UserRowSample`): the module returns
      ``(pos (B, M), neg (B, K), penalty, pos_items, pos_values, sample)``
      and the loss is :func:`sampled_multinomial_loss`.
    * ``"softmax"``: the module scored a batch of users against the whole
      catalogue: ``pos`` holds the ``(B, n_items)`` scores and ``neg`` the
      target weights of the same shape (:class:`UserRowTargets`); the loss
      is the cross-entropy of each interaction over the catalogue (a
      multinomial likelihood per user), averaged over the interactions.
      Sample weights are already in the targets.

    ``alpha`` weights the module's L2 ``penalty`` (per row, averaged like
    the data term), in training mode only: the validation loss (early
    stopping) is the data term alone. A ``y`` of shape ``(B, 2)`` holds the
    targets and the sample weights of the rows: both terms are then their
    weighted means.
    """

    def __init__(self, loss="mse", alpha=0.0, log_q=None):
        super().__init__()
        self.loss = loss
        self.alpha = alpha
        self.log_q = log_q

    def forward(self, y_pred, y_true=None):
        pos, neg, penalty, *items = y_pred
        if self.loss == "sampled_softmax":
            # batches of whole users, the softmax estimated on a shared sample
            value = sampled_multinomial_loss(pos, *items[:2], neg, *items[2:], self.log_q)
            if self.training and self.alpha and penalty is not None:
                value = value + self.alpha * penalty.mean()
            return value
        if self.loss == "softmax":
            mass = neg.sum().clamp(min=torch.finfo(pos.dtype).tiny)
            value = -(neg * F.log_softmax(pos, dim=1)).sum() / mass
            if self.training and self.alpha and penalty is not None:
                value = value + self.alpha * penalty.mean()
            return value
        weight = None
        if y_true is not None and y_true.ndim == 2:
            y_true, weight = y_true[:, 0], y_true[:, 1]
        if self.loss == "mse":
            value = (pos - y_true) ** 2
        elif self.loss == "bce":
            value = F.binary_cross_entropy_with_logits(pos, y_true, reduction="none")
            value = value + F.softplus(neg).sum(dim=1)
        else:  # "bpr"
            value = -F.logsigmoid(pos[:, None] - neg).mean(dim=1) * y_true
        value = _weighted_mean(value, weight)
        if self.training and self.alpha and penalty is not None:
            value = value + self.alpha * _weighted_mean(penalty, weight)
        return value


class SequenceLoss(nn.Module):
    """Next-item loss on a sequence encoder's output ``(scores, labels)``.

    * ``"softmax"``: cross-entropy of the next item over the whole
      catalogue, averaged over the non-padded positions;
    * ``"bce"``: binary cross-entropy with logits, the next item labelled 1
      and each sampled negative 0 (summed per position), averaged over the
      non-padded positions;
    * ``"sampled_softmax"``: the cross-entropy of the next item over itself
      and a sample of items shared by the batch, with the logQ correction
      (:func:`sampled_softmax_loss`); ``labels`` is then ``(next items,
      sampled items)``.

    A ``y`` of shape ``(B, L, 2)`` holds the targets and the sample weights
    of the positions: the average is then weighted.
    """

    def __init__(self, loss="softmax", log_q=None):
        super().__init__()
        self.loss = loss
        self.log_q = log_q

    def forward(self, y_pred, y_true=None):
        scores, labels = y_pred
        if scores.shape[0] == 0:  # a batch without any target
            return scores.sum() * 0.0
        weight = None
        if y_true is not None and y_true.ndim == 3:  # (targets, sample weights)
            weight = y_true[..., 1][y_true[..., 0] > 0]
        if self.loss == "softmax":
            value = F.cross_entropy(scores, labels, reduction="none")
        elif self.loss == "sampled_softmax":
            pos_items, neg_items = labels
            value = sampled_softmax_loss(
                scores[:, 0], scores[:, 1:], pos_items, neg_items, self.log_q
            )
        else:
            value = F.softplus(-scores[:, 0]) + F.softplus(scores[:, 1:]).sum(dim=1)
        return _weighted_mean(value, weight)


def _weighted_mean(values, weight=None):
    """Mean of ``values``, weighted by ``weight`` when given (0 if all weigh 0)."""
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum().clamp(min=torch.finfo(values.dtype).tiny)
