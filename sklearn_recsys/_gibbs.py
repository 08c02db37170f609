"""Bayesian matrix factorization of ratings by Gibbs sampling.

The model of Salakhutdinov & Mnih (2008, "Bayesian probabilistic matrix
factorization using Markov chain Monte Carlo", BPMF) with user and item
biases and a learned noise level::

    r_ui ~ N(mu + b_u + c_i + p_u . q_i, 1 / (tau * w_ui))
    p_u ~ N(m_P, L_P^-1),  (m_P, L_P) ~ Normal-Wishart(0, 2, I, k)   (q_i alike)
    b_u ~ N(0, 1 / l_b),   l_b ~ Gamma(1, 1)                          (c_i alike)
    tau ~ Gamma(1, 1)

``mu`` is the (weighted) mean rating and ``w_ui`` the sample weights (1 by
default); the sampler works on the ratings standardised by their standard
deviation, so that the hyperpriors do not depend on the rating scale. Every regularisation strength is a hyperparameter the sampler
draws from its posterior, so it adapts to the data instead of being set.
The prediction is the posterior mean of the score, averaged over the
samples drawn after the burn-in. That mean is kept as one rank-``k``
factorization (its truncated SVD, ``P = U sqrt(S)``, ``Q = V sqrt(S)``),
so the fitted model is an ordinary biased MF.

Cost per sweep: ``O(nnz k^2 + (n_users + n_items) k^3)``; memory
``O(nnz + (n_users + n_items) k^2)``: the per-id precision matrices are
built 16,384 ids at a time, from the other side's ``q q^T``. Every draw comes from
the fit's own :class:`torch.Generator`.
"""

import math
import time

import numpy as np
import torch

__all__ = ["gibbs_factorization"]

# ids whose k x k posterior precisions are built at once
_BLOCK = 1 << 14


def _gamma(shape, rate, generator):
    """One Gamma(shape, rate) draw (Marsaglia & Tsang 2000) from ``generator``."""
    boost = 1.0
    if shape < 1:  # Gamma(a) = Gamma(a + 1) * U^(1/a)
        u = torch.rand((), generator=generator, device=generator.device).item()
        boost, shape = u ** (1.0 / shape), shape + 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = torch.randn((), generator=generator, device=generator.device).item()
        v = (1.0 + c * x) ** 3
        if v <= 0:
            continue
        u = torch.rand((), generator=generator, device=generator.device).item()
        if math.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return boost * d * v / rate


def _randn(shape, generator, dtype):
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)


def _wishart(scale, df, generator):
    """A Wishart(scale, df) draw by Bartlett's decomposition."""
    k = scale.shape[0]
    chol = torch.linalg.cholesky(scale)
    a = torch.tril(_randn((k, k), generator, scale.dtype), diagonal=-1)
    diag = [math.sqrt(2.0 * _gamma((df - i) / 2.0, 1.0, generator)) for i in range(k)]
    a = a + torch.diag(torch.tensor(diag, dtype=scale.dtype, device=scale.device))
    la = chol @ a
    return la @ la.T


def _normal_wishart(factors, generator):
    """(mean, precision) of the factors' prior given them (BPMF's hyperprior:
    mu_0 = 0, beta_0 = 2, W_0 = I, nu_0 = k)."""
    n, k = factors.shape
    beta0, nu0 = 2.0, k
    eye = torch.eye(k, dtype=factors.dtype, device=factors.device)
    mean = factors.mean(0)
    centred = factors - mean
    scatter = centred.T @ centred
    beta = beta0 + n
    w_inv = eye + scatter + (beta0 * n / beta) * torch.outer(mean, mean)
    w = torch.linalg.inv(w_inv)
    precision = _wishart((w + w.T) / 2, nu0 + n, generator)
    cov_chol = torch.linalg.cholesky(torch.linalg.inv(beta * precision))
    mu = n * mean / beta + cov_chol @ _randn((k,), generator, factors.dtype)
    return mu, precision


class _Rows:
    """The ratings grouped by one side's id (CSR order) for the per-id draws."""

    def __init__(self, rows, cols, values, weights, n_rows, n_cols):
        # row-major order: the sparse products read coalesced indices (a
        # repeated (row, col) pair is two terms of the same sum)
        order = torch.argsort(rows * n_cols + cols, stable=True)
        self.order = order
        self.rows = rows[order]
        self.cols = cols[order]
        self.values = values[order]
        self.weights = weights[order]
        counts = torch.bincount(rows, minlength=n_rows)
        self.indptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        self.n_rows = n_rows

    def sample_factors(self, other, offsets, prior_mean, prior_precision, tau, generator):
        """Each row's factors from its Gaussian conditional, ``_BLOCK`` rows at
        a time (``offsets``: the ratings' other terms, in the ratings' order).

        A row's precision ``L + tau sum_j w_j q_j q_j^T`` is one sparse
        product of its weights with the other side's ``q_j q_j^T``.
        """
        n_other, k = other.shape
        outer = (other[:, :, None] * other[:, None, :]).reshape(n_other, k * k)
        residual = self.weights * (self.values - offsets[self.order])
        prior_shift = prior_precision @ prior_mean
        out = torch.empty(self.n_rows, k, dtype=other.dtype, device=other.device)
        indptr = self.indptr.tolist()
        for start in range(0, self.n_rows, _BLOCK):
            stop = min(start + _BLOCK, self.n_rows)
            lo, hi = indptr[start], indptr[stop]
            index = torch.stack([self.rows[lo:hi] - start, self.cols[lo:hi]])

            def rows(values, index=index, lo=lo, hi=hi, n=stop - start):
                return torch.sparse_coo_tensor(
                    index, values[lo:hi], size=(n, n_other), is_coalesced=True,
                    check_invariants=False,
                )

            precision = tau * (rows(self.weights) @ outer).view(-1, k, k) + prior_precision
            rhs = tau * (rows(residual) @ other) + prior_shift
            chol = torch.linalg.cholesky(precision)
            mean = torch.cholesky_solve(rhs[:, :, None], chol)[..., 0]
            noise = _randn((stop - start, k, 1), generator, other.dtype)
            # mean + L^-T z has covariance (L L^T)^-1
            out[start:stop] = mean + torch.linalg.solve_triangular(
                chol.transpose(1, 2), noise, upper=True
            )[..., 0]
        return out

    def sample_bias(self, residual_sum, weight_sum, prior_precision, tau, generator):
        precision = tau * weight_sum + prior_precision
        mean = tau * residual_sum / precision
        return mean + _randn(mean.shape, generator, mean.dtype) / precision.sqrt()


def _bias_precision(bias, generator):
    return _gamma(1.0 + bias.numel() / 2.0, 1.0 + float((bias ** 2).sum()) / 2.0, generator)


def _compress(p, q, rank):
    """Rank-``rank`` truncated SVD ``(P', Q')`` of ``P Q^T`` (P' Q'^T ~ P Q^T)."""
    qp, rp = torch.linalg.qr(p)
    qq, rq = torch.linalg.qr(q)
    u, s, vh = torch.linalg.svd(rp @ rq.T, full_matrices=False)
    rank = min(rank, len(s))
    root = s[:rank].sqrt()
    return qp @ (u[:, :rank] * root), qq @ (vh[:rank].T * root)


def gibbs_factorization(users, items, ratings, weights, n_users, n_items, n_components,
                        n_burn, n_samples, generator):
    """Posterior mean of Bayesian biased MF by Gibbs sampling.

    Parameters
    ----------
    users, items : LongTensor of shape (n_ratings,)
        Indices of the rated pairs, on the generator's device.
    ratings, weights : Tensor of shape (n_ratings,)
        The ratings and their sample weights (float64).
    n_users, n_items, n_components : int
    n_burn, n_samples : int
        Sweeps discarded, then sweeps averaged.
    generator : torch.Generator
        The source of every draw; its device is where the sampler runs.

    Returns
    -------
    dict
        ``user_factors`` and ``item_factors`` (``(n, n_components)``, the
        truncated SVD of the posterior mean of ``P Q^T``), ``user_bias``,
        ``item_bias``, ``global_bias`` (float), ``noise_variance`` (the
        posterior mean of ``1 / tau``), ``train_mse`` (per sweep, the
        weighted mean squared residual of its sample) and ``sweep_seconds``
        (per sweep, its duration before averaging).
    """
    dtype = torch.float64
    k = n_components
    total_weight = float(weights.sum())
    mu = float((weights * ratings).sum()) / total_weight
    # sampled on the standardised ratings, so that the hyperpriors are
    # scale-free; the results are scaled back
    scale = math.sqrt(float((weights * (ratings - mu) ** 2).sum()) / total_weight)
    scale = scale if math.isfinite(scale) and scale > 0 else 1.0
    ratings = (ratings - mu) / scale
    by_user = _Rows(users, items, ratings, weights, n_users, n_items)
    by_item = _Rows(items, users, ratings, weights, n_items, n_users)
    user_weight = torch.zeros(n_users, dtype=dtype, device=users.device).index_add_(
        0, users, weights)
    item_weight = torch.zeros(n_items, dtype=dtype, device=users.device).index_add_(
        0, items, weights)
    # initial factors whose products have the ratings' variance (1): p.q
    # then has variance k std^4 (a chain started at small factors mixes slowly)
    init_std = (1.0 / k) ** 0.25
    p = init_std * _randn((n_users, k), generator, dtype)
    q = init_std * _randn((n_items, k), generator, dtype)
    b_user = torch.zeros(n_users, dtype=dtype, device=users.device)
    b_item = torch.zeros(n_items, dtype=dtype, device=users.device)
    tau = 2.0  # BPMF's fixed noise precision, here the chain's starting point
    sum_p = sum_q = None
    sum_bu = torch.zeros_like(b_user)
    sum_bi = torch.zeros_like(b_item)
    noise_sum, train_mse, seconds = 0.0, [], []
    dot = (p[users] * q[items]).sum(1)
    for sweep in range(n_burn + n_samples):
        start = time.perf_counter()
        lb_user, lb_item = _bias_precision(b_user, generator), _bias_precision(b_item, generator)
        residual = weights * (ratings - dot - b_item[items])
        b_user = by_user.sample_bias(
            torch.zeros_like(b_user).index_add_(0, users, residual), user_weight, lb_user,
            tau, generator)
        residual = weights * (ratings - dot - b_user[users])
        b_item = by_item.sample_bias(
            torch.zeros_like(b_item).index_add_(0, items, residual), item_weight, lb_item,
            tau, generator)
        mean_p, prec_p = _normal_wishart(p, generator)
        mean_q, prec_q = _normal_wishart(q, generator)
        offsets = b_user[users] + b_item[items]
        p = by_user.sample_factors(q, offsets, mean_p, prec_p, tau, generator)
        q = by_item.sample_factors(p, offsets, mean_q, prec_q, tau, generator)
        dot = (p[users] * q[items]).sum(1)
        residual = ratings - b_user[users] - b_item[items] - dot
        squared = float((weights * residual ** 2).sum())
        train_mse.append(squared / total_weight * scale ** 2)
        tau = _gamma(1.0 + total_weight / 2.0, 1.0 + squared / 2.0, generator)
        seconds.append(time.perf_counter() - start)  # float() synchronised the device
        if sweep < n_burn:
            continue
        noise_sum += 1.0 / tau
        sum_bu += b_user
        sum_bi += b_item
        if sum_p is None:
            sum_p, sum_q = p.clone(), q.clone()
        else:  # the running sum of P Q^T, kept at rank 2k (it is near rank k)
            sum_p, sum_q = _compress(torch.cat([sum_p, p], 1), torch.cat([sum_q, q], 1),
                                     min(2 * k, n_users, n_items))
    user_factors, item_factors = _compress(sum_p * (scale / n_samples), sum_q, k)
    pad = k - user_factors.shape[1]  # fewer ids than components
    if pad > 0:
        user_factors = torch.cat([user_factors, user_factors.new_zeros(n_users, pad)], 1)
        item_factors = torch.cat([item_factors, item_factors.new_zeros(n_items, pad)], 1)
    return {
        "user_factors": user_factors,
        "item_factors": item_factors,
        "user_bias": sum_bu * (scale / n_samples),
        "item_bias": sum_bi * (scale / n_samples),
        "global_bias": mu,
        "noise_variance": noise_sum * (scale ** 2 / n_samples),
        "train_mse": np.asarray(train_mse),
        "sweep_seconds": np.asarray(seconds),
    }
