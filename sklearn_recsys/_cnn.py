"""Content-based hybrid recommender: item images and texts through CNNs.

:class:`ItemContent` holds the item content (images and/or token-id
sequences) aligned to item ids; :class:`CNNRecommender` scores items from
that content plus collaborative item-id embeddings, so that items without any
interaction ("cold" items) can be ranked from their content alone.
"""

import contextlib
import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseRecommender
from ._input import IdIndex, check_k, interactions_to_csr
from ._fold_in import fold_in_gradient, fold_in_ridge
from ._neural import NeuralRecommenderMixin, PairRecommenderMixin
from ._training import NegativeSampler
from .nn._cnn import HybridCNN

__all__ = ["CNNRecommender", "ItemContent"]

# Elements checked for NaN/inf at once when validating float images.
_CHECK_BLOCK = 2**24


def _readonly(array):
    """A read-only view of ``array`` (the caller's array keeps its flags)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _check_item_ids(item_ids):
    ids = np.asarray(item_ids)
    if ids.ndim != 1:
        raise ValueError(
            f"item_ids must be a 1-D array-like of item ids, got shape {ids.shape}."
        )
    if len(ids) == 0:
        raise ValueError("item_ids is empty: ItemContent needs at least one item.")
    if pd.isna(ids).any():
        raise ValueError("item_ids contains missing ids (NaN/None).")
    if ids.dtype.kind == "f" and np.any(ids != np.round(ids)):
        raise ValueError(
            "item_ids holds non-integer float ids; ids must be integers, strings "
            "or other exact hashable values."
        )
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:10].tolist()
        raise ValueError(f"item_ids contains duplicated ids: {dup}.")
    return ids


def _check_images(images, ids):
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise TypeError(
            "images must be a numeric array (uint8 or float), got dtype "
            f"{images.dtype}."
        )
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim != 4:
        raise ValueError(
            "images must have shape (n_items, height, width) or (n_items, "
            f"channels, height, width), got an array of shape {images.shape}."
        )
    if len(images) != len(ids):
        raise ValueError(
            f"images has {len(images)} rows but item_ids has {len(ids)} ids; "
            "row i of images must be the image of item_ids[i]."
        )
    if min(images.shape[1:]) < 1:
        raise ValueError(f"images has an empty dimension: shape {images.shape}.")
    if images.dtype.kind == "f":
        per_item = int(np.prod(images.shape[1:]))
        block = max(1, _CHECK_BLOCK // per_item)
        for s in range(0, len(images), block):
            finite = np.isfinite(images[s : s + block]).reshape(-1, per_item).all(1)
            if not finite.all():
                bad = ids[s : s + block][~finite][:10].tolist()
                raise ValueError(
                    f"images contains NaN or infinity (items {bad}); impute or "
                    "drop these images."
                )
    return images


def _check_texts(texts, ids):
    if isinstance(texts, torch.Tensor):
        texts = texts.detach().cpu().numpy()
    texts = np.asarray(texts)
    if texts.dtype.kind not in "iu":
        raise TypeError(
            "texts must hold integer token ids (0 = padding), got dtype "
            f"{texts.dtype}; build a vocabulary and map tokens to integers first."
        )
    if texts.ndim != 2:
        raise ValueError(
            "texts must have shape (n_items, max_length) (token ids, padded "
            f"with 0), got an array of shape {texts.shape}."
        )
    if len(texts) != len(ids):
        raise ValueError(
            f"texts has {len(texts)} rows but item_ids has {len(ids)} ids; row i "
            "of texts must be the token ids of item_ids[i]."
        )
    if texts.shape[1] < 1:
        raise ValueError("texts has no column: pass sequences of length >= 1.")
    if texts.size and texts.min() < 0:
        raise ValueError("texts contains negative token ids; ids must be >= 0.")
    return texts


class ItemContent:
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

    def __setattr__(self, name, value):
        raise AttributeError("ItemContent is immutable; build a new one instead.")

    def __delattr__(self, name):
        raise AttributeError("ItemContent is immutable; build a new one instead.")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

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


class _CandidateNegativeSampler(NegativeSampler):
    """Uniform negatives drawn among ``candidates`` (items with training data)."""

    def __init__(self, positive_keys, n_items, n_negatives, candidates, n_rounds=3):
        super().__init__(positive_keys, n_items, n_negatives, n_rounds)
        self.candidates = candidates

    def _draw(self, shape, generator, device):
        pos = torch.randint(len(self.candidates), shape, generator=generator, device=device)
        return self.candidates.to(device)[pos]

    def sample(self, users, generator):
        negs = self._draw((len(users), self.n_negatives), generator, users.device)
        for _ in range(self.n_rounds):
            hit = self._is_positive(users, negs)
            n_hit = int(hit.sum())
            if n_hit == 0:
                break
            negs[hit] = self._draw((n_hit,), generator, users.device)
        return negs


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


def _concat_ids(a, b):
    if a.dtype != b.dtype:
        a, b = a.astype(object), b.astype(object)
    return np.concatenate([a, b])


class CNNRecommender(PairRecommenderMixin, NeuralRecommenderMixin, BaseRecommender):
    """Hybrid recommender scoring items from their images/texts through CNNs.

    A (user, item) pair is scored ``p_u . v_i + b_u + c_i + mu``, where the
    item vector ``v_i`` (and bias ``c_i``) is the projection of the item's
    content features -- a convolutional tower over its image
    (conv ``kernel_size`` + ReLU + 2x2 max-pooling per entry of
    ``conv_channels``, then a dense layer of ``dense_size``) and a Kim-style
    text CNN over its token ids -- plus an item-id embedding for items seen
    in training (zero for the others). Items that have content but no
    interaction ("cold" items) are therefore scored from their content
    alone: they are part of the fitted item space and can be recommended,
    e.g. ``recommend(users, items=cold_ids)``. Trained with Adam through
    skorch on mini-batches of device tensors; each batch runs the towers once
    on its unique (positive and negative) items, and scoring computes every
    item vector once per call before one matrix product per user block.

    **Content.** ``item_content`` is an :class:`ItemContent` (see there why
    it is an immutable parameter object shared by clones). The fitted item
    space is the items of the interactions plus the items of
    ``item_content``. With a user x item matrix, item ids are column
    indices: content ids must be columns of ``X`` (cold items are empty
    columns). Items of the interactions without content are scored by their
    id embedding alone. Content can be added or replaced after fit with
    :meth:`register_items`; new ids then become cold items (interaction
    tables only). Without ``item_content`` the model is an id-only biased
    matrix factorization.

    Parameters
    ----------
    item_content : ItemContent, default=None
        Images and/or token-id texts of the items.
    n_components : int, default=32
        Dimension of the user factors and item vectors.
    loss : {"bce", "mse", "bpr"}, default="bce"
        ``"bce"``: clicks/implicit feedback, logistic loss with
        ``n_negatives`` sampled negatives per positive (``predict`` returns
        probabilities). ``"mse"``: explicit ratings. ``"bpr"``: pairwise
        ranking against sampled negatives.
    conv_channels : tuple of int, default=(32, 64, 128)
        Output channels of the image tower's convolution blocks.
    kernel_size : int, default=3
        Side of the square convolution kernels.
    dense_size : int, default=128
        Width of the image tower's dense layer.
    embedding_dim : int, default=32
        Dimension of the token embeddings of the text tower.
    text_filters : int, default=64
        Filters per kernel size of the text tower.
    text_kernel_sizes : tuple of int, default=(2, 3, 4)
        Widths (in tokens) of the text convolutions.
    use_item_ids : bool, default=True
        Add item-id embeddings to the content vectors of items seen in
        training (hybrid). False: a pure content model.
    id_dropout : float, default=0.0
        During training, probability of dropping an item's id embedding for
        a batch (items with content only), so that the content path learns to
        score items alone as it must for cold items (DropoutNet).
    n_negatives : int, default=4
        Negatives sampled per positive for ``"bce"``/``"bpr"``, uniformly among
        the items that have training interactions and that the user did not
        interact with (content-only items have no feedback yet and are never
        used as negatives).
    alpha : float, default=1e-4
        L2 penalty on the user factors and the item-id embeddings a batch
        touches (mean squared norm per interaction).
    max_iter : int, default=20
        Number of epochs.
    batch_size : int, default=1024
        Interactions per mini-batch.
    learning_rate_init : float, default=5e-3
        Adam's learning rate.
    init_std : float, default=0.1
        Standard deviation of the embeddings' normal initialisation.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of each user's interactions and stop
        when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the best epoch's weights are kept.
    validation_fraction : float, default=0.1
        Fraction of each user's interactions used for validation.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the validation loss.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (same users
        and items required; the content tensors are refreshed from
        ``item_content``).
    handle_unknown : {"fallback", "error"}, default="fallback"
        Ids unknown to the model (users not seen at fit; items neither in the
        interactions nor in the content): ``"fallback"`` scores them with
        zero factors (user bias plus global bias for an unknown item);
        ``"error"`` raises a ValueError naming them.
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table.
    device : str, default="cpu"
        Torch device to train and score on: ``"cpu"``, ``"cuda"``, ... or
        ``"auto"``. The content tensors are moved there for the whole fit.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch ``NeuralNet``.
    verbose : int, default=0
        0: silent. 1 or more: skorch's per-epoch log and progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, negative sampling and id dropout.
        Two fits with the same integer seed give the same model on CPU.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.module_`` is a
        :class:`sklearn_recsys.nn.HybridCNN` holding the content tensors
        as buffers.
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order.
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (interaction and content items, then
        items added by :meth:`register_items`).
    cold_item_ids_ : ndarray of shape (n_cold_items,)
        Items of the id space without training interactions.
    user_embeddings_ : ndarray of shape (n_users, n_components)
    item_embeddings_ : ndarray of shape (n_items, n_components)
        Item vectors ``v_i`` (content projection plus id embedding).
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when ``early_stopping=True``.
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix.

    Notes
    -----
    Cost: every training batch encodes each of its unique positive and
    negative items once, so an epoch costs about
    ``n_batches * min(n_items, batch_size * (1 + n_negatives))`` tower
    passes; larger batches (with a larger learning rate) amortise the towers.
    Memory: the content tensors are module buffers (no copy on CPU for
    uint8/float32 C-contiguous arrays). A pickled model stores the content
    with its module (skorch pickles ``module`` and ``module_`` separately,
    so twice) besides the ``item_content`` parameter.

    See Also
    --------
    MatrixFactorization : The id-only model (cannot score cold items).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_recsys import CNNRecommender
    >>> from sklearn_recsys import ItemContent
    >>> rng = np.random.RandomState(0)
    >>> content = ItemContent(["a", "b", "c", "new"],
    ...                       images=rng.randint(0, 256, (4, 8, 8)).astype(np.uint8))
    >>> X = pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "b", "c"]})
    >>> est = CNNRecommender(item_content=content, conv_channels=(4, 8),
    ...                      dense_size=8, n_components=4, max_iter=2,
    ...                      random_state=0).fit(X)
    >>> est.cold_item_ids_
    array(['new'], dtype=object)
    >>> item_ids, scores = est.recommend([1, 2], k=1, items=["c", "new"])
    >>> item_ids.shape, scores.shape
    ((2, 1), (2, 1))
    """

    _parameter_constraints = {
        **BaseRecommender._parameter_constraints,
        **NeuralRecommenderMixin._training_constraints,
        "item_content": [ItemContent, None],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "loss": [StrOptions({"mse", "bce", "bpr"})],
        "conv_channels": [tuple, list],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "dense_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "text_filters": [Interval(numbers.Integral, 1, None, closed="left")],
        "text_kernel_sizes": [tuple, list],
        "use_item_ids": ["boolean"],
        "id_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "n_negatives": [Interval(numbers.Integral, 1, None, closed="left")],
        "init_std": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        item_content=None,
        n_components=32,
        loss="bce",
        conv_channels=(32, 64, 128),
        kernel_size=3,
        dense_size=128,
        embedding_dim=32,
        text_filters=64,
        text_kernel_sizes=(2, 3, 4),
        use_item_ids=True,
        id_dropout=0.0,
        n_negatives=4,
        alpha=1e-4,
        max_iter=20,
        batch_size=1024,
        learning_rate_init=5e-3,
        init_std=0.1,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        warm_start=False,
        handle_unknown="fallback",
        user_col="user",
        item_col="item",
        device="cpu",
        callbacks=None,
        verbose=0,
        random_state=None,
    ):
        self.item_content = item_content
        self.n_components = n_components
        self.loss = loss
        self.conv_channels = conv_channels
        self.kernel_size = kernel_size
        self.dense_size = dense_size
        self.embedding_dim = embedding_dim
        self.text_filters = text_filters
        self.text_kernel_sizes = text_kernel_sizes
        self.use_item_ids = use_item_ids
        self.id_dropout = id_dropout
        self.n_negatives = n_negatives
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.init_std = init_std
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state

    # -- validation ------------------------------------------------------------

    def _check_params(self):
        for name in ("conv_channels", "text_kernel_sizes"):
            sizes = getattr(self, name)
            if len(sizes) == 0 or any(
                isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
                for h in sizes
            ):
                raise ValueError(
                    f"{name} must be a non-empty sequence of positive integers, "
                    f"got {sizes!r}."
                )
        if not self.use_item_ids and self.item_content is None:
            raise ValueError(
                "use_item_ids=False makes a pure content model, which needs "
                "item_content; pass an ItemContent or set use_item_ids=True."
            )

    def _validate_fit_input(self, X, y):
        """Record the id spaces; the item space also covers content items."""
        data = super()._validate_fit_input(X, y)
        content = self.item_content
        if content is None:
            return data
        pos = self._item_index.transform(content.item_ids)
        missing = pos < 0
        if not missing.any():
            return data
        if self._convention == "matrix":
            bad = content.item_ids[missing][:10].tolist()
            raise ValueError(
                "With a user x item matrix, item ids are column indices, but "
                f"item_content has ids that are not columns of X: {bad}. Add "
                "(empty) columns for cold items, or pass an interaction table."
            )
        old = self._item_index
        self._item_index, _ = IdIndex.from_values(
            _concat_ids(old.ids, content.item_ids[missing])
        )
        data.items = self._item_index.transform(old.ids[data.items])
        self._seen = interactions_to_csr(
            data.users, data.items, None, (len(self._user_index), len(self._item_index))
        )
        self._seen.data[:] = 1.0
        return data

    # -- content -----------------------------------------------------------------

    def _content_tensors(self, content, n_tokens=None):
        """``content_index`` over the item space, images and texts tensors."""
        index = np.full(len(self._item_index), -1, dtype=np.int64)
        if content is None:
            return torch.as_tensor(index), None, None
        pos = self._item_index.transform(content.item_ids)
        index[pos] = np.arange(content.n_items)
        images = None if content.images is None else _as_image_tensor(content.images)
        texts = None if content.texts is None else _as_text_tensor(content.texts, n_tokens)
        return torch.as_tensor(index), images, texts

    def _check_same_modalities(self, module, content, where):
        has_img, has_txt = content.images is not None, content.texts is not None
        if has_img != (module.image_tower is not None) or has_txt != (
            module.text_tower is not None
        ):
            towers = (("images", module.image_tower), ("texts", module.text_tower))
            fitted = [name for name, tower in towers if tower is not None]
            raise ValueError(
                f"{where} needs content with the modalities of the fitted model "
                f"({' and '.join(fitted) or 'none'}); got images="
                f"{'yes' if has_img else 'None'}, texts={'yes' if has_txt else 'None'}."
            )
        if has_img and tuple(content.images.shape[1:]) != tuple(module.images.shape[1:]):
            raise ValueError(
                f"{where} needs images of shape (channels, height, width) = "
                f"{tuple(module.images.shape[1:])} like at fit, got "
                f"{tuple(content.images.shape[1:])}."
            )

    # -- fitting -----------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the hybrid model.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Interaction table (one row per interaction) or user x item matrix
            (stored entries = interactions, values = targets).
        y : array-like of shape (n_interactions,), default=None
            Targets of an interaction table (click labels in [0, 1] for
            ``"bce"``, ratings for ``"mse"``, weights for ``"bpr"``); all 1
            when None for the implicit losses. Ignored for a matrix.

        Returns
        -------
        self : CNNRecommender
            The fitted estimator.
        """
        self._check_params()
        previous = self._previous_ids()
        data = self._validate_fit_input(X, y)
        values = self._check_targets(data.values)
        self._check_same_ids(previous)
        seed, device = self._seed_and_device()
        n_items = len(self._item_index)
        dataset = self._pair_dataset(data, values, device)
        users, items = dataset.tensors["users"], dataset.tensors["items"]
        values = dataset.y.cpu().numpy()
        sampler = None
        trained_items = np.unique(data.items)
        if self.loss != "mse":
            keys = torch.unique(users * n_items + items)  # sorted
            if len(trained_items) == n_items:
                sampler = NegativeSampler(keys, n_items, self.n_negatives)
            else:
                sampler = _CandidateNegativeSampler(
                    keys, n_items, self.n_negatives,
                    torch.as_tensor(trained_items, device=device),
                )
        if previous is not None:
            module = self._module()
            if self.item_content is not None:
                self._check_same_modalities(module, self.item_content, "warm_start")
            n_tokens = (
                None if module.text_tower is None
                else module.text_tower.embedding.num_embeddings
            )
            index, images, texts = self._content_tensors(self.item_content, n_tokens)
            module.set_content(*(
                None if t is None else t.to(device) for t in (index, images, texts)
            ))
        else:
            module = self._build_module(data, values, trained_items, seed)
        self._train(
            module, dataset, loss=self.loss, seed=seed, device=device,
            batch_transform=sampler,
        )
        return self

    def _build_module(self, data, values, trained_items, seed):
        n_users, n_items = len(self._user_index), len(self._item_index)
        index, images, texts = self._content_tensors(self.item_content)
        if not self.use_item_ids:
            lacking = trained_items[index.numpy()[trained_items] < 0]
            if len(lacking):
                raise ValueError(
                    "use_item_ids=False scores items from their content alone, "
                    f"but {len(lacking)} item(s) of the interactions have no "
                    "content, e.g. "
                    f"{self._item_index.inverse_transform(lacking[:10]).tolist()}. "
                    "Add their content or set use_item_ids=True."
                )
        mean = float(values.mean()) if self.loss == "mse" else 0.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = HybridCNN(
                n_users, n_items, self.n_components,
                content_index=index, images=images, texts=texts,
                conv_channels=tuple(self.conv_channels), kernel_size=self.kernel_size,
                dense_size=self.dense_size, embedding_dim=self.embedding_dim,
                text_filters=self.text_filters,
                text_kernel_sizes=tuple(self.text_kernel_sizes),
                use_item_ids=self.use_item_ids, id_dropout=self.id_dropout,
                global_bias=mean, init_std=self.init_std,
            )
        # Users/items without training data never get a gradient: give them
        # the fallback (zero) rows from the start.
        with torch.no_grad():
            cold_users = np.setdiff1d(np.arange(n_users), data.users)
            if len(cold_users):
                module.user_factors.weight[torch.as_tensor(cold_users)] = 0
            cold_items = np.setdiff1d(np.arange(n_items), trained_items)
            if self.use_item_ids and len(cold_items):
                module.item_factors.weight[torch.as_tensor(cold_items)] = 0
        return module

    # -- content after fit ----------------------------------------------------------

    def register_items(self, item_content):
        """Add or replace item content after fit, without retraining.

        Items whose ids are new join the item space as cold items (scored
        from their content alone, recommended like any other item); items
        already known get their content replaced. The content must have the
        fitted modalities and image shape, and images the fitted scale (the
        normalisation statistics of fit are reused). Text tokens outside the
        fitted vocabulary are treated as padding.

        Parameters
        ----------
        item_content : ItemContent
            Content of the items to add or update.

        Returns
        -------
        self : CNNRecommender
            The estimator, with a larger item space when new ids were given.
        """
        check_is_fitted(self)
        if not isinstance(item_content, ItemContent):
            raise TypeError(
                "register_items needs an ItemContent, got "
                f"{type(item_content).__name__}."
            )
        module = self._module()
        if not module.has_content:
            raise ValueError(
                "This CNNRecommender was fitted without item_content (id-only); "
                "it has no content towers to score new items. Refit with "
                "item_content=ItemContent(...)."
            )
        self._check_same_modalities(module, item_content, "register_items")
        ids = item_content.item_ids
        pos = self._item_index.transform(ids)
        new = pos < 0
        if new.any():
            if self._convention == "matrix":
                bad = ids[new][:10].tolist()
                raise ValueError(
                    "This model was fitted on a user x item matrix, whose item ids "
                    f"are its column indices; ids {bad} are not columns. "
                    "register_items can only update the content of existing "
                    "columns here; fit on an interaction table to add items."
                )
            self._item_index = IdIndex(_concat_ids(self._item_index.ids, ids[new]))
            pos = self._item_index.transform(ids)
            seen = self._seen
            self._seen = sp.csr_array(
                (seen.data, seen.indices, seen.indptr),
                shape=(seen.shape[0], len(self._item_index)),
            )
        device = module.content_index.device
        old_index = module.content_index[:-1].cpu().numpy()
        n_total = len(self._item_index)
        keep_items = np.flatnonzero(old_index >= 0)
        keep_items = keep_items[~np.isin(keep_items, pos)]
        keep_rows = torch.as_tensor(old_index[keep_items], device=device)
        index = np.full(n_total, -1, dtype=np.int64)
        index[keep_items] = np.arange(len(keep_items))
        index[pos] = len(keep_items) + np.arange(len(pos))
        images = texts = None
        if module.image_tower is not None:
            new_img = _as_image_tensor(item_content.images).to(device)
            old_img = module.images[keep_rows]
            if new_img.dtype != old_img.dtype:
                new_img, old_img = new_img.float(), old_img.float()
            images = torch.cat([old_img, new_img])
        if module.text_tower is not None:
            n_tokens = module.text_tower.embedding.num_embeddings
            new_txt = _as_text_tensor(item_content.texts, n_tokens).to(device)
            texts = torch.cat(_pad_texts(module.texts[keep_rows], new_txt))
        module.set_content(torch.as_tensor(index, device=device), images, texts)
        return self

    # -- scoring --------------------------------------------------------------------

    @contextlib.contextmanager
    def _item_cache(self):
        """Compute every item vector once for the duration of a scoring call."""
        module = self._module()
        module.eval()
        if module.has_item_cache:
            yield
            return
        module.cache_item_terms()
        try:
            yield
        finally:
            module.clear_item_cache()

    def _fold_in(self, H):
        """User representations for the rows of a history matrix ``H``.

        The item side (content and id embeddings) stays frozen and each row
        is fitted on its own entries: ratings by ridge regression (exact),
        implicit feedback by full-batch Adam on the model's logistic
        objective (observed entries positive, every item with training data
        negative with weight ``n_negatives * n_u / n_trained_items``).
        """
        with self._item_cache():
            q_aug, offset = self._module().item_linear_terms()
        if self.loss == "mse":
            return fold_in_ridge(q_aug, offset, H, self.alpha)
        trained = torch.as_tensor(
            np.asarray(self._seen.sum(axis=0)).ravel() > 0, device=q_aug.device
        )
        q_aug, offset = q_aug.detach(), offset.detach()
        return fold_in_gradient(
            lambda x: torch.addmm(offset[None, :], x, q_aug.T),
            q_aug.shape[1], len(offset), H, device=q_aug.device, loss=self.loss,
            alpha=self.alpha, n_negatives=self.n_negatives, negatives=trained,
        )

    def predict(self, X):
        """Predict scores for interactions.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            An interaction table (one score per row; cold items are scored
            from their content), or a user x item matrix whose rows are
            histories: each row is folded in and its stored entries are
            scored.

        Returns
        -------
        scores : ndarray of shape (n_rows,) or sparse matrix of shape (n_users, n_items)
            Probabilities for ``loss="bce"``, raw scores otherwise; for a
            matrix, the same layout as ``X`` (see
            :meth:`MatrixFactorization.predict`).
        """
        check_is_fitted(self)
        with self._item_cache():
            return super().predict(X)

    def recommend(self, users, k=10, *, exclude_seen=True, items=None):
        """Top-``k`` items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,), DataFrame or matrix
            Raw ids of users seen at fit, or histories of new users to fold
            in (a user x item matrix or an interaction table).
        k : int, default=10
            Number of items per user, clipped to the number of candidates.
        exclude_seen : bool, default=True
            Leave out items the user interacted with at fit (or in the given
            history).
        items : array-like of shape (n_candidates,), default=None
            Raw ids of the candidate items, e.g. the cold items; all items of
            the model (content-only and registered items included) when None.

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids, best first.
        scores : ndarray of shape (n_users, k)
            Their scores (``-inf`` for filler slots of users with fewer than
            ``k`` eligible items).
        """
        check_is_fitted(self)
        check_k(k)
        if items is not None:
            raw = np.asarray(items).ravel()
            unknown = self._item_index.transform(raw) < 0
            if unknown.any():
                raise ValueError(
                    "items contains ids unknown to the model (neither in the "
                    f"training interactions nor in the item content): "
                    f"{raw[unknown][:10].tolist()}. Pass their content with "
                    "register_items(ItemContent(...)) to score them."
                )
        with self._item_cache():
            return super().recommend(users, k, exclude_seen=exclude_seen, items=items)

    def similar_items(self, items, k=10):
        """Most similar items by cosine similarity of the item vectors.

        Cold items are compared through their content vectors.

        Parameters
        ----------
        items : array-like of shape (n_queries,)
            Raw ids of items of the model.
        k : int, default=10
            Number of neighbours per item (the item itself excluded).

        Returns
        -------
        item_ids : ndarray of shape (n_queries, k)
        similarities : ndarray of shape (n_queries, k)
        """
        check_is_fitted(self)
        with self._item_cache():
            return super().similar_items(items, k)

    # -- fitted parameters as numpy ---------------------------------------------------

    @property
    def cold_item_ids_(self):
        check_is_fitted(self, "net_")
        counts = np.asarray(self._seen.sum(axis=0)).ravel()
        return self._item_index.ids[counts == 0]

    @property
    def user_embeddings_(self):
        check_is_fitted(self, "net_")
        return self._module().user_embeddings().detach().float().cpu().numpy().copy()

    @property
    def item_embeddings_(self):
        check_is_fitted(self, "net_")
        with self._item_cache(), torch.no_grad():
            return self._module().item_embeddings().float().cpu().numpy().copy()
