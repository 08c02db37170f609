"""Bayesian matrix factorization of ratings by Gibbs sampling.

The model of Salakhutdinov & Mnih (2008, "Bayesian probabilistic matrix
factorization using Markov chain Monte Carlo", BPMF) with user and item
biases and a learned noise level::

    r_ui ~ N(mu + b_u + c_i + p_u . q_i, 1 / (tau * w_ui))
    p_u ~ N(m_P, L_P^-1),  (m_P, L_P) ~ Normal-Wishart(0, 2, I, k)   (q_i alike)
    b_u ~ N(0, 1 / l_b),   l_b ~ Gamma(1, 1)                          (c_i alike)
    tau ~ Gamma(1, 1)

``mu`` is the (weighted) mean rating and ``w_ui`` the sample weights (1 by
default, scaled to a mean of 1: relative precisions); the sampler works on
the ratings standardised by their standard deviation, so that the
hyperpriors do not depend on the rating scale. Every regularisation
strength is a hyperparameter the sampler draws from its posterior, so it
adapts to the data instead of being set. The prediction is the posterior
mean of the score, averaged over the sweeps after the burn-in through the
conditional means the draws come from (Rao-Blackwellised: ``E[P | Q] Q^T``
and ``P E[Q | P]^T``, and the biases' conditional means), which carry less
Monte Carlo noise than the draws. That mean is kept as one rank-``k``
factorization (its truncated SVD, ``P = U sqrt(S)``, ``Q = V sqrt(S)``),
so the fitted model is an ordinary biased MF.

Cost per sweep: ``O(nnz k^2 + (n_users + n_items) k^3)``; memory
``O(nnz + (n_users + n_items) k)`` plus ``_MEMORY`` bytes at most for the
per-id precision matrices (built for blocks of ids, from slices of the
other side's ``q q^T``). Every draw comes from the fit's own
:class:`torch.Generator`.
"""

import math
import time

import numpy as np
import torch

__all__ = ["gibbs_factorization"]

# ids whose k x k posterior precisions are built at once (at most), and the
# bytes a block's precisions, or a slice of the other side's q q^T, may take
_BLOCK = 1 << 14
_MEMORY = 1 << 28


def _gamma(shape, rate, generator):
    """One Gamma(shape, rate) draw (Marsaglia & Tsang 2000) from ``generator``."""
    boost = 1.0
    if shape < 1:  # Gamma(a) = Gamma(a + 1) * U^(1/a)
        u = torch.rand((), generator=generator, device=generator.device,
                       dtype=torch.float64).item()
        boost, shape = u ** (1.0 / shape), shape + 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = torch.randn((), generator=generator, device=generator.device,
                        dtype=torch.float64).item()
        v = (1.0 + c * x) ** 3
        if v <= 0:
            continue
        u = torch.rand((), generator=generator, device=generator.device,
                       dtype=torch.float64).item()
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
    """The ratings grouped by one side's id for the per-id draws.

    The (row, col) pairs are kept once each, sorted (a repeated pair is two
    terms of the same sums, added together), so that the sparse products
    read coalesced indices.
    """

    def __init__(self, rows, cols, weights, n_rows, n_cols):
        keys, self.inverse = torch.unique(rows * n_cols + cols, return_inverse=True)
        self.rows, self.cols = keys // n_cols, keys % n_cols
        self.weights = self._summed(weights)
        counts = torch.bincount(self.rows, minlength=n_rows)
        self.indptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]).tolist()
        self.n_rows = n_rows

    def _summed(self, values):
        """Per-rating ``values`` summed over each (row, col) pair."""
        return values.new_zeros(len(self.rows)).index_add_(0, self.inverse, values)

    def sample_factors(self, other, weighted_residuals, prior_mean, prior_precision, tau,
                       generator):
        """Each row's factors from its Gaussian conditional, and that
        conditional's mean.

        A row's precision ``L + tau sum_j w_j q_j q_j^T`` is a sparse product
        of its weights with the other side's ``q_j q_j^T`` (and the mean's
        right-hand side one of its ``w_j r_j`` with ``q_j``), computed for
        as many rows, and ``q q^T`` columns, at a time as ``_MEMORY`` bytes
        hold. ``weighted_residuals``: ``w (r - offsets)`` of each rating.
        """
        n_other, k = other.shape
        rhs_values = self._summed(weighted_residuals)
        prior_shift = prior_precision @ prior_mean
        out = torch.empty(self.n_rows, k, dtype=other.dtype, device=other.device)
        means = torch.empty_like(out)
        itemsize = other.element_size()
        block = max(1, min(_BLOCK, _MEMORY // (itemsize * k * k)))
        pairs = torch.triu_indices(k, k, device=other.device)  # q q^T is symmetric
        chunk = max(1, _MEMORY // (itemsize * n_other))  # q q^T columns at a time
        for start in range(0, self.n_rows, block):
            stop = min(start + block, self.n_rows)
            lo, hi = self.indptr[start], self.indptr[stop]
            index = torch.stack([self.rows[lo:hi] - start, self.cols[lo:hi]])

            def rows(values, index=index, n=stop - start):
                return torch.sparse_coo_tensor(
                    index, values, size=(n, n_other), is_coalesced=True,
                    check_invariants=False,
                )

            weights = rows(self.weights[lo:hi])
            precision = other.new_empty(stop - start, k, k)
            for c in range(0, pairs.shape[1], chunk):
                i, j = pairs[:, c : c + chunk]
                upper = weights @ (other[:, i] * other[:, j])
                precision[:, i, j] = upper
                precision[:, j, i] = upper
            precision = tau * precision + prior_precision
            rhs = tau * (rows(rhs_values[lo:hi]) @ other) + prior_shift
            chol = torch.linalg.cholesky(precision)
            mean = torch.cholesky_solve(rhs[:, :, None], chol)[..., 0]
            noise = _randn((stop - start, k, 1), generator, other.dtype)
            # mean + L^-T z has covariance (L L^T)^-1
            means[start:stop] = mean
            out[start:stop] = mean + torch.linalg.solve_triangular(
                chol.transpose(1, 2), noise, upper=True
            )[..., 0]
        return out, means

    @staticmethod
    def sample_bias(residual_sum, weight_sum, prior_precision, tau, generator):
        precision = tau * weight_sum + prior_precision
        mean = tau * residual_sum / precision
        return mean + _randn(mean.shape, generator, mean.dtype) / precision.sqrt(), mean


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
                        n_burn, n_samples, generator, log=None):
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
    log : callable, default=None
        Called with a line of progress after every sweep.

    Returns
    -------
    dict
        ``user_factors`` and ``item_factors`` (``(n, n_components)``, the
        truncated SVD of the posterior mean of ``P Q^T``, summed over the
        samples at rank ``4 n_components``), ``user_bias``,
        ``item_bias``, ``global_bias`` (float), ``noise_variance`` (the
        posterior mean of ``1 / tau``), ``train_mse`` (per sweep, the
        weighted mean squared residual of its sample) and ``sweep_seconds``
        (per sweep, its duration before averaging).
    """
    dtype = torch.float64
    k = n_components
    # the weights are relative precisions: scaled to a mean of 1 over the
    # observed ratings, so that their unit does not matter
    observed = int((weights > 0).sum())
    weights = weights * (observed / float(weights.sum()))
    total_weight = float(observed)
    mu = float((weights * ratings).sum()) / total_weight
    # sampled on the standardised ratings, so that the hyperpriors are
    # scale-free; the results are scaled back (equal ratings: a scale far
    # below theirs, so that the fit stays at their value)
    scale = math.sqrt(float((weights * (ratings - mu) ** 2).sum()) / total_weight)
    if not (math.isfinite(scale) and scale > 0):
        scale = 1e-3 * max(abs(mu), 1.0)
    ratings = (ratings - mu) / scale
    by_user = _Rows(users, items, weights, n_users, n_items)
    by_item = _Rows(items, users, weights, n_items, n_users)
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
        b_user, mean_bu = by_user.sample_bias(
            torch.zeros_like(b_user).index_add_(0, users, residual), user_weight, lb_user,
            tau, generator)
        residual = weights * (ratings - dot - b_user[users])
        b_item, mean_bi = by_item.sample_bias(
            torch.zeros_like(b_item).index_add_(0, items, residual), item_weight, lb_item,
            tau, generator)
        mean_p, prec_p = _normal_wishart(p, generator)
        mean_q, prec_q = _normal_wishart(q, generator)
        residual = weights * (ratings - b_user[users] - b_item[items])
        q_before = q
        p, p_given_q = by_user.sample_factors(q, residual, mean_p, prec_p, tau, generator)
        q, q_given_p = by_item.sample_factors(p, residual, mean_q, prec_q, tau, generator)
        dot = (p[users] * q[items]).sum(1)
        residual = ratings - b_user[users] - b_item[items] - dot
        squared = float((weights * residual ** 2).sum())
        train_mse.append(squared / total_weight * scale ** 2)
        tau = _gamma(1.0 + total_weight / 2.0, 1.0 + squared / 2.0, generator)
        seconds.append(time.perf_counter() - start)  # float() synchronised the device
        if log is not None:
            log(f"sweep {sweep + 1}/{n_burn + n_samples}"
                f"{' (burn-in)' if sweep < n_burn else ''}: training MSE "
                f"{train_mse[-1]:.4f}, {seconds[-1]:.2f} s")
        if sweep < n_burn:
            continue
        # Rao-Blackwellised averages: the conditional means the draws came
        # from, E[P | Q] Q^T and P E[Q | P]^T (each estimates E[P Q^T]; less
        # Monte Carlo noise than the draws themselves)
        noise_sum += 1.0 / tau
        sum_bu += mean_bu
        sum_bi += mean_bi
        new_p = torch.cat([0.5 * p_given_q, 0.5 * p], 1)
        new_q = torch.cat([q_before, q_given_p], 1)
        if sum_p is not None:  # the running sum of P Q^T, kept at rank 4k (near k)
            new_p, new_q = torch.cat([sum_p, new_p], 1), torch.cat([sum_q, new_q], 1)
        sum_p, sum_q = _compress(new_p, new_q, 4 * k)
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
