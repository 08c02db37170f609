"""Differentially private training (DP-SGD) with Opacus.

:class:`DifferentialPrivacy` is the estimators' ``differential_privacy``
parameter. With it, a neural estimator trains with DP-SGD (Abadi et al.,
2016) at the level of **users**: the unit whose presence or absence the
guarantee covers is a user's whole training history.

* Each step draws its batch by Poisson sampling of users (each user in with
  probability ``sample_rate``, independently, from the fit's own generator:
  :class:`PoissonUnitIterator`), as the privacy accountant assumes.
* Each sampled user's gradient is computed separately (one backward pass per
  user, over all of the user's training rows) and handed to Opacus's
  :class:`~opacus.optimizers.DPOptimizer`, which clips each to
  ``max_grad_norm``, adds Gaussian noise of standard deviation
  ``noise_multiplier * max_grad_norm`` (from a generator seeded by the fit)
  and averages over the expected batch size before the optimizer's step.
* Opacus's accountant (RDP by default) tracks the privacy spent; the noise is
  calibrated before training so that the planned steps (``max_iter`` epochs
  of ``1 / sample_rate`` steps) spend exactly the target ``epsilon`` at
  ``delta``, and training stops there. The estimator reports ``epsilon_``.

The per-user gradients work for any network, without per-layer rules
(Opacus's grad samplers need every parameter used through a supported layer,
batch first, which the item tables of the full-catalogue losses are not);
the cost is one small backward pass per sampled user.
"""

import math
import numbers
import warnings
from contextlib import contextmanager

import torch

__all__ = ["DifferentialPrivacy", "PoissonUnitIterator", "PrivacyRun"]

_ACCOUNTANTS = ("rdp", "prv", "gdp")


class DifferentialPrivacy:
    """Settings of differentially private training (DP-SGD), per user.

    Pass it as the ``differential_privacy`` parameter of
    :class:`~sklearn_recsys.MatrixFactorization` (``loss="softmax"``),
    :class:`~sklearn_recsys.LSTMRecommender` or
    :class:`~sklearn_recsys.AttentionRecommender`. The guarantee is
    (``epsilon``, ``delta``)-differential privacy of the trained network with
    respect to the addition or removal of one user's whole training history.

    Parameters
    ----------
    epsilon : float, default=None
        Target privacy budget; the noise is calibrated so that training
        spends it exactly. Give either ``epsilon`` or ``noise_multiplier``.
    delta : float or None, default=None
        Target ``delta``; None uses ``1 / n_users`` of the fit.
    max_grad_norm : float, default=0.03
        Each user's gradient is clipped to this L2 norm. 0.03 was chosen on
        validation splits of MovieLens-100K and latest-small at
        ``epsilon=8`` (MF NDCG@10 0.2049 / 0.1311; 0.01 to 0.1 within 1.5%,
        1.0 30% lower on ML-100K; attention alike at 0.1 and 1.0;
        ``benchmarks/bench_privacy.py --validate``).
    noise_multiplier : float, default=None
        Standard deviation of the noise relative to ``max_grad_norm``, when
        it is chosen instead of ``epsilon`` (``epsilon_`` then reports what
        it spent; 0 means no noise and ``epsilon_ = inf``).
    sample_rate : float, default=0.1
        Probability that a user is in a step's batch (Poisson sampling); an
        epoch is ``round(1 / sample_rate)`` steps (0.1 did better than 0.2 on
        the same validation splits).
    accountant : {"rdp", "prv", "gdp"}, default="rdp"
        Opacus's privacy accountant.

    Examples
    --------
    >>> from sklearn_recsys import DifferentialPrivacy, MatrixFactorization
    >>> mf = MatrixFactorization(loss="softmax",
    ...                          differential_privacy=DifferentialPrivacy(epsilon=8.0))
    """

    def __init__(
        self, epsilon=None, *, delta=None, max_grad_norm=0.03, noise_multiplier=None,
        sample_rate=0.1, accountant="rdp",
    ):
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.sample_rate = sample_rate
        self.accountant = accountant
        self._check()

    def _check(self):
        def positive(name, value, allow_zero=False):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                value >= 0 if allow_zero else value > 0
            ) or not math.isfinite(value):
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(
                    f"DifferentialPrivacy: {name} must be a finite number {bound}, "
                    f"got {value!r}."
                )

        if (self.epsilon is None) == (self.noise_multiplier is None):
            raise ValueError(
                "DifferentialPrivacy needs exactly one of epsilon (the budget to "
                "spend) and noise_multiplier, got "
                f"epsilon={self.epsilon!r}, noise_multiplier={self.noise_multiplier!r}."
            )
        if self.epsilon is not None:
            positive("epsilon", self.epsilon)
        if self.noise_multiplier is not None:
            positive("noise_multiplier", self.noise_multiplier, allow_zero=True)
        positive("max_grad_norm", self.max_grad_norm)
        if self.delta is not None:
            positive("delta", self.delta)
            if self.delta >= 1:
                raise ValueError(f"DifferentialPrivacy: delta must be < 1, got {self.delta!r}.")
        positive("sample_rate", self.sample_rate)
        if self.sample_rate > 1:
            raise ValueError(
                f"DifferentialPrivacy: sample_rate must be <= 1, got {self.sample_rate!r}."
            )
        if self.accountant not in _ACCOUNTANTS:
            raise ValueError(
                f"DifferentialPrivacy: accountant must be one of {_ACCOUNTANTS}, got "
                f"{self.accountant!r}."
            )

    def _params(self):
        return {
            "epsilon": self.epsilon, "delta": self.delta,
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate, "accountant": self.accountant,
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items() if v is not None)
        return f"DifferentialPrivacy({args})"

    def __eq__(self, other):
        return type(other) is type(self) and other._params() == self._params()

    def __hash__(self):
        return hash(tuple(self._params().items()))


@contextmanager
def _quiet_accountant():
    # Opacus notes when the best RDP order is the largest it tries (the bound
    # could be tighter with more orders); the reported epsilon is still valid
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def _require_opacus():
    try:
        import opacus  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "differential_privacy needs Opacus: pip install -c constraints.txt "
            '"sklearn_recsys[privacy]"'
        ) from exc


class PrivacyRun:
    """The privacy state of one fit: sampling, noise and accounting.

    Parameters
    ----------
    settings : DifferentialPrivacy
    units : torch.Tensor of int64, shape (n_rows,)
        The user (as ``0..n_units - 1``) of each training row.
    epochs : int
        Planned epochs (``max_iter``); the noise is calibrated for them.
    seed : int
        Seed of the noise generator.
    device : str
    per_user : iterable of str, default=()
        Names of the network's per-user parameters (rows that only their own
        user's loss reaches, e.g. MF's user factors): they follow their
        user's gradient without clipping or noise (joint differential
        privacy); the DP-SGD guarantee covers every other parameter.
    """

    def __init__(self, settings, units, epochs, seed, device, per_user=()):
        _require_opacus()
        from opacus.accountants import create_accountant
        from opacus.accountants.utils import get_noise_multiplier

        self.settings = settings
        self.units = units
        self.per_user = frozenset(per_user)
        n_units = self.n_units = int(units.max()) + 1 if len(units) else 0
        self.sample_rate = float(settings.sample_rate)
        self.steps_per_epoch = max(1, round(1 / self.sample_rate))
        self.planned_steps = self.steps_per_epoch * int(epochs)
        self.delta = float(settings.delta if settings.delta is not None else 1 / n_units)
        if settings.noise_multiplier is not None:
            self.noise_multiplier = float(settings.noise_multiplier)
        else:
            with _quiet_accountant():
                self.noise_multiplier = float(get_noise_multiplier(
                    target_epsilon=settings.epsilon, target_delta=self.delta,
                    sample_rate=self.sample_rate, steps=self.planned_steps,
                    accountant=settings.accountant,
                ))
        self.max_grad_norm = float(settings.max_grad_norm)
        self.expected_batch_size = max(1, round(self.sample_rate * self.n_units))
        self.accountant = create_accountant(settings.accountant)
        self.steps = 0
        self.noise_generator = torch.Generator(device=device).manual_seed(int(seed))

    def step(self):
        """Record one noisy step with the accountant."""
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        self.steps += 1

    def epsilon(self):
        """The privacy spent so far, at ``delta``."""
        if self.steps == 0:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf
        with _quiet_accountant():
            return float(self.accountant.get_epsilon(delta=self.delta))

    def wrap_optimizer(self, optimizer):
        from opacus.optimizers import DPOptimizer

        return DPOptimizer(
            optimizer, noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=self.expected_batch_size, loss_reduction="mean",
            generator=self.noise_generator,
        )


class PoissonUnitIterator:
    """Batches of whole users drawn by Poisson sampling, for DP-SGD.

    Each of the ``steps`` batches of a pass holds every user independently
    with probability ``sample_rate`` (so batch sizes vary, and may be 0), with
    all of the user's rows. The batch dict gets ``"_unit"``: the position in
    the batch of each row's user (rows of a user are contiguous).

    Parameters
    ----------
    dataset : TensorDataset
    units : torch.Tensor of int64, shape (n_rows,)
        The user of each row, as ``0..n_units - 1``.
    sample_rate : float
    steps : int
        Batches per pass.
    generator : torch.Generator
    batch_transform : callable, default=None
    """

    def __init__(self, dataset, units, sample_rate, steps, generator, batch_transform=None):
        self.dataset = dataset
        order = torch.argsort(units, stable=True)
        self.order = order
        counts = torch.bincount(units, minlength=int(units.max()) + 1 if len(units) else 0)
        self.indptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        self.n_units = len(counts)
        self.sample_rate = sample_rate
        self.steps = steps
        self.generator = generator
        self.batch_transform = batch_transform

    def __len__(self):
        return self.steps

    def __iter__(self):
        tensors, y = self.dataset.tensors, self.dataset.y
        device = self.order.device
        for _ in range(self.steps):
            draw = torch.rand(self.n_units, generator=self.generator, device=device)
            chosen = torch.nonzero(draw < self.sample_rate).flatten()
            starts, ends = self.indptr[chosen], self.indptr[chosen + 1]
            counts = ends - starts
            offsets = torch.cumsum(counts, 0) - counts
            rows = self.order[
                torch.arange(int(counts.sum()), device=device)
                - torch.repeat_interleave(offsets, counts)
                + torch.repeat_interleave(starts, counts)
            ]
            batch = {k: v[rows] for k, v in tensors.items()}
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, self.generator)
            batch["_unit"] = torch.repeat_interleave(
                torch.arange(len(chosen), device=device), counts
            )
            yield batch, (None if y is None else y[rows])


def per_unit_gradients(net, batch, y, shared, per_user=()):
    """Each unit's gradient of its own loss, one backward pass per unit.

    Returns the gradients of the ``shared`` parameters stacked per unit
    (``[(B, *p.shape)]``, for clipping and noise), the summed gradients of
    the ``per_user`` parameters (each row of which only its own unit's loss
    reaches), and the mean of the units' losses. Runs in training mode.
    """
    unit = batch.pop("_unit")
    counts = torch.bincount(unit) if len(unit) else unit.new_zeros(0)
    bounds = [0, *torch.cumsum(counts, 0).tolist()]
    n_units = len(counts)
    samples = [torch.zeros((n_units, *p.shape), dtype=p.dtype, device=p.device) for p in shared]
    own = [torch.zeros_like(p) for p in per_user]
    params = [*shared, *per_user]
    total = 0.0
    for b in range(n_units):
        rows = slice(bounds[b], bounds[b + 1])
        Xb = {k: v[rows] for k, v in batch.items()}
        yb = None if y is None else y[rows]
        y_pred = net.infer(Xb)
        loss = net.get_loss(y_pred, yb, X=Xb, training=True)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for sample, g in zip(samples, grads[: len(shared)]):
            if g is not None:
                sample[b] = g.to_dense() if g.is_sparse else g
        for acc, g in zip(own, grads[len(shared):]):
            if g is not None:
                acc += g.to_dense() if g.is_sparse else g
        total += float(loss.detach())
    return samples, own, total / max(n_units, 1)
