"""The sampled softmax with logQ correction (``loss="sampled_softmax"``)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from sklearn_recsys import AttentionRecommender, LSTMRecommender, MatrixFactorization
from sklearn_recsys._objectives import (
    SharedNegatives,
    popularity_log_q,
    sampled_softmax_loss,
)
from sklearn_recsys.datasets import make_interactions


def test_proposal_is_smoothed_popularity():
    items = np.array([0, 0, 0, 1, 3])
    log_q = popularity_log_q(items, 5, "cpu", power=0.75)
    w = (np.array([3, 1, 0, 1, 0]) + 1.0) ** 0.75
    np.testing.assert_allclose(log_q.exp().numpy(), w / w.sum(), rtol=1e-6)
    gen = torch.Generator().manual_seed(0)
    sampler = SharedNegatives(log_q, 20_000)
    batch = sampler({"users": torch.arange(3), "items": torch.arange(3)}, gen)
    shared = batch["shared_items"]
    assert shared.shape == (3, 20_000)
    assert torch.equal(shared[0], shared[2])  # one sample for the whole batch
    freq = np.bincount(shared[0].numpy(), minlength=5) / 20_000
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.02)


def test_loss_is_corrected_cross_entropy_without_accidental_hits():
    pos = torch.tensor([2.0, 0.5])
    neg = torch.tensor([[1.0, 0.0, 3.0], [1.0, 0.0, 3.0]])
    pos_items = torch.tensor([0, 2])
    neg_items = torch.tensor([1, 2, 3])
    log_q = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    value = sampled_softmax_loss(pos, neg, pos_items, neg_items, log_q)
    # row 0: logits [2 - log .1, 1 - log .2, 0 - log .3, 3 - log .4], target 0
    row0 = torch.tensor([2 - np.log(0.1), 1 - np.log(0.2), -np.log(0.3), 3 - np.log(0.4)])
    expected0 = F.cross_entropy(row0[None].float(), torch.tensor([0]))
    # row 1: item 2 is the row's own item, so its sampled copy is left out
    row1 = torch.tensor([0.5 - np.log(0.3), 1 - np.log(0.2), 3 - np.log(0.4)])
    expected1 = F.cross_entropy(row1[None].float(), torch.tensor([0]))
    torch.testing.assert_close(value, torch.stack([expected0, expected1]), rtol=1e-5,
                               atol=1e-6)


def test_gradient_matches_full_softmax_for_a_large_sample():
    """With many samples the corrected gradient is that of the full softmax."""
    torch.manual_seed(0)
    n_items = 30
    scores = torch.randn(n_items, requires_grad=True)
    log_q = torch.log_softmax(torch.randn(n_items), 0)
    gen = torch.Generator().manual_seed(1)
    sample = torch.multinomial(log_q.exp(), 200_000, replacement=True, generator=gen)
    target = torch.tensor([4])
    sampled = sampled_softmax_loss(
        scores[target], scores[sample][None, :], target, sample, log_q
    ).sum()
    (g_sampled,) = torch.autograd.grad(sampled, scores)
    full = F.cross_entropy(scores[None], target)
    (g_full,) = torch.autograd.grad(full, scores)
    torch.testing.assert_close(g_sampled, g_full, atol=0.02, rtol=0.1)


@pytest.fixture(scope="module")
def interactions():
    return make_interactions(300, 120, density=0.15, popularity_exponent=0.5,
                             sequential=True, random_state=1).interactions


def test_sequence_models_train_with_it(interactions):
    for cls in (AttentionRecommender, LSTMRecommender):
        model = cls(loss="sampled_softmax", n_negatives=32, embedding_dim=16, max_iter=3,
                    random_state=0).fit(interactions)
        assert np.all(np.isfinite(model.loss_curve_))
        assert model.loss_curve_[-1] < model.loss_curve_[0]
        # scored like the full softmax: log-probabilities over the catalogue
        p = np.exp(model.predict(pd.DataFrame({
            "user": np.repeat(interactions["user"].iloc[0], 120),
            "item": np.arange(120), "timestamp": 0,
        })))
        assert p.sum() == pytest.approx(1.0, rel=1e-4)


def test_auto_loss_samples_for_large_catalogues(interactions, monkeypatch):
    model = AttentionRecommender(max_iter=1, embedding_dim=8, random_state=0)
    model.fit(interactions)
    assert model.net_.criterion_.loss == "softmax"
    monkeypatch.setattr(AttentionRecommender, "_AUTO_SAMPLED_LOGITS", 1000)
    model.fit(interactions)
    assert model.net_.criterion_.loss == "sampled_softmax"


def test_mf_sampled_softmax_needs_dot_and_non_negative_weights(interactions):
    with pytest.raises(ValueError, match="architecture='dot'"):
        MatrixFactorization(loss="sampled_softmax", architecture="neumf").fit(interactions)
    with pytest.raises(ValueError, match="non-negative"):
        MatrixFactorization(loss="sampled_softmax").fit(
            interactions, -np.ones(len(interactions))
        )


def test_mf_sampled_softmax_folds_new_users_in(interactions):
    model = MatrixFactorization(loss="sampled_softmax", n_components=8, max_iter=5,
                                random_state=0).fit(interactions)
    history = interactions[interactions["user"] == interactions["user"].iloc[0]]
    new = history.assign(user="new")
    items, scores = model.recommend(new, k=5)
    assert items.shape == (1, 5) and np.all(np.isfinite(scores))


def test_user_rows_and_their_sample():
    from sklearn_recsys._objectives import UserRowSample

    # users 0: items {1, 3}; 1: {}; 2: {0, 2, 4} (weights 2, 1, 1)
    indptr = torch.tensor([0, 2, 2, 5])
    indices = torch.tensor([1, 3, 0, 2, 4])
    values = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0])
    log_q = torch.log(torch.full((5,), 0.2))
    transform = UserRowSample(indptr, indices, values, 5, log_q, n_negatives=50)
    gen = torch.Generator().manual_seed(0)
    batch = transform({"users": torch.tensor([0, 1, 2]), "rows": torch.tensor([0, 1, 2])}, gen)
    assert batch["pos_items"].shape == (3, 3)
    np.testing.assert_array_equal(batch["pos_values"].numpy(),
                                  [[1, 1, 0], [0, 0, 0], [2, 1, 1]])
    np.testing.assert_array_equal(batch["pos_items"][2].numpy(), [0, 2, 4])
    sample = batch["shared_items"]
    assert sample.shape == (3, 50) and bool((sample == sample[0]).all())
    # own items stay in the sample (they are in the full softmax's denominator)
    assert "shared_hits" not in batch
    weights = batch["shared_weights"][0]
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))


def test_user_row_loss_gradient_matches_the_full_softmax():
    """With a large sample, MF's sampled loss has the full softmax's gradient."""
    from sklearn_recsys._objectives import sampled_multinomial_loss

    torch.manual_seed(0)
    n_items = 20
    scores = torch.randn(2, n_items, requires_grad=True)
    targets = torch.zeros(2, n_items)
    targets[0, [1, 5]] = 1.0
    targets[1, [7]] = 2.0
    log_q = torch.log_softmax(torch.randn(n_items), 0)
    sample = torch.multinomial(log_q.exp(), 400_000, replacement=True,
                               generator=torch.Generator().manual_seed(1))
    pos_items = torch.tensor([[1, 5], [7, 0]])
    pos_values = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    pos = scores.gather(1, pos_items)
    sampled = sampled_multinomial_loss(pos, pos_items, pos_values, scores[:, sample], sample,
                                       log_q)
    (g_sampled,) = torch.autograd.grad(sampled, scores)
    full = -(targets * torch.log_softmax(scores, 1)).sum() / targets.sum()
    (g_full,) = torch.autograd.grad(full, scores)
    # the user's other items compete in the denominator, as in the full
    # softmax: the estimate agrees up to the sampling noise
    torch.testing.assert_close(g_sampled, g_full, atol=5e-3, rtol=0.05)
