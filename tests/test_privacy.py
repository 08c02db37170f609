"""Differentially private training (``differential_privacy=DifferentialPrivacy(...)``)."""

import numpy as np
import pytest
import torch

from sklearn_recsys import (
    AttentionRecommender,
    DifferentialPrivacy,
    LSTMRecommender,
    MatrixFactorization,
)
from sklearn_recsys.datasets import make_interactions

opacus = pytest.importorskip("opacus")

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")  # test accountants


@pytest.fixture(scope="module")
def interactions():
    return make_interactions(n_users=80, n_items=40, density=0.15, random_state=0).interactions


def _mf(**dp):
    return MatrixFactorization(
        loss="softmax", n_components=8, max_iter=2, random_state=0,
        differential_privacy=DifferentialPrivacy(**{"epsilon": 4.0, **dp}),
    )


@pytest.mark.parametrize("make", [
    lambda dp: MatrixFactorization(loss="softmax", n_components=8, max_iter=2,
                                   random_state=0, differential_privacy=dp),
    lambda dp: AttentionRecommender(embedding_dim=8, max_iter=2, random_state=0,
                                    differential_privacy=dp),
    lambda dp: LSTMRecommender(embedding_dim=8, max_iter=2, random_state=0,
                               differential_privacy=dp),
], ids=["mf", "attention", "lstm"])
def test_epsilon_matches_opacus_accountant(make, interactions):
    from opacus.accountants import RDPAccountant

    model = make(DifferentialPrivacy(epsilon=4.0, sample_rate=0.2)).fit(interactions)
    n_users = interactions["user"].nunique()
    assert model.delta_ == pytest.approx(1 / n_users)
    steps = model.n_iter_ * round(1 / 0.2)
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=model.noise_multiplier_, sample_rate=0.2)
    assert model.epsilon_ == pytest.approx(accountant.get_epsilon(delta=model.delta_))
    # the noise was calibrated to spend the budget, and no more
    assert 3.9 <= model.epsilon_ <= 4.0


def test_per_user_clipping_bound(interactions, monkeypatch):
    """Each user's contribution to an update is its gradient clipped to max_grad_norm."""
    from opacus.optimizers import DPOptimizer

    recorded = []
    original = DPOptimizer.add_noise

    def spy(self):
        samples = [p.grad_sample.detach().clone() for p in self.params]
        summed = [p.summed_grad.detach().clone() for p in self.params]
        recorded.append((samples, summed))
        return original(self)

    monkeypatch.setattr(DPOptimizer, "add_noise", spy)
    C = 0.05
    model = MatrixFactorization(
        loss="softmax", n_components=8, max_iter=1, random_state=0,
        differential_privacy=DifferentialPrivacy(
            noise_multiplier=0.0, max_grad_norm=C, sample_rate=0.5
        ),
    ).fit(interactions)
    assert model.epsilon_ == np.inf
    assert recorded
    clipped_any = False
    for samples, summed in recorded:
        flat = torch.cat([s.reshape(len(s), -1) for s in samples], dim=1)
        norms = flat.norm(dim=1)
        clipped_any |= bool((norms > C).any())
        factors = (C / (norms + 1e-6)).clamp(max=1.0)
        contributions = flat * factors[:, None]
        # every user's contribution is within the bound ...
        assert torch.all(contributions.norm(dim=1) <= C * (1 + 1e-5))
        # ... and the update is their sum
        total = torch.cat([s.reshape(-1) for s in summed])
        torch.testing.assert_close(total, contributions.sum(0), rtol=1e-4, atol=1e-6)
    assert clipped_any


def test_batches_are_poisson_samples_of_whole_users():
    from sklearn_recsys._privacy import PoissonUnitIterator
    from sklearn_recsys._training import TensorDataset

    units = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 5] * 20) + torch.arange(200) // 10 * 6
    data = TensorDataset({"users": units, "rows": torch.arange(200)}, torch.ones(200))
    gen = torch.Generator().manual_seed(0)
    it = PoissonUnitIterator(data, units, sample_rate=0.25, steps=400, generator=gen)
    sizes = []
    for batch, _ in it:
        users = batch["users"]
        chosen = torch.unique(users)
        sizes.append(len(chosen))
        # all of a chosen user's rows, contiguous, in the position order of _unit
        assert len(users) == int(torch.isin(units, chosen).sum())
        assert torch.equal(torch.unique_consecutive(batch["_unit"]), torch.arange(len(chosen)))
    n_units = int(units.max()) + 1
    assert np.mean(sizes) == pytest.approx(0.25 * n_units, rel=0.05)
    assert np.var(sizes) > 0  # sizes vary, as Poisson sampling does


def test_same_seed_same_private_model(interactions):
    a = _mf().fit(interactions)
    b = _mf().fit(interactions)
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    c = _mf().set_params(random_state=1).fit(interactions)
    assert not np.allclose(a.item_embeddings_, c.item_embeddings_)


def test_private_fit_learns_something(interactions):
    from sklearn_recsys.metrics import make_ranking_scorer
    from sklearn_recsys.model_selection import UserHoldout

    tr, te = next(UserHoldout(test_size=0.2, random_state=0).split(interactions))
    train, test = interactions.iloc[tr], interactions.iloc[te]
    ndcg = make_ranking_scorer("ndcg", k=10)
    weak = MatrixFactorization(
        loss="softmax", n_components=8, max_iter=10, random_state=0,
        differential_privacy=DifferentialPrivacy(epsilon=1e-3),
    ).fit(train)
    strong = MatrixFactorization(
        loss="softmax", n_components=8, max_iter=10, random_state=0,
        differential_privacy=DifferentialPrivacy(epsilon=50.0, sample_rate=0.5),
    ).fit(train)
    assert ndcg(strong, test) > ndcg(weak, test)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "bpr"}, "needs loss='softmax'"),
    ({"early_stopping": True}, "early stopping"),
    ({"warm_start": True}, "warm_start"),
])
def test_settings_private_training_cannot_honour(kwargs, match, interactions):
    model = _mf().set_params(**kwargs)
    with pytest.raises(ValueError, match=match):
        model.fit(interactions)
    assert not hasattr(model, "net_")


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one of epsilon"),
    ({"epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one of epsilon"),
    ({"epsilon": 0.0}, "epsilon must be"),
    ({"epsilon": float("inf")}, "epsilon must be"),
    ({"epsilon": 1.0, "delta": 1.5}, "delta must be"),
    ({"epsilon": 1.0, "max_grad_norm": -1}, "max_grad_norm"),
    ({"epsilon": 1.0, "sample_rate": 2.0}, "sample_rate"),
    ({"epsilon": 1.0, "accountant": "moments"}, "accountant"),
    ({"noise_multiplier": True}, "noise_multiplier"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DifferentialPrivacy(**kwargs)


def test_parameter_type_is_checked(interactions):
    with pytest.raises((TypeError, ValueError), match="differential_privacy"):
        MatrixFactorization(loss="softmax", differential_privacy=8.0).fit(interactions)


def test_settings_compare_by_value():
    assert DifferentialPrivacy(epsilon=8.0) == DifferentialPrivacy(epsilon=8.0)
    assert DifferentialPrivacy(epsilon=8.0) != DifferentialPrivacy(epsilon=3.0)
    assert "epsilon=8.0" in repr(DifferentialPrivacy(epsilon=8.0))


def test_private_model_artifact_keeps_the_settings(interactions, tmp_path):
    import sklearn_recsys

    model = _mf().fit(interactions)
    loaded = sklearn_recsys.load(sklearn_recsys.save(model, tmp_path / "m.safetensors"))
    assert loaded.differential_privacy == model.differential_privacy
    assert loaded.epsilon_ == model.epsilon_
    users = model.user_ids_[:5]
    np.testing.assert_array_equal(loaded.recommend(users)[1], model.recommend(users)[1])
