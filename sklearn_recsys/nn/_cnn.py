"""Convolutional item encoders and the content/collaborative hybrid scorer.

:class:`ImageCNN` turns images into feature vectors, :class:`TextCNN` turns
token-id sequences into feature vectors (Kim, 2014), and :class:`HybridCNN`
scores (user, item) pairs as ``p_u . v_i + b_u + c_i + mu`` where the item
vector ``v_i`` is the projection of the item's content features plus an
item-id embedding (zero for items without training interactions), and ``c_i``
an item bias made of the same two parts.

:class:`HybridCNN` is a :class:`~sklearn_recsys.nn.LinearItemScorer` (the
scoring protocol of :mod:`sklearn_recsys.nn._protocol`), trained like
:class:`~sklearn_recsys.nn.BiasedMF` through
``forward(users, items, neg_items=None) -> (pos, neg, penalty)``. The item
content (images, token ids) lives in buffers of the module, so it moves to the
training device with it; a training batch runs the towers once on its unique
items, and :meth:`HybridCNN.scoring` computes every item vector once for a
whole scoring call.
"""

import math
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from ._attributes import AttributeEmbedding
from ._mf import _embedding, init_rows
from ._protocol import LinearItemScorer, augmented
from ._random import current_generator, init_parameters, take

__all__ = ["ImageCNN", "TextCNN", "HybridCNN"]

# Items whose content is encoded at once when all item vectors are computed.
_CONTENT_BLOCK = 4096
# Spatial size the image feature maps are pooled down to before the dense
# layer (keeps the dense layer small for large images).
_MAX_GRID = 4


class ImageCNN(nn.Module):
    """Convolutional tower: images ``(B, C, H, W)`` -> features ``(B, dense_size)``.

    Each block is a ``kernel_size`` convolution (``"same"`` padding), a ReLU
    and a 2x2 max-pooling (along the dimensions still larger than 1). The
    feature maps are then average-pooled to at most 4x4, flattened and passed
    through a dense ReLU layer.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)`` of the input images.
    conv_channels : tuple of int, default=(32, 64, 128)
        Output channels of the convolution blocks.
    kernel_size : int, default=3
        Side of the square convolution kernels.
    dense_size : int, default=128
        Width of the dense layer, i.e. of the output features.
    """

    def __init__(
        self, image_shape, conv_channels=(32, 64, 128), kernel_size=3, dense_size=128
    ):
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        layers = []
        for out in conv_channels:
            layers += [nn.Conv2d(c, out, kernel_size, padding="same"), nn.ReLU()]
            kh, kw = min(2, h), min(2, w)
            if kh * kw > 1:
                layers.append(nn.MaxPool2d((kh, kw), ceil_mode=True))
                h, w = math.ceil(h / kh), math.ceil(w / kw)
            c = out
        if h > _MAX_GRID or w > _MAX_GRID:
            h, w = min(h, _MAX_GRID), min(w, _MAX_GRID)
            layers.append(nn.AdaptiveAvgPool2d((h, w)))
        layers += [nn.Flatten(), nn.Linear(c * h * w, dense_size), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.out_features = dense_size

    def forward(self, images):
        return self.layers(images)


class TextCNN(nn.Module):
    """Kim (2014) text CNN: token ids ``(B, L)`` -> features ``(B, n_filters * n_kernels)``.

    Token embeddings go through one 1-D convolution per kernel size, a ReLU
    and a max over time; the pooled features are concatenated. Token 0 is
    padding: sequences are convolved with ``kernel - 1`` padding positions on
    both sides and only windows holding at least one real token are pooled,
    so the features do not depend on how much padding surrounds the tokens;
    a sequence made only of padding gets zero features.

    Parameters
    ----------
    n_tokens : int
        Vocabulary size, padding token 0 included.
    embedding_dim : int, default=32
        Dimension of the token embeddings.
    n_filters : int, default=64
        Filters per kernel size.
    kernel_sizes : tuple of int, default=(2, 3, 4)
        Widths (in tokens) of the convolutions.
    """

    def __init__(self, n_tokens, embedding_dim=32, n_filters=64, kernel_sizes=(2, 3, 4)):
        super().__init__()
        self.embedding = nn.Embedding(n_tokens, embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(
            nn.Conv1d(embedding_dim, n_filters, k) for k in kernel_sizes
        )
        self.out_features = n_filters * len(kernel_sizes)

    def forward(self, tokens):
        x = self.embedding(tokens).transpose(1, 2)  # (B, E, L)
        real = (tokens > 0).to(x.dtype)[:, None, :]  # (B, 1, L)
        feats = []
        for conv in self.convs:
            p = conv.kernel_size[0] - 1
            h = F.relu(conv(F.pad(x, (p, p))))  # (B, F, L + p)
            valid = F.max_pool1d(F.pad(real, (p, p)), p + 1, stride=1)  # (B, 1, L + p)
            feats.append((h * valid).amax(dim=2))
        return torch.cat(feats, dim=1)


def channel_stats(images, block=_CONTENT_BLOCK):
    """Per-channel mean and standard deviation of ``(n, C, H, W)`` images.

    Computed in float64 over blocks of images (no full float copy). A
    constant channel gets a standard deviation of 1.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    total_sq = torch.zeros_like(total)
    for s in range(0, len(images), block):
        x = images[s : s + block].double()
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_(min=0).sqrt_()
    std[std < 1e-6] = 1.0
    return mean.float(), std.float()


class HybridCNN(LinearItemScorer):
    """Content + collaborative scorer: user factors times item vectors, plus biases.

    The item vector is ``v_i = W f_i + q_i`` and the item bias
    ``c_i = w . f_i + d_i``, where ``f_i`` concatenates the features of the
    item's image (:class:`ImageCNN`) and text (:class:`TextCNN`),
    batch-normalised over the unique items of a training batch (running
    statistics at inference), and
    ``q_i``/``d_i`` are item-id embeddings. Items without content get
    ``f_i``'s contribution set to zero; items without an id embedding (index
    ``>= n_id_items``: items unseen in training) get zero ``q_i``/``d_i``.
    Without any content modality the module is a biased matrix factorization.

    Parameters
    ----------
    n_users : int
        Number of users (an extra zero row is added for unknown users).
    n_items : int
        Number of items of the id space, content-only items included.
    n_components : int, default=32
        Dimension of the user factors and item vectors.
    content_index : torch.Tensor of shape (n_items,), default=None
        Row of each item in ``images``/``texts``, ``-1`` for items without
        content.
    images : torch.Tensor of shape (n_content, C, H, W), default=None
        Item images, uint8 or float. Normalised per channel with
        ``image_mean``/``image_std`` (their statistics when not given).
    texts : torch.Tensor of shape (n_content, L), default=None
        Token ids, 0 = padding, all ``< n_tokens``.
    n_tokens : int, default=None
        Vocabulary size of the text tower (``texts.max() + 1`` when None).
    image_mean, image_std : torch.Tensor of shape (C,), default=None
        Normalisation statistics of the images.
    conv_channels, kernel_size, dense_size
        The image tower, see :class:`ImageCNN`.
    embedding_dim, text_filters, text_kernel_sizes
        The text tower, see :class:`TextCNN`.
    use_item_ids : bool, default=True
        Add the item-id embeddings ``q_i``/``d_i``.
    n_id_items : int, default=None
        Items with an id embedding, indices ``0..n_id_items-1`` (all
        ``n_items`` when None).
    id_dropout : float, default=0.0
        During training, probability of dropping an item's id embedding (for
        items with content), so that the content path learns to score items
        alone, as it must for new items (DropoutNet, Volkovs et al. 2017).
    global_bias : float, default=0.0
    init_std : float, default=0.1
        Standard deviation of the embeddings' normal initialisation.
    n_user_features, n_item_features : int, default=0
        Number of user (item) attribute features
        (:class:`AttributeEmbedding`, rows filled by the estimator): a
        user's factors and bias add the weighted sum of its features'; an
        item's vector and bias add its features' to the content and id
        parts (items added after fit have none).
    user_feature_width, item_feature_width : int, default=1
        Features per user (item).
    standalone_attributes : bool, default=False
        Hold a standalone map of the user attributes, which scores the users
        without their own vector (set by the estimator after training).
    """

    def __init__(
        self, n_users, n_items, n_components=32, *, content_index=None, images=None,
        texts=None, n_tokens=None, image_mean=None, image_std=None,
        conv_channels=(32, 64, 128), kernel_size=3, dense_size=128, embedding_dim=32,
        text_filters=64, text_kernel_sizes=(2, 3, 4), use_item_ids=True,
        n_id_items=None, id_dropout=0.0, global_bias=0.0, init_std=0.1,
        n_user_features=0, user_feature_width=1, n_item_features=0, item_feature_width=1,
        standalone_attributes=False,
    ):
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.n_components = n_components
        self.use_item_ids = use_item_ids
        self.n_id_items = n_items if n_id_items is None else n_id_items
        self.id_dropout = id_dropout
        self.init_std = init_std
        self.initial_global_bias = float(global_bias)
        self.user_factors = _embedding(n_users, n_components)
        self.user_bias = _embedding(n_users, 1)
        self.global_bias = nn.Parameter(torch.tensor(self.initial_global_bias))
        if use_item_ids:
            self.item_factors = _embedding(self.n_id_items, n_components)
            self.item_bias = _embedding(self.n_id_items, 1)
        self.user_attributes = self.item_attributes = None
        if n_user_features:
            self.user_attributes = AttributeEmbedding(
                n_users, n_user_features, user_feature_width, n_components + 1,
                standalone_attributes,
            )
        if n_item_features:
            self.item_attributes = AttributeEmbedding(
                n_items, n_item_features, item_feature_width, n_components + 1
            )
        n_features = 0
        self.image_tower = self.text_tower = None
        if images is not None:
            self.image_tower = ImageCNN(
                images.shape[1:], conv_channels, kernel_size, dense_size
            )
            n_features += self.image_tower.out_features
            if image_mean is None or image_std is None:
                image_mean, image_std = channel_stats(images)
            self.register_buffer("image_mean", image_mean.float().reshape(-1, 1, 1))
            self.register_buffer("image_std", image_std.float().reshape(-1, 1, 1))
        if texts is not None:
            if n_tokens is None:
                n_tokens = int(texts.max()) + 1 if texts.numel() else 1
            self.text_tower = TextCNN(
                n_tokens, embedding_dim, text_filters, text_kernel_sizes
            )
            n_features += self.text_tower.out_features
        self.has_content = n_features > 0
        if self.has_content:
            # Batch normalisation over the items of a batch centres the
            # (non-negative) tower features, so that the projection sees how
            # items differ rather than their common component: without it
            # training sits on a plateau for several epochs.
            self.content_norm = nn.BatchNorm1d(n_features)
            # (n_components item vector, 1 item bias)
            self.content_proj = nn.Linear(n_features, n_components + 1)
        self.set_content(content_index, images, texts)
        self._item_cache = None
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """PyTorch's default layers, id embeddings from N(0, ``init_std``)."""
        init_parameters(self, generator)
        init_rows(self.user_factors, self.init_std, generator)
        init_rows(self.user_bias, 0)
        if self.use_item_ids:
            init_rows(self.item_factors, self.init_std, generator)
            init_rows(self.item_bias, 0)
        for table in (self.user_attributes, self.item_attributes):
            if table is not None:  # start from the model without attributes
                table.reset_parameters(0.0)
        with torch.no_grad():
            self.global_bias.fill_(self.initial_global_bias)

    def get_config(self):
        """The constructor arguments, with the content the module holds now.

        The content (``content_index``, ``images``, ``texts``) and the image
        normalisation are the current buffers, which :meth:`set_content` may
        have replaced since the module was built.
        """
        if "_init_config" not in self.__dict__:
            return super().get_config()  # raises: nothing recorded
        config = dict(self.__dict__["_init_config"])
        config.update(
            n_id_items=self.n_id_items, content_index=self.content_index[:-1],
            images=self.images, texts=self.texts, image_mean=None, image_std=None,
        )
        if self.image_tower is not None:
            config.update(image_mean=self.image_mean, image_std=self.image_std)
        if self.text_tower is not None:
            config["n_tokens"] = self.text_tower.embedding.num_embeddings
        return config

    # -- content ---------------------------------------------------------------

    def set_content(self, content_index=None, images=None, texts=None):
        """Replace the content buffers (same modalities and image shape).

        ``content_index`` may cover more items than ``n_items`` (items added
        after training); the item id space grows to its length.
        """
        if content_index is None:
            content_index = torch.full((self.n_items,), -1, dtype=torch.long)
        self.n_items = len(content_index)
        pad = torch.full((1,), -1, dtype=torch.long, device=content_index.device)
        # Not in the state dict: the content is data, and ``images`` may be a
        # view of the caller's (possibly read-only) array, which loading a
        # state dict (e.g. early stopping's best weights) would write into.
        self.register_buffer(
            "content_index", torch.cat([content_index.long(), pad]), persistent=False
        )
        self.register_buffer("images", images, persistent=False)
        self.register_buffer("texts", None if texts is None else texts.long(), persistent=False)
        self._item_cache = None

    def _content_features(self, rows):
        feats = []
        if self.image_tower is not None:
            x = self.images[rows].float()
            feats.append(self.image_tower((x - self.image_mean) / self.image_std))
        if self.text_tower is not None:
            feats.append(self.text_tower(self.texts[rows]))
        feats = torch.cat(feats, dim=1)
        norm = self.content_norm
        if self.training and len(feats) > 1:
            feats = norm(feats)
        else:  # running statistics (a single item has no batch statistics)
            feats = F.batch_norm(
                feats, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                training=False, eps=norm.eps,
            )
        return self.content_proj(feats)

    def _id_rows(self, items):
        return torch.where(items < self.n_id_items, items, self.n_id_items)

    def item_terms(self, items):
        """Item vectors ``(m, n_components)`` and biases ``(m,)`` of ``items``.

        The towers run once per entry of ``items``: pass unique items.
        """
        m = len(items)
        if self.has_content:
            rows = self.content_index[items]
            has = rows >= 0
            idx = torch.nonzero(has)[:, 0]
            z = self._content_features(rows[idx]) if len(idx) else None
            if z is not None and len(idx) == m:
                v, b = z[:, :-1], z[:, -1]
            else:
                full = torch.zeros(
                    m, self.n_components + 1, device=items.device,
                    dtype=self.user_factors.weight.dtype,
                )
                if z is not None:
                    full = full.index_copy(0, idx, z)
                v, b = full[:, :-1], full[:, -1]
        else:
            has = None
            v = torch.zeros(
                m, self.n_components, device=items.device,
                dtype=self.user_factors.weight.dtype,
            )
            b = v[:, 0]
        if self.use_item_ids:
            ids = self._id_rows(items)
            q, d = self.item_factors(ids), self.item_bias(ids)[:, 0]
            if self.training and self.id_dropout > 0 and has is not None:
                noise = torch.rand(
                    m, generator=current_generator(items.device), device=items.device
                )
                drop = (noise < self.id_dropout) & has
                keep = (~drop).to(q.dtype)
                q, d = q * keep[:, None], d * keep
            v, b = v + q, b + d
        if self.item_attributes is not None:
            # items added after fit (beyond the table) have no attributes
            a = self.item_attributes(items.clamp(max=self.item_attributes.n_rows))
            v, b = v + a[:, :-1], b + a[:, -1]
        return v, b

    # -- scoring protocol --------------------------------------------------------

    @contextmanager
    def scoring(self):
        """Evaluation mode, with every item's terms computed once for the call.

        Nested calls reuse the outer cache; it is dropped on the way out.
        """
        with super().scoring():
            if self._item_cache is not None:
                yield self
                return
            self._item_cache = self._all_item_linear_terms(with_padding=True)
            try:
                yield self
            finally:
                self._item_cache = None

    def _all_item_linear_terms(self, block=_CONTENT_BLOCK, with_padding=False):
        device = self.user_factors.weight.device
        n = self.n_items + int(with_padding)
        parts_q, parts_b = [], []
        for s in range(0, n, block):
            items = torch.arange(s, min(n, s + block), device=device)
            v, b = self.item_terms(items)
            parts_q.append(v)
            parts_b.append(b)
        return augmented(torch.cat(parts_q), torch.cat(parts_b), self.global_bias)

    def user_representation(self, users):
        own = torch.cat([self.user_factors(users), self.user_bias(users)], dim=1)
        if self.user_attributes is None:
            return own
        return self.user_attributes.combined(users, own)

    def item_linear_terms(self, items=None):
        """``(Q_aug, offset)`` with ``score = user_repr @ Q_aug.T + offset``."""
        if self._item_cache is not None:
            q_aug, offset = self._item_cache
            if items is None:
                return q_aug[: self.n_items], offset[: self.n_items]
            return take(q_aug, items), take(offset, items)
        if items is None:
            return self._all_item_linear_terms()
        uniq, inv = torch.unique(items, return_inverse=True)
        q_aug, offset = self._all_terms_of(uniq)
        return take(q_aug, inv), take(offset, inv)

    def _all_terms_of(self, items):
        v, b = self.item_terms(items)
        return augmented(v, b, self.global_bias)

    def _id_penalty(self, items):
        if not self.use_item_ids:
            return torch.zeros(items.shape, device=items.device)
        ids = self._id_rows(items)
        return (self.item_factors(ids) ** 2).sum(-1) + self.item_bias(ids)[..., 0] ** 2

    def forward(self, users, items, neg_items=None):
        u = self.user_representation(users)
        n = len(items)
        everything = (
            items if neg_items is None else torch.cat([items, neg_items.reshape(-1)])
        )
        uniq, inv = torch.unique(everything, return_inverse=True)
        q_aug, offset = self._all_terms_of(uniq)  # towers run once per unique item
        pos = (u * take(q_aug, inv[:n])).sum(-1) + take(offset, inv[:n])
        penalty = (u * u).sum(-1) + self._id_penalty(items)
        neg = None
        if neg_items is not None:
            inv_neg = inv[n:].reshape(neg_items.shape)
            neg = (u[:, None, :] * take(q_aug, inv_neg)).sum(-1) + take(offset, inv_neg)
            penalty = penalty + self._id_penalty(neg_items).mean(dim=1)
        return pos, neg, penalty

    def user_embeddings(self):
        if self.user_attributes is None:
            return self.user_factors.weight[: self.n_users]
        users = torch.arange(self.n_users, device=self.global_bias.device)
        return self.user_representation(users)[:, :-1]
