"""Dataset loaders and synthetic data generators for recommender systems."""

from ._base import clear_data_home, get_data_home
from ._movielens import fetch_movielens
from ._synthetic import make_interactions

__all__ = [
    "clear_data_home",
    "fetch_movielens",
    "get_data_home",
    "make_interactions",
]
