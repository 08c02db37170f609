"""Sequence encoders: a stacked LSTM and a SASRec-style self-attention network.

Both share one protocol (after Spotlight's sequence representations):

* sequences are ``(B, L)`` int64 tensors of item indices **shifted by one**
  (item ``i`` is stored as ``i + 1``), **left-padded** with the padding index
  0, most recent item last;
* ``sequence_states(seqs) -> (B, L, d)``: the state after each position
  (zero at padded positions), used for training on the next item at every
  position;
* ``user_representation(seqs, users=None) -> (B, d)``: the state after the
  last item (zero for an empty sequence without user attributes), i.e. what
  the model knows about the user;
* ``score_all(user_repr, items=None) -> (B, n_candidates)`` and
  ``score_pairs(user_repr, items) -> (B,)``: scores ``h . e_i + b_i`` with
  0-based item indices (no shift), where ``e_i`` are the output item
  embeddings (tied to the input ones by default) and ``b_i`` a learned item
  bias. An empty history thus scores items by their bias alone;
* ``forward(seqs, targets, neg_items=None, shared_items=None, users=None)``
  for training: ``targets`` are ``(B, L)`` next items (shifted, 0 = no
  target). Returns ``(scores,
  labels)``: the full ``(N, n_items)`` logits of the ``N`` non-padded
  positions and their 0-based labels ``(N,)``; or, with sampled
  ``neg_items`` of shape ``(B, L, n_negatives)`` (0-based), ``(N, 1 +
  n_negatives)`` logits whose first column is the target's, and ``None``;
  or, with ``shared_items`` ``(B, K)`` (the same ``K`` items in every row:
  the sampled softmax), ``(N, 1 + K)`` logits and ``(labels, items)``.

With user attributes (``n_user_features > 0``) the encoders read a *user
token* before the items: the weighted sum of the embeddings of the user's
attribute features (rows ``users`` of the ``user_attributes`` table, the
last row the unknown user, whose token is zero). The attention reads it as
a leading token every position attends to; the LSTM reads it first, so
that it conditions the state the items start from. Its own state learns
the user's items: ``targets`` are then ``(B, T + L)``, the first ``T``
columns targets of the token (items of the user; 0 for none), and the state
of an empty history is the token's, which is how users known by their
attributes alone are scored.

Padding never influences a real position: the LSTM reads each sequence
realigned to start at its first item (the padding moved behind the real
items, where the recurrence cannot reach back), and the attention masks
padded keys out; adding more left padding leaves every state unchanged.
Both encoders are causal: the state at position ``t`` depends on the items
at positions ``<= t`` only.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._attributes import AttributeEmbedding, drop_rows
from ._protocol import Scorer
from ._random import Dropout, init_parameters, take

__all__ = ["LSTMEncoder", "SelfAttentionEncoder"]


class _SequenceEncoder(Scorer):
    """Item embeddings, output layer and the scoring protocol."""

    def __init__(self, n_items, embedding_dim, max_len, dropout, tie_weights, init_std,
                 n_item_features=0, item_feature_width=1, standalone_attributes=False,
                 sparse=False, n_users=0, n_user_features=0, user_feature_width=1,
                 n_item_rows=None):
        super().__init__()
        if sparse and n_item_features:
            raise ValueError(
                "sparse=True needs item embeddings without attributes: an item's "
                "attribute embedding is computed for the whole catalogue."
            )
        self.n_items = n_items
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.tie_weights = tie_weights
        self.init_std = init_std
        self.sparse = sparse
        self.item_embedding = nn.Embedding(n_items + 1, embedding_dim, padding_idx=0, sparse=sparse)
        self.output_embedding = (
            None if tie_weights else nn.Embedding(n_items, embedding_dim, sparse=sparse)
        )
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.dropout = Dropout(dropout)
        # item attributes: one more column than the embeddings (the output bias)
        self.item_attributes = None
        if n_item_features:
            self.item_attributes = AttributeEmbedding(
                n_items if n_item_rows is None else n_item_rows, n_item_features,
                item_feature_width, embedding_dim + 1, standalone_attributes,
            )
        # user attributes: the user token read before the items
        self.user_attributes = None
        if n_user_features:
            self.user_attributes = AttributeEmbedding(
                n_users, n_user_features, user_feature_width, embedding_dim
            )

    def reset_parameters(self, generator=None):
        """PyTorch's default layers, item embeddings from N(0, ``init_std``).

        Subclasses initialise their own embeddings after this (in order).
        """
        init_parameters(self, generator)
        tables = [self.item_embedding, self.output_embedding]
        for table in (t for t in tables if t is not None):
            nn.init.normal_(table.weight, std=self.init_std, generator=generator)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
            self.output_bias.zero_()
        if self.item_attributes is not None:  # start from the id-only model
            self.item_attributes.reset_parameters(0.0)
        if self.user_attributes is not None:
            self.user_attributes.reset_parameters(self.init_std, generator)

    def get_config(self):
        config = super().get_config()
        # rows registered after fit (the estimators' register_users/_items)
        if self.item_attributes is not None:
            config["n_item_rows"] = self.item_attributes.n_rows
        if self.user_attributes is not None:
            config["n_users"] = self.user_attributes.n_rows
        return config

    @property
    def n_item_rows(self):
        """Items scored: ``n_items``, plus items registered with attributes."""
        return self.n_items if self.item_attributes is None else self.item_attributes.n_rows

    def _own_rows(self, weight):
        """The ids' own rows ``(n_items, ...)``, zeros appended for the items
        registered with attributes only."""
        extra = self.n_item_rows - self.n_items
        if not extra:
            return weight
        return torch.cat([weight, weight.new_zeros(extra, *weight.shape[1:])])

    # -- protocol ------------------------------------------------------------

    def _states(self, seqs, tokens=None):
        """States ``(B, L, d)``; with user ``tokens`` ``(B, d)``, ``(B, 1 + L, d)``
        whose column 0 is the state of the token."""
        raise NotImplementedError

    def user_tokens(self, seqs, users=None):
        """The user tokens ``(B, embedding_dim)`` of the rows of ``seqs``: rows
        ``users`` of the user attribute table (None: the unknown user's,
        zeros); None without user attributes."""
        if self.user_attributes is None:
            return None
        if users is None:
            return self.item_embedding.weight.new_zeros(seqs.shape[0], self.embedding_dim)
        return self.user_attributes(users)

    def sequence_states(self, seqs, users=None):
        """States after every position, ``(B, L, embedding_dim)``.

        With user attributes, the items are read after the tokens of
        ``users`` (None: the unknown user's).
        """
        tokens = self.user_tokens(seqs, users)
        states = self._states(seqs, tokens)
        return states if tokens is None else states[:, 1:]

    def user_representation(self, seqs, users=None, user_tokens=None):
        """State after the last item, ``(B, embedding_dim)``.

        Sequences longer than ``max_len`` are cut to their ``max_len`` most
        recent items; an empty (all-padding) sequence gives zeros. With user
        attributes, the items are read after the user tokens (``user_tokens``,
        else those of rows ``users``, else the unknown user's), and an empty
        sequence gives the state of its token.
        """
        seqs = seqs[:, -self.max_len :]
        if user_tokens is None:
            user_tokens = self.user_tokens(seqs, users)
        states = self._states(seqs, user_tokens)
        if user_tokens is None:
            return states[:, -1]
        empty = (seqs[:, -1] == 0)[:, None]  # left-padded: the last position is empty
        return torch.where(empty, states[:, 0], states[:, -1])

    def embed_items(self, seqs):
        """Input embeddings ``(B, L, embedding_dim)`` of the (shifted) items.

        With attributes, the whole input table (ids plus attributes) is
        computed once per call, then indexed: cheaper than the attributes of
        every position.
        """
        if self.item_attributes is None:
            return self.item_embedding(seqs)
        own = self._own_rows(self.item_embedding.weight[1:])
        if self.training:
            own = drop_rows(own, self.item_attributes.id_dropout[:-1])
        table = own + self.item_attributes()[:, :-1]
        table = torch.cat([self.item_embedding.weight[:1], table])  # padding row
        return take(table, seqs)

    def _output_terms(self):
        """Output item embeddings ``(n_items, d)`` and biases ``(n_items,)``."""
        if self.output_embedding is None:
            weight = self.item_embedding.weight[1:]
        else:
            weight = self.output_embedding.weight
        if self.item_attributes is None:
            return weight, self.output_bias
        full = self.item_attributes.combined(
            None, self._own_rows(torch.cat([weight, self.output_bias[:, None]], dim=1))
        )
        return full[:, :-1], full[:, -1]

    def item_embeddings(self):
        """Output item embeddings ``(n_items, embedding_dim)``."""
        return self._output_terms()[0]

    def score_all(self, user_repr, items=None):
        weight, bias = self._output_terms()
        if items is not None:
            weight, bias = take(weight, items), take(bias, items)
        return torch.addmm(bias[None, :], user_repr, weight.T)

    def score_pairs(self, user_repr, items):
        weight, bias = self._output_terms()
        return (user_repr * take(weight, items)).sum(-1) + take(bias, items)

    def _output_rows(self, weight, items):
        """Output embeddings of ``items``: with ``sparse``, a lookup whose
        gradient holds these rows only (not the whole table)."""
        if not self.sparse:
            return take(weight, items)
        if self.output_embedding is None:  # tied: input table, row 0 the padding
            return F.embedding(items + 1, self.item_embedding.weight, sparse=True)
        return F.embedding(items, self.output_embedding.weight, sparse=True)

    def forward(self, seqs, targets, neg_items=None, shared_items=None, users=None):
        tokens = None
        if self.user_attributes is not None:
            if users is None or targets.shape[1] <= seqs.shape[1]:
                raise ValueError(
                    "With user attributes, forward needs the batch's users and "
                    "targets of shape (B, T + L), the first T columns the user "
                    "token's."
                )
            tokens = self.user_attributes(users)
        states = self._states(seqs, tokens)
        if tokens is not None:  # the token's state scores each of its T targets
            n_token = targets.shape[1] - seqs.shape[1]
            states = torch.cat([states[:, :1].expand(-1, n_token, -1), states[:, 1:]], 1)
        mask = targets > 0
        h = states[mask]
        labels = targets[mask] - 1
        weight, bias = self._output_terms()
        if neg_items is None and shared_items is None:
            if self.item_attributes is not None:
                bias = self.item_attributes.mask_untrained(bias)
            return torch.addmm(bias[None, :], h, weight.T), labels
        pos = (h * self._output_rows(weight, labels)).sum(-1) + take(bias, labels)
        if shared_items is not None:  # one sample shared by the batch (sampled softmax)
            sample = shared_items[0]
            neg_scores = torch.addmm(
                take(bias, sample)[None, :], h, self._output_rows(weight, sample).T
            )
            return torch.cat([pos[:, None], neg_scores], dim=1), (labels, sample)
        neg = neg_items[mask]
        neg_scores = (
            torch.einsum("nd,nkd->nk", h, self._output_rows(weight, neg)) + take(bias, neg)
        )
        return torch.cat([pos[:, None], neg_scores], dim=1), None


class LSTMEncoder(_SequenceEncoder):
    """Stacked LSTM over the item embeddings (GRU4Rec-like, with LSTM cells).

    Parameters
    ----------
    n_items : int
        Size of the catalogue; the input embedding table has ``n_items + 1``
        rows, row 0 being the padding.
    embedding_dim : int, default=64
        Dimension of the item embeddings and of the LSTM states.
    max_len : int, default=50
        Longest history used by :meth:`user_representation`.
    n_layers : int, default=2
        Number of stacked LSTM layers.
    dropout : float, default=0.2
        Dropout on the embeddings, between LSTM layers and on the states.
    tie_weights : bool, default=True
        Score items with the input item embeddings; otherwise learn a
        separate output embedding.
    init_std : float, default=0.2
        Standard deviation of the normal initialisation of the embeddings.
    n_item_features : int, default=0
        Number of item attribute features; with any, an item's input and
        output embeddings (and output bias) are its id's plus the weighted
        sum of its features' (an :class:`AttributeEmbedding`, whose rows the
        estimator fills), and items without interactions are scored from
        their attributes alone.
    item_feature_width : int, default=1
        Features per item.
    standalone_attributes : bool, default=False
        Hold a standalone map of the item attributes, which scores the items
        without their own vector (set by the estimator after training).
    sparse : bool, default=False
        Item embedding tables with sparse gradients: a step of a sampled loss
        (sampled softmax, sampled negatives) holds the gradient of the rows
        it read only, for :class:`~sklearn_recsys.nn.SparseDenseAdam`. Not
        with item attributes.
    n_users : int, default=0
        Rows of the user attribute table (one more, the last, is the
        unknown user); used with ``n_user_features`` only.
    n_user_features : int, default=0
        Number of user attribute features; with any, the encoder reads each
        user's token (the weighted sum of its features' embeddings, an
        :class:`AttributeEmbedding` whose rows the estimator fills) before
        the items, as the initial input of the LSTM (it conditions the state
        the items start from).
    user_feature_width : int, default=1
        Features per user.
    n_item_rows : int, default=None
        Rows of the item attribute table, when items were registered with
        their attributes after fit (scored from them alone); None:
        ``n_items``.
    """

    def __init__(
        self, n_items, embedding_dim=64, max_len=50, n_layers=2, dropout=0.2,
        tie_weights=True, init_std=0.2, n_item_features=0, item_feature_width=1,
        standalone_attributes=False, sparse=False, n_users=0, n_user_features=0,
        user_feature_width=1, n_item_rows=None,
    ):
        super().__init__(n_items, embedding_dim, max_len, dropout, tie_weights, init_std,
                         n_item_features, item_feature_width, standalone_attributes, sparse,
                         n_users, n_user_features, user_feature_width, n_item_rows)
        # One LSTM per layer, with this package's dropout between them (the
        # dropout of a multi-layer nn.LSTM draws from the global generator).
        self.lstm = nn.ModuleList(
            nn.LSTM(embedding_dim, embedding_dim, batch_first=True)
            for _ in range(n_layers)
        )
        self.reset_parameters()

    def _states(self, seqs, tokens=None):
        batch, length = seqs.shape
        dim = self.embedding_dim
        real = seqs > 0
        lengths = real.sum(1)
        x = self.dropout(self.embed_items(seqs))
        # Left-padded -> right-padded: every sequence then starts from the
        # zero state at its first real item (or at its user token), and the
        # trailing padding cannot reach a real position (the recurrence only
        # looks back).
        shift = length - lengths
        steps = torch.arange(length, device=seqs.device)
        to_right = (steps[None, :] + shift[:, None]) % length
        out = x.gather(1, to_right[..., None].expand(-1, -1, dim))
        if tokens is not None:  # the user token first: the items' initial state
            out = torch.cat([self.dropout(tokens)[:, None], out], dim=1)
        for i, layer in enumerate(self.lstm):
            out, _ = layer(self.dropout(out) if i else out)
        if tokens is not None:
            token_state, out = out[:, :1], out[:, 1:]
        to_left = (steps[None, :] - shift[:, None]) % length
        out = out.gather(1, to_left[..., None].expand(-1, -1, dim))
        out = self.dropout(out) * real[..., None]
        if tokens is None:
            return out
        return torch.cat([self.dropout(token_state), out], dim=1)


class _AttentionBlock(nn.Module):
    """Pre-norm transformer block: masked multi-head attention + feed-forward."""

    def __init__(self, dim, n_heads, dropout):
        super().__init__()
        self.n_heads = n_heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_out = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.dropout = Dropout(dropout)

    def forward(self, x, attn_mask):
        batch, length, dim = x.shape
        q, k, v = (
            self.qkv(self.attention_norm(x))
            .view(batch, length, 3, self.n_heads, dim // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        a = a.transpose(1, 2).reshape(batch, length, dim)
        x = x + self.dropout(self.attention_out(a))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SelfAttentionEncoder(_SequenceEncoder):
    """SASRec (Kang & McAuley, 2018): causal self-attention over the items.

    Item embeddings plus learned positional embeddings go through
    ``n_blocks`` pre-norm transformer blocks (causal multi-head attention and
    a position-wise feed-forward network, residual connections, layer norm,
    dropout) and a final layer norm. The position of an item is its distance
    to the most recent item of the window (0 for the last one), so extra left
    padding changes nothing.

    Parameters
    ----------
    n_items : int
        Size of the catalogue (row 0 of the input embeddings is padding).
    embedding_dim : int, default=64
        Model dimension; must be divisible by ``n_heads``.
    max_len : int, default=50
        Number of positional embeddings, i.e. the longest sequence.
    n_blocks : int, default=2
        Number of transformer blocks.
    n_heads : int, default=1
        Attention heads per block.
    dropout : float, default=0.2
        Dropout on the embeddings and on the residual branches (not on the
        attention weights: the fused attention kernels are much faster
        without it).
    tie_weights : bool, default=True
        Score items with the input item embeddings.
    init_std : float, default=0.05
        Standard deviation of the normal initialisation of the embeddings.
    n_item_features : int, default=0
        Number of item attribute features; with any, an item's input and
        output embeddings (and output bias) are its id's plus the weighted
        sum of its features' (an :class:`AttributeEmbedding`, whose rows the
        estimator fills), and items without interactions are scored from
        their attributes alone.
    item_feature_width : int, default=1
        Features per item.
    standalone_attributes : bool, default=False
        Hold a standalone map of the item attributes, which scores the items
        without their own vector (set by the estimator after training).
    sparse : bool, default=False
        Item embedding tables with sparse gradients: a step of a sampled loss
        (sampled softmax, sampled negatives) holds the gradient of the rows
        it read only, for :class:`~sklearn_recsys.nn.SparseDenseAdam`. Not
        with item attributes.
    n_users : int, default=0
        Rows of the user attribute table (one more, the last, is the
        unknown user); used with ``n_user_features`` only.
    n_user_features : int, default=0
        Number of user attribute features; with any, the encoder reads each
        user's token (the weighted sum of its features' embeddings, an
        :class:`AttributeEmbedding` whose rows the estimator fills) before
        the items, as a leading token every position attends to.
    user_feature_width : int, default=1
        Features per user.
    n_item_rows : int, default=None
        Rows of the item attribute table, when items were registered with
        their attributes after fit (scored from them alone); None:
        ``n_items``.
    """

    def __init__(
        self, n_items, embedding_dim=64, max_len=50, n_blocks=2, n_heads=1, dropout=0.2,
        tie_weights=True, init_std=0.05, n_item_features=0, item_feature_width=1,
        standalone_attributes=False, sparse=False, n_users=0, n_user_features=0,
        user_feature_width=1, n_item_rows=None,
    ):
        if embedding_dim % n_heads:
            raise ValueError(
                f"embedding_dim={embedding_dim} must be divisible by n_heads={n_heads}."
            )
        super().__init__(n_items, embedding_dim, max_len, dropout, tie_weights, init_std,
                         n_item_features, item_feature_width, standalone_attributes, sparse,
                         n_users, n_user_features, user_feature_width, n_item_rows)
        self.position_embedding = nn.Embedding(max_len, embedding_dim)
        self.blocks = nn.ModuleList(
            _AttentionBlock(embedding_dim, n_heads, dropout) for _ in range(n_blocks)
        )
        self.final_norm = nn.LayerNorm(embedding_dim)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """As the base, then positional embeddings from N(0, ``init_std``)."""
        super().reset_parameters(generator)
        nn.init.normal_(self.position_embedding.weight, std=self.init_std, generator=generator)

    def _states(self, seqs, tokens=None):
        batch, length = seqs.shape
        if length > self.max_len:
            raise ValueError(
                f"Sequences of length {length} exceed max_len={self.max_len}; "
                "keep the max_len most recent items."
            )
        device = seqs.device
        real = seqs > 0
        positions = torch.arange(length - 1, -1, -1, device=device)
        x = self.embed_items(seqs) * math.sqrt(self.embedding_dim)
        x = self.dropout(x + self.position_embedding(positions)[None]) * real[..., None]
        if tokens is not None:  # a leading user token, without a position
            x = torch.cat(
                [self.dropout(tokens * math.sqrt(self.embedding_dim))[:, None], x], dim=1
            )
            real = torch.cat([real.new_ones(batch, 1), real], dim=1)
            length += 1
        keep = real[..., None]
        # Query t attends to the real keys <= t, and to itself so that the
        # rows of padded queries are never empty (their states are zeroed).
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=device)
        allowed = ((causal[None] & real[:, None, :]) | eye[None])[:, None]
        attn_mask = torch.zeros(allowed.shape, dtype=x.dtype, device=device)
        attn_mask.masked_fill_(~allowed, float("-inf"))
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.final_norm(x) * keep
