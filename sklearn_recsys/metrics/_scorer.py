"""Ranking scorers that plug into ``GridSearchCV(scoring=...)``.

See :func:`make_ranking_scorer` for the evaluation protocol; the scoring
itself is ``sklearn_recsys._evaluation.ranking_score``.
"""

# Authors: The sklearn_recsys developers
# SPDX-License-Identifier: BSD-3-Clause

import numbers

from sklearn.utils._metadata_requests import MetadataRequest, _MetadataRequester
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.metadata_routing import _routing_enabled

from .._evaluation import ranking_score
from .._ranking import _METRICS

__all__ = ["make_ranking_scorer"]


class _RankingScorer(_MetadataRequester):
    """Callable ``scorer(estimator, X, y=None, sample_weight=None) -> float``.

    Greater is better. With scikit-learn's metadata routing enabled,
    ``set_score_request(sample_weight=True)`` asks a search or
    ``cross_validate`` to pass the test rows' sample weights to it.
    """

    def __init__(self, **kwargs):
        self._kwargs = kwargs

    def __call__(self, estimator, X, y=None, sample_weight=None):
        return ranking_score(estimator, X, y, sample_weight=sample_weight, **self._kwargs)

    def set_score_request(self, *, sample_weight=None):
        """Request ``sample_weight`` from the routing caller (metadata routing).

        Parameters
        ----------
        sample_weight : bool, str or None, default=None
            ``True`` to request it, ``False`` not to, a string to read it
            under another name, ``None`` to raise if it is passed.

        Returns
        -------
        self : object
            The scorer.
        """
        if not _routing_enabled():
            raise RuntimeError(
                "set_score_request is only available when metadata routing is "
                "enabled: sklearn.set_config(enable_metadata_routing=True)."
            )
        self._metadata_request = MetadataRequest(owner=self)
        self._metadata_request.score.add_request(param="sample_weight", alias=sample_weight)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"make_ranking_scorer({args})"


_SCORER_CONSTRAINTS = {
    "metric": [StrOptions(set(_METRICS))],
    "k": [Interval(numbers.Integral, 1, None, closed="left")],
    "exclude_seen": ["boolean"],
    "holdout_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
    "relevance_threshold": [numbers.Real, None],
    "random_state": ["random_state"],
}


@validate_params(_SCORER_CONSTRAINTS, prefer_skip_nested_validation=True)
def make_ranking_scorer(
    metric="ndcg", k=10, *, exclude_seen=True, holdout_fraction=0.2,
    relevance_threshold=None, random_state=0,
):
    """Make a scorer that ranks items with a fitted recommender.

    ``scorer(estimator, X, y=None) -> float`` ranks items with the estimator's
    ``recommend`` and returns the mean per-user metric of the top-k lists on
    the test fold (greater is better; users without a relevant item are
    skipped), e.g. as ``GridSearchCV(scoring=scorer)`` or in ``cross_validate``.

    * **Interaction table** test fold: a user's relevant items are its test
      rows (those with ``y >= relevance_threshold`` when a threshold is
      given); items it interacted with at fit are excluded from the ranking
      and from the relevant set when ``exclude_seen=True``.  Users unseen at
      fit follow the estimator's ``handle_unknown`` policy.
    * **User x item matrix** test fold (held-out users, "strong generalization",
      e.g. from :class:`~sklearn_recsys.model_selection.UserKFold`): each row's
      stored entries are split at random (``random_state``);
      ``holdout_fraction`` of them are the relevant items, the rest are folded
      in as the user's history.  Rows with fewer than two entries are skipped.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate", "mrr", "map"}, default="ndcg"
        Ranking metric, as in :mod:`sklearn_recsys.metrics`.
    k : int, default=10
        Length of the recommendation lists.
    exclude_seen : bool, default=True
        Rank only items the user has not interacted with at fit / in the
        folded-in history.
    holdout_fraction : float, default=0.2
        Matrix test folds: fraction of each row's entries held out.
    relevance_threshold : float, default=None
        When given, only test interactions whose target (``y`` for a table,
        the stored value for a matrix) is at least this value are relevant.
    random_state : int, RandomState instance or None, default=0
        Seed of the row split for matrix test folds.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_recsys import MatrixFactorization
    >>> from sklearn_recsys.metrics import make_ranking_scorer
    >>> train = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 20, 10, 30, 20]})
    >>> test = pd.DataFrame({"user": [1, 3], "item": [30, 10]})
    >>> mf = MatrixFactorization(loss="bpr", n_components=2, max_iter=3,
    ...                          random_state=0).fit(train)
    >>> scorer = make_ranking_scorer("hit_rate", k=2)
    >>> scorer(mf, test)
    1.0
    """
    return _RankingScorer(metric=metric, k=k, exclude_seen=exclude_seen,
                          holdout_fraction=holdout_fraction,
                          relevance_threshold=relevance_threshold, random_state=random_state)
