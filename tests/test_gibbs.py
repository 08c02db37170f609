"""The Gibbs sampler's pieces against closed forms (``sklearn_recsys._gibbs``)."""

import numpy as np
import pytest
import torch

from sklearn_recsys import _gibbs


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("memory", [_gibbs._MEMORY, 64])
def test_factor_conditional_is_the_dense_posterior(monkeypatch, memory):
    """Per-id precision and mean as the dense formulas give them, with
    repeated (user, item) pairs, weights, and blocks/column slices forced
    small (``memory`` bytes)."""
    monkeypatch.setattr(_gibbs, "_MEMORY", memory)
    torch.manual_seed(0)
    n_users, n_items, k, n = 7, 5, 3, 40
    users, items = torch.randint(0, n_users, (n,)), torch.randint(0, n_items, (n,))
    weights = torch.rand(n, dtype=torch.float64) + 0.5
    residuals = torch.randn(n, dtype=torch.float64)
    q = torch.randn(n_items, k, dtype=torch.float64)
    prior_precision = 2 * torch.eye(k, dtype=torch.float64)
    prior_mean, tau = torch.randn(k, dtype=torch.float64), 1.7
    rows = _gibbs._Rows(users, items, weights, n_users, n_items)
    assert len(rows.rows) < n  # some pairs repeat
    draws, means = rows.sample_factors(q, weights * residuals, prior_mean, prior_precision,
                                       tau, _generator())
    for u in range(n_users):
        mine = users == u
        qs, w = q[items[mine]], weights[mine]
        precision = prior_precision + tau * (qs.T * w) @ qs
        rhs = prior_precision @ prior_mean + tau * (qs * (w * residuals[mine])[:, None]).sum(0)
        np.testing.assert_allclose(means[u], torch.linalg.solve(precision, rhs), atol=1e-12)
    assert not torch.allclose(draws, means)


@pytest.mark.parametrize("shape, rate", [(0.5, 2.0), (3.0, 1.0), (500.0, 4.0)])
def test_gamma_draws_have_the_gamma_moments(shape, rate):
    g = _generator()
    x = np.array([_gibbs._gamma(shape, rate, g) for _ in range(4000)])
    mean, var = shape / rate, shape / rate ** 2
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / len(x))
    assert 0.85 < x.var() / var < 1.15 and (x > 0).all()


def test_wishart_draws_have_the_wishart_mean():
    scale = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    g = _generator()
    mean = torch.stack([_gibbs._wishart(scale, 6, g) for _ in range(3000)]).mean(0)
    np.testing.assert_allclose(mean, 6 * scale, rtol=0.08, atol=0.08)


def test_compress_keeps_the_product_at_its_rank():
    torch.manual_seed(0)
    p, q = torch.randn(30, 4, dtype=torch.float64), torch.randn(20, 4, dtype=torch.float64)
    p2, q2 = _gibbs._compress(torch.cat([p, p], 1), torch.cat([q, -0.5 * q], 1), 4)
    assert p2.shape == (30, 4) and q2.shape == (20, 4)
    np.testing.assert_allclose(p2 @ q2.T, 0.5 * p @ q.T, atol=1e-10)
