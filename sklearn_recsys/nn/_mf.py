"""Factorization networks: biased matrix factorization and NeuMF.

Both follow the scoring protocol of :mod:`sklearn_recsys.nn._protocol` (a
user representation is the user's factors and bias); for training,
``forward(users, items, neg_items=None) -> (pos, neg, penalty)`` returns the
scores of the positive pairs, of the sampled negatives ``(B, n_negatives)``
(or ``None``), and for each row the squared norm of the parameters it touched
(the L2 penalty, ``(B,)``). ``BiasedMF`` also takes ``targets`` instead of
items (the full-catalogue loss): see :meth:`BiasedMF.forward`.

The last row of every embedding table (index ``n_users``/``n_items``) is a
zero padding row used for ids unseen at fit.
"""

import torch
from torch import nn

from ._attributes import AttributeEmbedding
from ._protocol import LinearItemScorer, Scorer, augmented
from ._random import Dropout, init_parameters


def _embedding(n, dim, sparse=False):
    """A table of ``n`` rows plus a last, zero padding row (unknown ids)."""
    return nn.Embedding(n + 1, dim, padding_idx=n, sparse=sparse)


@torch.no_grad()
def init_rows(embedding, std, generator=None):
    """Normal(0, ``std``) rows (zeros for ``std=0``), the padding row zero."""
    if std:
        nn.init.normal_(embedding.weight, std=std, generator=generator)
    else:
        embedding.weight.zero_()
    embedding.weight[embedding.padding_idx].zero_()


class BiasedMF(LinearItemScorer):
    """Biased matrix factorization, ``mu + b_u + b_i + p_u @ q_i``.

    Parameters
    ----------
    n_users : int
        Number of users (an extra zero row is added for unknown users).
    n_items : int
        Number of items (an extra zero row is added for unknown items).
    n_components : int, default=32
        Dimension of the latent factors.
    global_bias : float, default=0.0
        Initial value of the learned global offset ``mu``.
    init_std : float, default=0.1
        Standard deviation of the normal initialisation of the factors.
    sparse : bool, default=False
        Embedding tables with sparse gradients (rows of the batch only), for
        an optimizer that updates those rows only, e.g.
        :class:`~sklearn_recsys.nn.SparseDenseAdam`.
    n_user_features, n_item_features : int, default=0
        Number of user (item) attribute features; with any, a user's factors
        and bias are its id's plus the weighted sum of its features'
        (LightFM's hybrid representation), and ids without interactions are
        scored from their features alone. The rows' features are buffers
        (:class:`~sklearn_recsys.nn.AttributeEmbedding`), filled by the
        estimator.
    user_feature_width, item_feature_width : int, default=1
        Features per user (item) row.
    standalone_attributes : bool, default=False
        Hold a standalone map of the attributes, which scores the ids
        without an id of their own (see
        :class:`~sklearn_recsys.nn.AttributeEmbedding`); the estimator sets
        it after training.
    n_user_rows, n_item_rows : int, default=None
        Users (items) with attribute rows, at least ``n_users``
        (``n_items``); indices beyond the id tables (ids registered after
        fit) have attributes only. None: ``n_users`` (``n_items``).

    Notes
    -----
    In training, row ``r`` of a side with attributes has its id's own
    factors and bias zeroed with probability ``id_dropout[r]`` (a buffer of
    its :class:`~sklearn_recsys.nn.AttributeEmbedding`, zero unless the
    estimator sets it), so that the attribute part learns to score alone.

    With attributes, the L2 penalty of a row is ``|own|^2 + |attr|^2``, its
    id's own part and its attribute part apart, not the squared norm of
    their sum. This is a hierarchical prior: an id's vector is shrunk
    towards the vector of its attributes, which is shrunk towards zero, so
    ids with few interactions borrow from the others with the same
    attributes. (A penalty on the sum alone would leave the attribute part
    free: the ids' own vectors reach any sum without it.)
    """

    def __init__(
        self, n_users, n_items, n_components=32, global_bias=0.0, init_std=0.1,
        sparse=False, n_user_features=0, n_item_features=0, user_feature_width=1,
        item_feature_width=1, n_user_rows=None, n_item_rows=None, standalone_attributes=False,
    ):
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.init_std = init_std
        self.initial_global_bias = float(global_bias)
        self.user_factors = _embedding(n_users, n_components, sparse)
        self.item_factors = _embedding(n_items, n_components, sparse)
        self.user_bias = _embedding(n_users, 1, sparse)
        self.item_bias = _embedding(n_items, 1, sparse)
        self.global_bias = nn.Parameter(torch.tensor(self.initial_global_bias))
        self.user_attributes = self.item_attributes = None
        if n_user_features:
            self.user_attributes = AttributeEmbedding(
                n_users if n_user_rows is None else n_user_rows, n_user_features,
                user_feature_width, n_components + 1, standalone_attributes,
            )
        if n_item_features:
            self.item_attributes = AttributeEmbedding(
                n_items if n_item_rows is None else n_item_rows, n_item_features,
                item_feature_width, n_components + 1, standalone_attributes,
            )
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """Factors from N(0, ``init_std``), zero biases, the initial ``mu``.

        Attribute embeddings start at zero: the model starts as the id-only
        one, and its attributes add what training finds they explain.
        """
        init_rows(self.user_factors, self.init_std, generator)
        init_rows(self.item_factors, self.init_std, generator)
        init_rows(self.user_bias, 0)
        init_rows(self.item_bias, 0)
        for table in (self.user_attributes, self.item_attributes):
            if table is not None:
                table.reset_parameters(0.0)  # start from the id-only model
        with torch.no_grad():
            self.global_bias.fill_(self.initial_global_bias)

    def get_config(self):
        config = super().get_config()
        for side in ("user", "item"):  # rows registered after fit
            table = getattr(self, f"{side}_attributes")
            if table is not None:
                config[f"n_{side}_rows"] = table.n_rows
        return config

    @property
    def n_item_rows(self):
        """Items scored: ``n_items``, plus items registered with attributes."""
        return self.n_items if self.item_attributes is None else self.item_attributes.n_rows

    def _id_rows(self, rows, n_ids):
        """Rows beyond the id table (registered with attributes only): padding."""
        return torch.where(rows < n_ids, rows, n_ids)

    def _own_users(self, users):
        ids = self._id_rows(users, self.n_users)
        return torch.cat([self.user_factors(ids), self.user_bias(ids)], dim=-1)

    def user_representation(self, users):
        if self.user_attributes is None:
            return torch.cat([self.user_factors(users), self.user_bias(users)], dim=1)
        return self.user_attributes.combined(users, self._own_users(users))

    def _own_items(self, items):
        """The items' own ``[factors, bias]`` (zeros for items registered after fit)."""
        if items is not None:
            ids = self._id_rows(items, self.n_items)
            return torch.cat([self.item_factors(ids), self.item_bias(ids)], dim=-1)
        n = self.n_items
        own = torch.cat([self.item_factors.weight[:n], self.item_bias.weight[:n]], 1)
        if self.n_item_rows > n:
            own = torch.cat([own, own.new_zeros(self.n_item_rows - n, own.shape[1])])
        return own

    # Training terms: each returns its parts (own, attribute) too, for the
    # penalty, computed after the scores (in the order of the model without
    # attributes, whose floating-point results stay as they were).

    def _user_terms(self, users):
        """``(u, parts)``: the users' representations and, with attributes,
        ``(own, attribute part)`` (None without)."""
        if self.user_attributes is None:
            return self.user_representation(users), None
        own, attr = self.user_attributes.parts(users, self._own_users(users))
        u = own + attr if self.training else self.user_representation(users)
        return u, (own, attr)

    def _item_terms(self, items=None):
        """``(q_aug, offset, parts)``, as :meth:`_user_terms` for items."""
        if self.item_attributes is None:
            return (*self.item_linear_terms(items), None)
        own, attr = self.item_attributes.parts(items, self._own_items(items))
        if not self.training:
            return (*self.item_linear_terms(items), (own, attr))
        q_b = own + attr
        return (*augmented(q_b[..., :-1], q_b[..., -1], self.global_bias), (own, attr))

    @staticmethod
    def _user_penalty(u, parts):
        """Squared norm of each user's representation; with attributes, of
        its own and attribute parts apart (see the class notes)."""
        if parts is None:
            return (u * u).sum(-1)
        own, attr = parts
        return (own * own).sum(-1) + (attr * attr).sum(-1)

    def _item_penalty(self, q_aug, offset, parts):
        """``(factors, bias)``: the squared norms of each item's factors and
        bias; with attributes, of the own and attribute parts apart."""
        if parts is None:
            return (q_aug[..., :-1] ** 2).sum(-1), offset.sub(self.global_bias).pow(2)
        own, attr = parts
        squares = own * own + attr * attr
        return squares[..., :-1].sum(-1), squares[..., -1]

    def _item_side(self, items=None):
        if self.item_attributes is not None:
            q_b = self.item_attributes.combined(items, self._own_items(items))
            return q_b[..., :-1], q_b[..., -1]
        if items is None:
            q = self.item_factors.weight[: self.n_items]
            b = self.item_bias.weight[: self.n_items, 0]
        else:
            q = self.item_factors(items)
            b = self.item_bias(items)[..., 0]
        return q, b

    def item_linear_terms(self, items=None):
        """``(Q_aug, offset)`` with ``score = user_repr @ Q_aug.T + offset``.

        Parameters
        ----------
        items : torch.Tensor of int64, default=None
            Item indices; all items when None.

        Returns
        -------
        q_aug : torch.Tensor of shape (..., n_components + 1)
            Item factors with a column of ones (it multiplies the user bias).
        offset : torch.Tensor of shape (...)
            Item bias plus the global offset.
        """
        q, b = self._item_side(items)
        return augmented(q, b, self.global_bias)

    def forward(
        self, users, items=None, neg_items=None, targets=None, shared_items=None,
        pos_items=None, pos_values=None, shared_weights=None,
    ):
        """Training output ``(pos, neg, penalty)`` of a batch.

        With ``items`` (and sampled ``neg_items``): the scores of the pairs and
        of the negatives, and each row's L2 penalty. With ``targets`` instead
        (the full-catalogue loss): the ``(B, n_items)`` scores of the users,
        the targets passed through, and each user's penalty
        ``|p_u|^2 + mean_i |q_i|^2``. With ``pos_items``/``pos_values``
        ``(B, M)``, ``shared_items`` and ``shared_weights``
        (the sampled softmax: whole users against one sample of ``K`` items,
        see :class:`~sklearn_recsys._objectives.UserRowSample`): ``(pos (B,
        M), neg (B, K), penalty, pos_items, pos_values, sample)``, the
        penalty ``|p_u|^2`` plus the ``shared_weights``-weighted mean squared
        norm of the sampled items (an estimate of the catalogue's mean).
        """
        u, u_parts = self._user_terms(users)
        if pos_items is not None:  # whole users against a shared sample
            sample = shared_items[0]
            q_aug, offset = self.item_linear_terms(pos_items)
            pos = (u[:, None, :] * q_aug).sum(-1) + offset
            qs_aug, offset_s, s_parts = self._item_terms(sample)
            neg = torch.addmm(offset_s[None, :], u, qs_aug.T)
            item_norms = self._item_penalty(qs_aug, offset_s, s_parts)[0]
            item_penalty = (
                item_norms.mean() if shared_weights is None
                else (item_norms * shared_weights[0]).sum()
            )
            penalty = self._user_penalty(u, u_parts) + item_penalty
            return pos, neg, penalty, pos_items, pos_values, sample
        if targets is not None:
            q_aug, offset, q_parts = self._item_terms()
            if self.training and self.item_attributes is not None:
                offset = self.item_attributes.mask_untrained(offset)
            scores = torch.addmm(offset[None, :], u, q_aug.T)
            penalty = (self._user_penalty(u, u_parts)
                       + self._item_penalty(q_aug, offset, q_parts)[0].mean())
            return scores, targets, penalty
        q_aug, offset, q_parts = self._item_terms(items)
        pos = (u * q_aug).sum(-1) + offset
        factors, bias = self._item_penalty(q_aug, offset, q_parts)
        penalty = self._user_penalty(u, u_parts) + factors + bias
        neg = None
        if neg_items is not None:
            qn_aug, offset_n, n_parts = self._item_terms(neg_items)
            neg = (u[:, None, :] * qn_aug).sum(-1) + offset_n
            factors, bias = self._item_penalty(qn_aug, offset_n, n_parts)
            penalty = penalty + (factors + bias).mean(dim=1)
        return pos, neg, penalty

    def user_embeddings(self):
        if self.user_attributes is None:
            return self.user_factors.weight[: self.n_users]
        users = torch.arange(self.user_attributes.n_rows, device=self.global_bias.device)
        return self.user_representation(users)[:, :-1]


class NeuMF(Scorer):
    """Neural matrix factorization (He et al., 2017): GMF and MLP fused.

    ``score = w . [p_u^G * q_i^G, MLP([p_u^M, q_i^M])] + mu + b_u + b_i``.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces (each table gets an extra zero row for
        unknown ids).
    n_components : int, default=32
        Dimension of the GMF and of the MLP embeddings.
    hidden_layer_sizes : tuple of int, default=(64, 32)
        Widths of the MLP tower's hidden layers (ReLU).
    dropout : float, default=0.0
        Dropout after each hidden layer.
    global_bias : float, default=0.0
        Initial learned offset ``mu``.
    init_std : float, default=0.1
        Standard deviation of the embeddings' normal initialisation.
    sparse : bool, default=False
        Embedding tables with sparse gradients (see :class:`BiasedMF`); the
        tower's layers stay dense.
    """

    def __init__(
        self, n_users, n_items, n_components=32, hidden_layer_sizes=(64, 32),
        dropout=0.0, global_bias=0.0, init_std=0.1, sparse=False,
    ):
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.n_components = n_components
        self.init_std = init_std
        self.initial_global_bias = float(global_bias)
        d = n_components
        self.user_gmf = _embedding(n_users, d, sparse)
        self.item_gmf = _embedding(n_items, d, sparse)
        self.user_mlp = _embedding(n_users, d, sparse)
        self.item_mlp = _embedding(n_items, d, sparse)
        self.user_bias = _embedding(n_users, 1, sparse)
        self.item_bias = _embedding(n_items, 1, sparse)
        self.global_bias = nn.Parameter(torch.tensor(self.initial_global_bias))
        sizes = [2 * d, *hidden_layer_sizes]
        # The first layer is split into user and item halves so that scoring
        # all items for a block of users needs one (B, n, h) activation only.
        self.first_user = nn.Linear(d, sizes[1])
        self.first_item = nn.Linear(d, sizes[1], bias=False)
        layers = [nn.ReLU(), Dropout(dropout)]
        for h_in, h_out in zip(sizes[1:-1], sizes[2:]):
            layers += [nn.Linear(h_in, h_out), nn.ReLU(), Dropout(dropout)]
        self.tower = nn.Sequential(*layers)
        self.output = nn.Linear(d + sizes[-1], 1, bias=False)
        self.score_cost = sizes[1]
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        """PyTorch's default layers, embeddings from N(0, ``init_std``)."""
        init_parameters(self, generator)
        for table in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            init_rows(table, self.init_std, generator)
        init_rows(self.user_bias, 0)
        init_rows(self.item_bias, 0)
        with torch.no_grad():
            self.global_bias.fill_(self.initial_global_bias)

    def user_representation(self, users):
        return torch.cat(
            [self.user_gmf(users), self.user_mlp(users), self.user_bias(users)], dim=1
        )

    def _split_user(self, user_repr):
        d = self.n_components
        return user_repr[:, :d], user_repr[:, d : 2 * d], user_repr[:, 2 * d]

    def _item_side(self, items=None):
        if items is None:
            n = self.n_items
            return (
                self.item_gmf.weight[:n],
                self.item_mlp.weight[:n],
                self.item_bias.weight[:n, 0],
            )
        return self.item_gmf(items), self.item_mlp(items), self.item_bias(items)[..., 0]

    def _fuse(self, gmf, hidden_in):
        mlp = self.tower(hidden_in)
        return self.output(torch.cat([gmf, mlp], dim=-1))[..., 0]

    def score_pairs(self, user_repr, items):
        ug, um, ub = self._split_user(user_repr)
        ig, im, ib = self._item_side(items)
        h = self.first_user(um) + self.first_item(im)
        return self._fuse(ug * ig, h) + ub + ib + self.global_bias

    def score_all(self, user_repr, items=None):
        ug, um, ub = self._split_user(user_repr)
        ig, im, ib = self._item_side(items)
        h = self.first_user(um)[:, None, :] + self.first_item(im)[None, :, :]
        gmf = ug[:, None, :] * ig[None, :, :]
        return self._fuse(gmf, h) + ub[:, None] + ib[None, :] + self.global_bias

    def _score_many(self, ug, um, ub, items):
        # items: (B, m); user parts (B, .)
        ig, im, ib = self._item_side(items)
        h = self.first_user(um)[:, None, :] + self.first_item(im)
        return self._fuse(ug[:, None, :] * ig, h) + ub[:, None] + ib + self.global_bias

    def forward(self, users, items, neg_items=None):
        u = self.user_representation(users)
        ug, um, ub = self._split_user(u)
        pos = self._score_many(ug, um, ub, items[:, None])[:, 0]
        ig, im, ib = self._item_side(items)
        penalty = (u * u).sum(-1) + (ig * ig).sum(-1) + (im * im).sum(-1) + ib * ib
        neg = None
        if neg_items is not None:
            neg = self._score_many(ug, um, ub, neg_items)
            ng, nm, nb = self._item_side(neg_items)
            penalty = penalty + ((ng * ng).sum(-1) + (nm * nm).sum(-1) + nb * nb).mean(1)
        return pos, neg, penalty

    def user_embeddings(self):
        return self.user_gmf.weight[: self.n_users]

    def item_embeddings(self):
        return self.item_gmf.weight[: self.n_items]
