"""Pure :mod:`torch.nn` modules behind the estimators.

They know nothing about skorch, ids or input conventions; the estimators
build them with the sizes they learn at fit. Every module follows one scoring
protocol (``user_representation``, ``score_all``, ``score_pairs``,
``forward``); see :mod:`sklearn_recsys.nn._mf`. :class:`SparseDenseAdam`
trains modules built with sparse embedding gradients.
"""

from ._baselines import EASEScorer, ItemKNNScorer, PopularityScorer
from ._cnn import HybridCNN, ImageCNN, TextCNN
from ._mf import BiasedMF, NeuMF
from ._optim import SparseDenseAdam
from ._sequence import LSTMEncoder, SelfAttentionEncoder

__all__ = [
    "BiasedMF",
    "EASEScorer",
    "HybridCNN",
    "ImageCNN",
    "ItemKNNScorer",
    "LSTMEncoder",
    "NeuMF",
    "PopularityScorer",
    "SelfAttentionEncoder",
    "SparseDenseAdam",
    "TextCNN",
]
