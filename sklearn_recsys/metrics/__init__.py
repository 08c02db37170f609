"""Evaluation metrics for recommenders.

Top-k ranking metrics (:func:`ndcg_at_k`, :func:`recall_at_k`,
:func:`precision_at_k`, :func:`hit_rate_at_k`, :func:`mrr_at_k`,
:func:`map_at_k`) compare a ``(n_users, n_items)`` score matrix with a
``(n_users, n_items)`` relevance matrix; they are vectorised with PyTorch and
run on any torch device.  :func:`catalog_coverage` and :func:`novelty` are
beyond-accuracy metrics of recommendation lists.
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

from .._ranking import (
    catalog_coverage,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)
from ._scorer import make_ranking_scorer

__all__ = [
    "catalog_coverage",
    "hit_rate_at_k",
    "make_ranking_scorer",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
]
