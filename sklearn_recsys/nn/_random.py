"""Randomness owned by a fit: the generator that modules draw from.

The estimators never seed torch's process-global generator. A fit owns a
:class:`torch.Generator` and makes it *current* for its thread with
:func:`random_context`; the modules of this package draw their training-time
randomness (dropout masks) from the current generator, and initialise their
parameters from the generator passed to ``reset_parameters``. Two fits with
the same seed therefore give the same model even when they run concurrently
in threads (joblib's threading backend, a thread pool). Outside a fit -- a
module used on its own -- the global generator is used, as in PyTorch.
"""

import math
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

__all__ = ["Dropout", "current_generator", "init_parameters", "random_context", "take"]

_GENERATOR = ContextVar("sklearn_recsys_generator", default=None)


@contextmanager
def random_context(generator):
    """Make ``generator`` the current one of this thread for the block."""
    token = _GENERATOR.set(generator)
    try:
        yield generator
    finally:
        _GENERATOR.reset(token)


def current_generator(device):
    """The current generator if it lives on ``device``'s type, else None."""
    generator = _GENERATOR.get()
    if generator is None or generator.device.type != torch.device(device).type:
        return None
    return generator


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` drawing its masks from the current generator."""

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        keep = torch.rand(x.shape, generator=current_generator(x.device), device=x.device)
        return x * (keep >= self.p).to(x.dtype) / (1 - self.p)


def init_parameters(module, generator=None):
    """Re-initialise the standard layers of ``module`` from ``generator``.

    The same distributions as PyTorch's defaults (``nn.Linear``,
    ``nn.Conv1d``/``nn.Conv2d``, ``nn.LSTM``, ``nn.Embedding``, normalisation
    layers), drawn in a fixed order from ``generator`` (the global generator
    when None). Modules of this package then apply their own initialisation
    on top (see their ``reset_parameters``).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                fan_in = layer.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        elif isinstance(layer, nn.LSTM):
            bound = 1 / math.sqrt(layer.hidden_size)
            for weight in layer.parameters():
                nn.init.uniform_(weight, -bound, bound, generator=generator)
        elif isinstance(layer, nn.Embedding):
            nn.init.normal_(layer.weight, generator=generator)
            if layer.padding_idx is not None:
                with torch.no_grad():
                    layer.weight[layer.padding_idx].zero_()
        elif isinstance(layer, (nn.LayerNorm, nn.BatchNorm1d)):
            layer.reset_parameters()


def take(tensor, index):
    """``tensor[index]`` along the first dimension, with a deterministic backward.

    The backward of advanced indexing accumulates repeated indices in a
    thread-dependent order on the CPU (results change from run to run);
    :func:`torch.index_select`'s backward does not.
    """
    flat = tensor.index_select(0, index.reshape(-1))
    return flat.view(*index.shape, *tensor.shape[1:])
