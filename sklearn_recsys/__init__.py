"""Deep-learning recommenders as scikit-learn estimators.

Every recommender is a scikit-learn estimator trained with PyTorch (through
skorch for the neural ones) that accepts an interaction table (a pandas
DataFrame, one row per interaction) or a user x item matrix (scipy sparse or
dense, one row per user), and shares one ``recommend`` API.
"""

from ._artifact import load, save
from ._attributes import Attributes
from ._baselines import EASE, ItemKNN, Popularity
from ._content import ItemContent
from ._factorization import CNNRecommender, MatrixFactorization
from ._privacy import DifferentialPrivacy
from ._sequence import AttentionRecommender, LSTMRecommender

__version__ = "0.1.0.dev0"

__all__ = [
    "EASE",
    "AttentionRecommender",
    "Attributes",
    "CNNRecommender",
    "DifferentialPrivacy",
    "ItemContent",
    "ItemKNN",
    "LSTMRecommender",
    "MatrixFactorization",
    "Popularity",
    "__version__",
    "load",
    "save",
]
