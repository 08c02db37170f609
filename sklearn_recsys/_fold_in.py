"""Fold-in: user representations for new users from their histories.

The item side of a fitted model stays frozen; each history row is fitted on
its own entries, so rows are independent (sklearn's subset and sample-order
invariance hold) and no refit is needed.

:func:`fold_in_gradient` optimises the model's own objective: ``"mse"``,
squared error on the observed entries; ``"bce"``, logistic loss, observed
entries labelled by their value; ``"bpr"``, logistic loss, observed entries
positive, weighted by their value (BPR scores have no calibrated scale, so
the pointwise logistic surrogate is used); ``"softmax"``, the cross-entropy
of each observed entry over the whole catalogue, weighted by its value. For
``"bce"`` and ``"bpr"`` every item of ``negatives`` (all items when None) is a
negative with weight ``n_negatives * n_u / n_negative_items``, the weight
sampled negatives give each item during training. The L2 term is
``alpha n_u |x|^2`` (``"softmax"``: ``alpha m |x|^2``, with ``m`` the mean
training mass of a user, as in training).
"""

import numpy as np
import torch
from torch.nn import functional as F

# Floats of one (users x items) block of scores, and of one block of outer
# products, during fold-in.
_BLOCK = 2**22


def _row_index(H, device):
    counts = np.diff(H.indptr)
    rows = torch.as_tensor(np.repeat(np.arange(H.shape[0]), counts), device=device)
    cols = torch.as_tensor(H.indices.astype(np.int64), device=device)
    return torch.as_tensor(counts, device=device), rows, cols


@torch.no_grad()
def fold_in_ridge(q_aug, offset, H, alpha, prior=None):
    """Ratings: exact per-row ridge regression on linear item terms.

    Minimises ``sum_obs (x . q_i + c_i - r_i)^2 + alpha n_u |x|^2`` for each
    row ``u`` of ``H`` -- the objective training optimises for that user --
    where ``score = x . q_i + c_i`` (``q_aug``: item factors augmented with a
    column of ones for the user bias, ``offset``: item bias + global mean).
    With ``prior``, the penalty is ``(x - m)^T P (x - m)`` instead: the
    posterior mean of ``x`` under the Gaussian prior ``N(m, sigma^2 P^-1)``
    and noise variance ``sigma^2``.

    Parameters
    ----------
    q_aug : torch.Tensor of shape (n_items, dim)
    offset : torch.Tensor of shape (n_items,)
    H : scipy.sparse.csr_array of shape (n_users, n_items)
        Ratings of the users to fold in.
    alpha : float
        L2 weight per interaction.
    prior : dict, default=None
        ``{"precision": P, "mean": m}`` (arrays of shape ``(dim, dim)`` and
        ``(dim,)``), replacing ``alpha``.

    Returns
    -------
    x : torch.Tensor of shape (n_users, dim), float32
    """
    device = q_aug.device
    q_aug, offset = q_aug.detach().double(), offset.detach().double()
    n, dim = H.shape[0], q_aug.shape[1]
    counts, rows, cols = _row_index(H, device)
    r = torch.as_tensor(H.data, device=device, dtype=torch.float64) - offset[cols]
    if prior is not None:
        precision = torch.as_tensor(prior["precision"], dtype=torch.float64, device=device)
        mean = torch.as_tensor(prior["mean"], dtype=torch.float64, device=device)
    out = torch.empty(n, dim, dtype=torch.float32, device=device)
    chunk = max(1, _BLOCK // (dim * dim))  # users, and interactions, at once
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        A = torch.zeros(stop - start, dim, dim, dtype=torch.float64, device=device)
        b = torch.zeros(stop - start, dim, dtype=torch.float64, device=device)
        for lo in range(int(H.indptr[start]), int(H.indptr[stop]), chunk):
            hi = min(lo + chunk, int(H.indptr[stop]))
            q, local = q_aug[cols[lo:hi]], rows[lo:hi] - start
            A.index_add_(0, local, q[:, :, None] * q[:, None, :])
            b.index_add_(0, local, q * r[lo:hi, None])
        if prior is None:
            ridge = alpha * counts[start:stop].double() + 1e-6
            A += ridge[:, None, None] * torch.eye(dim, dtype=torch.float64, device=device)
        else:
            A += precision
            b += precision @ mean
        out[start:stop] = torch.linalg.solve(A, b).float()
    return out


def _objective(scores, obs, v, loss, negative_weight, rows):
    """The fold-in objective of one block (see :func:`fold_in_gradient`)."""
    if loss == "mse":
        return ((obs - v) ** 2).sum()
    if loss == "softmax":  # sum over interactions of -log softmax(scores)[item]
        mass = torch.zeros(len(scores), device=scores.device).index_add_(0, rows, v)
        return (mass * torch.logsumexp(scores, dim=1)).sum() - (v * obs).sum()
    if loss == "bce":
        value = (v * F.softplus(-obs) + (1 - v) * F.softplus(obs)).sum()
    else:
        value = (v * F.softplus(-obs)).sum()
    return value + (negative_weight * F.softplus(scores)).sum()


@torch.enable_grad()
def fold_in_gradient(
    score_all, dim, n_items, H, *, device, loss, alpha, n_negatives=4,
    negatives=None, cost=1, n_steps=100, lr=0.05, penalty_mass=None,
):
    """Per-row fit of user representations by full-batch Adam.

    Optimises the model's own objective with the item side frozen (see the
    module docstring); rows start from zero and are independent.

    Parameters
    ----------
    score_all : callable
        ``score_all(x) -> (B, n_items)`` scores of user representations.
    dim : int
        Width of a user representation.
    n_items : int
    H : scipy.sparse.csr_array of shape (n_users, n_items)
    device : torch.device
        Where ``score_all`` computes.
    loss : {"mse", "bce", "bpr", "softmax"}
    alpha : float
    n_negatives : int, default=4
    negatives : torch.Tensor of shape (n_items,), dtype bool, default=None
    cost : int, default=1
        Floats ``score_all`` keeps per (user, item) pair; bounds the block of
        users scored at once.
    n_steps, lr : int and float, default=100 and 0.05
        Steps and learning rate of Adam.
    penalty_mass : float, default=None
        The L2 term is ``alpha * penalty_mass * |x|^2`` when given (the
        ``"softmax"`` loss penalises each user once per batch, as much as the
        mean training mass of a user), else ``alpha * n_u * |x|^2``.

    Returns
    -------
    x : torch.Tensor of shape (n_users, dim)
    """
    n = H.shape[0]
    block = max(1, _BLOCK // max(1, n_items * cost))
    counts, rows, cols = _row_index(H, device)
    counts = counts.float()
    values = torch.as_tensor(H.data, device=device, dtype=torch.float32)
    if negatives is None:
        neg_mask = torch.ones(n_items, device=device)
    else:
        neg_mask = negatives.float()
    w0 = n_negatives * counts / max(1.0, float(neg_mask.sum()))
    mass = counts if penalty_mass is None else torch.full_like(counts, penalty_mass)
    x = torch.zeros(n, dim, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in range(n_steps):
        optimizer.zero_grad()
        for s in range(0, n, block):
            e = min(n, s + block)
            xs = x[s:e]
            scores = score_all(xs)
            sel = (rows >= s) & (rows < e)
            obs = scores[rows[sel] - s, cols[sel]]
            value = _objective(
                scores, obs, values[sel], loss, w0[s:e, None] * neg_mask, rows[sel] - s
            )
            value = value + alpha * (mass[s:e, None] * xs * xs).sum()
            # gradients of the user rows only: the model is never written to
            (grad,) = torch.autograd.grad(value, x)
            x.grad = grad if x.grad is None else x.grad + grad
        optimizer.step()
    return x.detach()
