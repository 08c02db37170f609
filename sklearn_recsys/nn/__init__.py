"""Pure :mod:`torch.nn` modules behind the estimators.

They know nothing about skorch, ids or input conventions; the estimators
build them with the sizes they learn at fit.
"""

from ._mf import BiasedMF, NeuMF

__all__ = ["BiasedMF", "NeuMF"]
