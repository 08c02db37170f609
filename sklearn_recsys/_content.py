"""Item content: :class:`ItemContent` and the validators of its arrays.

Content is data about the *items* (images, token-id texts), held in an
immutable parameter object shared by clones; the helpers at the end turn it
into the tensors the content towers of :mod:`sklearn_recsys.nn` read.
"""

import warnings

import numpy as np
import pandas as pd
import torch

from ._input import ImmutableParameter, as_id_array, check_ids

__all__ = ["ItemContent"]

# Elements checked for NaN/inf at once when validating float images.
_CHECK_BLOCK = 2**24
# Largest vocabulary of the text tower (its embedding has one row per id).
_MAX_TOKENS = 2**22


def _readonly(array):
    """A read-only view of ``array`` (the caller's array keeps its flags)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _check_item_ids(item_ids):
    ids = as_id_array(item_ids, "item_ids")
    if ids.ndim != 1:
        raise ValueError(
            f"item_ids must be a 1-D array-like of item ids, got shape {ids.shape}."
        )
    if len(ids) == 0:
        raise ValueError("item_ids is empty: ItemContent needs at least one item.")
    ids = check_ids(ids, "item_ids")
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:10].tolist()
        raise ValueError(f"item_ids contains duplicated ids: {dup}.")
    return ids


def _content_array(values, name, ids, kinds, expected, shapes):
    """``values`` as a numpy array of one of the dtype ``kinds``, one row per id.

    ``expected`` describes the dtype and ``shapes`` the accepted shapes, for
    the error messages.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.dtype.kind not in kinds:
        raise TypeError(f"{name} must hold {expected}, got dtype {values.dtype}.")
    if values.ndim not in shapes:
        raise ValueError(
            f"{name} must have shape {' or '.join(shapes.values())}, got an array "
            f"of shape {values.shape}."
        )
    if len(values) != len(ids):
        raise ValueError(
            f"{name} has {len(values)} rows but item_ids has {len(ids)} ids; row i "
            f"of {name} must belong to item_ids[i]."
        )
    if values.size == 0 and min(values.shape[1:], default=1) < 1:
        raise ValueError(f"{name} has an empty dimension: shape {values.shape}.")
    return values


def _check_images(images, ids):
    images = _content_array(
        images, "images", ids, "uif", "numeric values (uint8 or float)",
        {3: "(n_items, height, width)", 4: "(n_items, channels, height, width)"},
    )
    if images.ndim == 3:
        images = images[:, None]
    if images.dtype.kind == "f":
        per_item = int(np.prod(images.shape[1:]))
        block = max(1, _CHECK_BLOCK // per_item)
        for s in range(0, len(images), block):
            # images are used in float32: values beyond its range overflow
            with np.errstate(over="ignore"):
                part = images[s : s + block].astype(np.float32, copy=False)
            finite = np.isfinite(part).reshape(-1, per_item).all(1)
            if not finite.all():
                bad = ids[s : s + block][~finite][:10].tolist()
                raise ValueError(
                    f"images contains NaN or infinity, or values beyond float32's "
                    f"range (items {bad}); impute, rescale or drop these images."
                )
    return images


def _check_texts(texts, ids):
    texts = _content_array(
        texts, "texts", ids, "iu",
        "integer token ids (0 = padding); build a vocabulary and map tokens to "
        "integers first",
        {2: "(n_items, max_length) (token ids, padded with 0)"},
    )
    if texts.size and texts.min() < 0:
        raise ValueError("texts contains negative token ids; ids must be >= 0.")
    if texts.size and texts.max() >= _MAX_TOKENS:
        raise ValueError(
            f"texts holds token ids up to {texts.max()}, but the text tower's "
            f"vocabulary is sized by the largest id (at most {_MAX_TOKENS}): map "
            "the tokens to consecutive integers first (e.g. with "
            "sklearn.preprocessing.LabelEncoder), keeping 0 for padding."
        )
    return texts


class ItemContent(ImmutableParameter):
    """Item content (images and/or token-id texts) aligned to item ids.

    Pass it to :class:`CNNRecommender` as the ``item_content`` parameter, or
    to :meth:`CNNRecommender.register_items` after fit.

    **Why a parameter object.** The content is data about the *items*, not
    one row per *sample*: it must neither be split by cross-validation (as a
    ``fit`` argument of length ``n_samples`` could be) nor copied for every
    candidate of a grid search. ``ItemContent`` is therefore immutable: its
    arrays are read-only views (no copy of the arrays you pass; do not modify
    them afterwards), and :func:`copy.deepcopy` -- hence
    :func:`sklearn.base.clone` -- returns the same object, so every clone of
    an estimator shares one ``ItemContent`` (``clone(est).item_content is
    est.item_content``). ``GridSearchCV(n_jobs=...)`` sends it to its worker
    processes through joblib, which memory-maps arrays larger than its
    ``max_nbytes`` (1 MB by default) instead of copying them into every task.
    Equality is identity.

    Parameters
    ----------
    item_ids : array-like of shape (n_items,)
        Raw ids of the items (same id space as the item column of the
        interactions, or column indices for a user x item matrix). Unique.
    images : array-like of shape (n_items, height, width) or \
(n_items, channels, height, width), default=None
        Row ``i`` is the image of ``item_ids[i]``. Any numeric dtype (uint8
        kept as is; other types used as float32); finite. Normalised inside
        the estimator with per-channel statistics of the content seen at fit.
    texts : array-like of int of shape (n_items, max_length), default=None
        Row ``i`` holds the token ids of ``item_ids[i]``, padded with 0 (the
        padding token, at either end).

    Attributes
    ----------
    item_ids : ndarray of shape (n_items,)
    images : ndarray of shape (n_items, channels, height, width) or None
        Read-only; a 3-D input gets a channel axis of size 1 (a view).
    texts : ndarray of shape (n_items, max_length) or None
        Read-only.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import clone
    >>> from sklearn_recsys import CNNRecommender
    >>> from sklearn_recsys import ItemContent
    >>> content = ItemContent(["a", "b", "c"], images=np.zeros((3, 8, 8), np.uint8))
    >>> content
    ItemContent(n_items=3, images=(3, 1, 8, 8) uint8, texts=None)
    >>> est = CNNRecommender(item_content=content)
    >>> clone(est).item_content is content
    True
    """

    def __init__(self, item_ids, images=None, texts=None):
        ids = _check_item_ids(item_ids)
        if images is None and texts is None:
            raise ValueError("ItemContent needs images, texts or both; got neither.")
        if images is not None:
            images = _readonly(_check_images(images, ids))
        if texts is not None:
            texts = _readonly(_check_texts(texts, ids))
        object.__setattr__(self, "_item_ids", _readonly(ids))
        object.__setattr__(self, "_images", images)
        object.__setattr__(self, "_texts", texts)

    @property
    def item_ids(self):
        return self._item_ids

    @property
    def images(self):
        return self._images

    @property
    def texts(self):
        return self._texts

    @property
    def n_items(self):
        """int: Number of items."""
        return len(self._item_ids)

    def __len__(self):
        return len(self._item_ids)

    def __getstate__(self):
        return {"item_ids": self._item_ids, "images": self._images, "texts": self._texts}

    def __setstate__(self, state):
        for key in ("item_ids", "images", "texts"):
            value = state[key]
            object.__setattr__(
                self, "_" + key, None if value is None else _readonly(value)
            )

    def __repr__(self):
        def describe(a):
            return "None" if a is None else f"{a.shape} {a.dtype}"

        return (
            f"ItemContent(n_items={self.n_items}, images={describe(self._images)}, "
            f"texts={describe(self._texts)})"
        )


def _as_image_tensor(images):
    """Zero-copy (on CPU) tensor of the images: uint8 or float32."""
    if images.dtype != np.uint8 and images.dtype != np.float32:
        images = images.astype(np.float32)
    images = np.ascontiguousarray(images)  # no copy when already contiguous
    with warnings.catch_warnings():
        # The content arrays are read-only views; the module never writes them.
        warnings.simplefilter("ignore", UserWarning)
        return torch.as_tensor(images)


def _as_text_tensor(texts, n_tokens=None):
    t = torch.as_tensor(np.array(texts, dtype=np.int64))  # small: copied
    if n_tokens is not None:
        t = torch.where(t < n_tokens, t, 0)  # unknown tokens -> padding
    return t


def _pad_texts(a, b):
    length = max(a.shape[1], b.shape[1])
    return [torch.nn.functional.pad(t, (0, length - t.shape[1])) for t in (a, b)]
