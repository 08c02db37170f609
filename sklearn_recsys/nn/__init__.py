"""Pure :mod:`torch.nn` modules behind the estimators.

They know nothing about skorch, ids or input conventions; the estimators
build them with the sizes they learn at fit. Every module is a
:class:`Scorer`: it follows one scoring protocol (``user_representation``,
``score_all``, ``score_pairs``, ``scoring``), documented once in
:mod:`sklearn_recsys.nn._protocol`. :class:`SparseDenseAdam` trains modules
built with sparse embedding gradients.
"""

from ._attributes import AttributeEmbedding
from ._baselines import EASEScorer, ItemKNNScorer, PopularityScorer
from ._cnn import HybridCNN, ImageCNN, TextCNN
from ._mf import BiasedMF, NeuMF
from ._optim import SparseDenseAdam
from ._protocol import LinearItemScorer, Scorer
from ._sequence import LSTMEncoder, SelfAttentionEncoder

__all__ = [
    "AttributeEmbedding",
    "BiasedMF",
    "EASEScorer",
    "HybridCNN",
    "ImageCNN",
    "ItemKNNScorer",
    "LSTMEncoder",
    "LinearItemScorer",
    "NeuMF",
    "PopularityScorer",
    "Scorer",
    "SelfAttentionEncoder",
    "SparseDenseAdam",
    "TextCNN",
]
