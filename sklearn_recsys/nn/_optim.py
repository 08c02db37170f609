"""An Adam optimizer for models mixing sparse and dense gradients."""

import math

import torch

__all__ = ["SparseDenseAdam"]


class SparseDenseAdam(torch.optim.Optimizer):
    """Adam for dense gradients, lazy Adam for sparse ones, in one optimizer.

    ``torch.optim.SparseAdam`` refuses dense gradients and ``torch.optim.Adam``
    refuses sparse ones, while a factorization model has both: embedding
    tables built with ``sparse=True`` and a few dense parameters (the global
    offset, NeuMF's tower). Dense gradients get the usual Adam update. Sparse
    gradients get ``SparseAdam``'s lazy one: only the rows present in the
    batch have their moments and values updated, so a step costs
    ``O(batch x n_components)`` instead of ``O(table size)``. Bias correction
    uses the parameter's step count, as both torch optimizers do.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups, as for any torch optimizer.
    lr : float, default=1e-3
        Learning rate.
    betas : tuple of float, default=(0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default=1e-8
        Term added to the denominator.
    weight_decay : float, default=0.0
        L2 penalty added to the gradient, as :class:`torch.optim.Adam`'s
        (coupled). For a sparse gradient, lazily: on the rows of the batch.

    Examples
    --------
    >>> import torch
    >>> from sklearn_recsys.nn import BiasedMF, SparseDenseAdam
    >>> _ = torch.manual_seed(0)
    >>> module = BiasedMF(n_users=1000, n_items=500, n_components=8, sparse=True)
    >>> opt = SparseDenseAdam(module.parameters(), lr=0.01)
    >>> users, items = torch.tensor([0, 1, 1]), torch.tensor([3, 4, 5])
    >>> before = module.user_factors.weight.detach().clone()
    >>> pos, _, penalty = module(users, items)
    >>> ((pos - 4.0) ** 2).mean().backward()
    >>> opt.step()
    >>> moved = (module.user_factors.weight != before).any(dim=1)
    >>> moved.nonzero().ravel().tolist()  # only the batch's users
    [0, 1]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid betas: {betas}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid eps: {eps}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, decay = group["lr"], group["eps"], group.get("weight_decay", 0.0)
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                bias1 = 1 - beta1 ** state["step"]
                bias2 = 1 - beta2 ** state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                grad = p.grad
                if grad.is_sparse:  # as torch.optim.SparseAdam
                    step_size = lr * math.sqrt(bias2) / bias1
                    grad = grad.coalesce()  # unique, sorted rows
                    rows, values = grad.indices()[0], grad.values()
                    if decay:
                        values = values.add(p.index_select(0, rows), alpha=decay)
                    # index_select/index_copy_/index_put_ are several times
                    # faster on CPU than advanced indexing and index_add_
                    m = exp_avg.index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                    v = exp_avg_sq.index_select(0, rows).mul_(beta2)
                    v.addcmul_(values, values, value=1 - beta2)
                    exp_avg.index_copy_(0, rows, m)
                    exp_avg_sq.index_copy_(0, rows, v)
                    update = m.div_(v.sqrt_().add_(eps)).mul_(-step_size)
                    p.index_put_((rows,), update, accumulate=True)
                else:  # as torch.optim.Adam
                    if decay:
                        grad = grad.add(p, alpha=decay)
                    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    denom = exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(eps)
                    p.addcdiv_(exp_avg, denom, value=-lr / bias1)
        return loss
