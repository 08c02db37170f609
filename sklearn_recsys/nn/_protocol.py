"""The scoring protocol every module of :mod:`sklearn_recsys.nn` follows.

An estimator never looks inside its network: it scores through the methods
below, whatever the model. Shapes use ``B`` for a block of users, ``m`` for
a number of candidate items and ``R`` for the width of a user
representation.

* ``user_representation(users) -> (B, R)``: everything the model knows about
  users (factors and bias, a packed history, an encoded sequence...), given
  their int64 indices -- or, for the sequence encoders, their left-padded
  item sequences ``(B, L)``. Index ``n_users`` (the empty sequence) is the
  fallback for a user unknown at fit. Fold-in of new users produces rows of
  the same kind.
* ``score_all(user_repr, items=None) -> (B, m)``: scores of every item (or of
  the int64 ``items``) for each row of ``user_repr``.
* ``score_pairs(user_repr, items) -> (B,)``: the score of one item per row.
* ``item_embeddings() -> (n_items, d)``: item vectors, for ``similar_items``
  (optional).
* ``scoring()``: a context manager around every scoring call of an estimator;
  it puts the module in evaluation mode and lets a module keep work it can
  share between calls (e.g. :class:`~sklearn_recsys.nn.HybridCNN` computes
  every item vector once).
* ``score_cost`` (class attribute): floats kept per (user, candidate) pair by
  ``score_all``; estimators divide their scoring blocks by it to bound memory.
* ``get_config()``: the constructor arguments (recorded when the module is
  built; tensors among them are data such as item content), so that
  ``type(module)(**module.get_config())`` followed by ``load_state_dict``
  rebuilds a fitted module (the artifacts of :func:`sklearn_recsys.save`).
* ``reset_parameters(generator=None)``: initialise the parameters from the
  fit's own :class:`torch.Generator`; training-time randomness (dropout)
  draws from the generator made current by
  :func:`~sklearn_recsys.nn._random.random_context`, never from torch's
  global one (see :mod:`sklearn_recsys.nn._random`).

Training goes through ``forward``, whose signature and output are agreed
between a module and its estimator's criterion (see the training losses).
"""

import functools
import inspect
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ._random import init_parameters

__all__ = ["Scorer", "LinearItemScorer"]

# Marks a constructor argument that ``get_config`` cannot give back.
_NOT_RECORDED = object()


def _recorded_arguments(signature, module, args, kwargs):
    """Keyword arguments rebuilding ``module``; data arguments are not kept.

    Tensors and arrays are data (their memory would be held twice, and stay
    on the CPU when the module moves): they, positional-only and ``*args``
    arguments are marked :data:`_NOT_RECORDED`; ``**kwargs`` are merged in.
    """
    bound = signature.bind(module, *args, **kwargs)
    bound.apply_defaults()
    config = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if i == 0:  # self
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        elif kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            config[name] = _NOT_RECORDED
        else:
            config[name] = value
    for name, value in config.items():
        if isinstance(value, (torch.Tensor, np.ndarray)):
            config[name] = _NOT_RECORDED
    return config


class Scorer(nn.Module, metaclass=ABCMeta):
    """Base class of the scoring modules: the protocol above, in code."""

    #: Floats ``score_all`` keeps per (user, candidate) pair.
    score_cost = 1

    def __init_subclass__(cls, **kwargs):
        # Record the arguments of the outermost constructor a module is built
        # with (a subclass's ``__init__`` calling its base's records once).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            init(self, *args, **kw)
            if type(self).__init__ is recording_init:
                self.__dict__["_init_config"] = _recorded_arguments(signature, self, args, kw)

        cls.__init__ = recording_init

    def __init__(self):
        super().__init__()

    def get_config(self):
        """The constructor arguments this module was built with.

        ``type(module)(**module.get_config())`` builds the same network (its
        weights then come from ``load_state_dict``). Arguments that are data
        (tensors, arrays) are not recorded -- a module taking them overrides
        this method with its current data (see
        :meth:`~sklearn_recsys.nn.HybridCNN.get_config`) -- and neither are
        positional-only or ``*args`` arguments.

        Returns
        -------
        config : dict

        Raises
        ------
        ValueError
            If the module's constructor arguments were not (all) recorded.
        """
        config = self.__dict__.get("_init_config")
        if config is None:
            raise ValueError(
                f"{type(self).__name__} has no record of its constructor arguments "
                "(it was built before they were recorded, e.g. unpickled from an "
                "older version): refit the model to save it."
            )
        missing = sorted(k for k, v in config.items() if v is _NOT_RECORDED)
        if missing:
            raise ValueError(
                f"{type(self).__name__} was built with arguments that are not recorded "
                f"{missing} (data, or positional-only / *args arguments); override "
                "get_config to give them."
            )
        return dict(config)

    @abstractmethod
    def user_representation(self, users):
        """Representations ``(B, R)`` of the users of index ``users`` ``(B,)``."""

    @abstractmethod
    def score_all(self, user_repr, items=None):
        """Scores ``(B, m)`` of all items, or of the int64 ``items`` ``(m,)``."""

    @abstractmethod
    def score_pairs(self, user_repr, items):
        """Scores ``(B,)`` of one item ``items[b]`` per row of ``user_repr``."""

    def item_embeddings(self):
        """Item vectors ``(n_items, d)`` compared by ``similar_items``."""
        raise NotImplementedError(f"{type(self).__name__} has no item embeddings.")

    def reset_parameters(self, generator=None):
        """(Re-)initialise the parameters, drawing from ``generator``.

        The estimators call it with the fit's own generator right after
        building the module. The default gives every standard layer
        PyTorch's default initialisation
        (:func:`~sklearn_recsys.nn._random.init_parameters`); modules with
        their own initialisation override it.
        """
        init_parameters(self, generator)

    @contextmanager
    def scoring(self):
        """Evaluation mode and no gradients for the duration of a scoring call.

        The module is left in evaluation mode (training puts it back in
        training mode itself), so concurrent scoring calls never switch a
        module another thread is scoring with. Subclasses may keep work
        shared by the calls inside (see :class:`~sklearn_recsys.nn.HybridCNN`).
        """
        self.eval()
        with torch.no_grad():
            yield self


class LinearItemScorer(Scorer):
    """A scorer linear in the user representation: ``u @ Q_aug.T + offset``.

    Subclasses implement :meth:`item_linear_terms`; scoring, and the exact
    ridge fold-in of the estimators, follow from it. Biased MF and the hybrid
    CNN are of this kind: ``Q_aug`` holds the item vectors with a column of
    ones (it multiplies the user bias, the last entry of a representation)
    and ``offset`` the item bias plus the global bias.
    """

    @abstractmethod
    def item_linear_terms(self, items=None):
        """``(Q_aug, offset)`` of all items, or of the int64 ``items``.

        Returns
        -------
        q_aug : torch.Tensor of shape (..., R)
        offset : torch.Tensor of shape (...)
        """

    def score_pairs(self, user_repr, items):
        q_aug, offset = self.item_linear_terms(items)
        return (user_repr * q_aug).sum(-1) + offset

    def score_all(self, user_repr, items=None):
        q_aug, offset = self.item_linear_terms(items)
        return torch.addmm(offset[None, :], user_repr, q_aug.T)

    def item_embeddings(self):
        q_aug, _ = self.item_linear_terms()
        return q_aug[:, :-1]


def augmented(vectors, bias, global_bias):
    """``(Q_aug, offset)``: ``vectors`` with a column of ones, ``bias + global_bias``."""
    ones = torch.ones(vectors.shape[:-1] + (1,), dtype=vectors.dtype, device=vectors.device)
    return torch.cat([vectors, ones], dim=-1), bias + global_bias
