"""Cross-validation splitters for recommender data.

All splitters follow scikit-learn's splitter protocol and can be passed as
``cv=`` to :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate`, etc.

Interaction tables (one row per interaction):

* :class:`InteractionKFold` -- K-fold over interactions, stratified by user.
* :class:`UserHoldout` -- random per-user holdout (repeatable).
* :class:`LeaveLastOut` -- most recent interactions of every user.
* :class:`TemporalSplit` -- global split at a cut-off time.
* :func:`train_test_split` -- one-shot split with any of the strategies above.

Interaction tables and user x item matrices:

* :class:`UserKFold` -- K-fold over users (strong generalization).
"""

from ._split import (
    InteractionKFold,
    LeaveLastOut,
    TemporalSplit,
    UserHoldout,
    UserKFold,
    train_test_split,
)

__all__ = [
    "InteractionKFold",
    "LeaveLastOut",
    "TemporalSplit",
    "UserHoldout",
    "UserKFold",
    "train_test_split",
]
