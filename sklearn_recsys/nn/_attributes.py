"""Attribute embeddings: the learned vector of each row's features, summed.

A row (a user or an item) has up to ``width`` ``(feature, weight)`` pairs,
held as two buffers (the fitted encoding of its attributes, see
:class:`sklearn_recsys.Attributes`); its vector is ``sum_j weight_j *
E[feature_j]`` (LightFM's feature sum). Feature ``n_features`` is the
padding: a zero row of ``E`` with weight 0.
"""

import numpy as np
import torch
from torch import nn

from ._random import current_generator, take

__all__ = ["AttributeEmbedding", "drop_rows"]


class AttributeEmbedding(nn.Module):
    """``(n_rows + 1)`` rows of weighted features and their embedding table.

    ``embedding`` is the attribute part added to an id's own vector. With
    ``standalone=True``, a linear map of the features (buffers
    ``standalone_weight`` and ``standalone_bias``, set by the estimator
    after training) gives the whole vector of the rows without an id of
    their own (``has_id`` False: ids without training interactions, ids
    registered after fit, the last row).

    Parameters
    ----------
    n_rows : int
        Number of rows (users or items); one more row (the last) is the
        unknown id, without features.
    n_features : int
        Number of features.
    width : int
        Features per row (padded).
    dim : int
        Dimension of the embeddings.
    standalone : bool, default=False
        Hold the standalone map of the rows without an id.
    """

    def __init__(self, n_rows, n_features, width, dim, standalone=False):
        super().__init__()
        self.n_features = n_features
        self.embedding = nn.Embedding(n_features + 1, dim, padding_idx=n_features)
        self.register_buffer(
            "feature_index", torch.full((n_rows + 1, width), n_features, dtype=torch.long)
        )
        self.register_buffer("feature_weight", torch.zeros(n_rows + 1, width))
        self.register_buffer("has_id", torch.zeros(n_rows + 1, dtype=torch.bool))
        self.register_buffer(
            "standalone_weight", torch.zeros(n_features + 1, dim) if standalone else None
        )
        self.register_buffer("standalone_bias", torch.zeros(dim) if standalone else None)
        # training only: whether each row has training interactions, and its
        # probability of dropping its id's own part
        self.register_buffer(
            "trained", torch.ones(n_rows + 1, dtype=torch.bool), persistent=False
        )
        self.register_buffer("id_dropout", torch.zeros(n_rows + 1), persistent=False)
        self.all_trained = True

    @property
    def n_rows(self):
        return self.feature_index.shape[0] - 1

    def reset_parameters(self, std=0.0, generator=None):
        """Embeddings from N(0, ``std``) (zeros for 0), the padding row zero."""
        with torch.no_grad():
            if std:
                nn.init.normal_(self.embedding.weight, std=std, generator=generator)
            else:
                self.embedding.weight.zero_()
            self.embedding.weight[self.n_features].zero_()

    def mask_untrained(self, offset):
        """``offset`` (per-row scores added to every user's) with the rows
        without training interactions pushed out of the softmax: they are
        unknown, not negatives. A very negative offset rather than a masked
        ``(users, rows)`` score matrix: one vector to write, not a matrix."""
        if self.all_trained:
            return offset
        return offset.masked_fill(~self.trained[:-1], torch.finfo(offset.dtype).min / 4)

    @torch.no_grad()
    def set_standalone(self, weight, bias):
        """The map ``(n_features, dim)``, ``(dim,)`` of the rows without an id."""
        device = self.standalone_weight.device
        self.standalone_weight[:-1] = torch.as_tensor(weight, device=device)
        self.standalone_bias.copy_(torch.as_tensor(bias, device=device))

    @torch.no_grad()
    def set_rows(self, index, weight, has_id=None):
        """Replace the rows' features (``(n_rows + 1, width)`` each) and ids."""
        device = self.feature_index.device
        self.feature_index = torch.as_tensor(index, dtype=torch.long, device=device)
        self.feature_weight = torch.as_tensor(
            weight, dtype=self.feature_weight.dtype, device=device
        )
        self.has_id = (
            torch.zeros(len(index), dtype=torch.bool, device=device) if has_id is None
            else torch.as_tensor(has_id, dtype=torch.bool, device=device)
        )
        self.id_dropout = torch.zeros(len(index), device=device)
        self.trained = torch.ones(len(index), dtype=torch.bool, device=device)
        self.all_trained = True

    @torch.no_grad()
    def set_training_rows(self, trained, id_dropout):
        """Training only: which rows ``(n_rows + 1,)`` have interactions, and
        each row's probability of dropping its id's part."""
        device = self.feature_index.device
        self.trained = torch.as_tensor(trained, dtype=torch.bool, device=device)
        self.all_trained = bool(np.all(np.asarray(trained)[:-1]))
        self.id_dropout = torch.as_tensor(
            id_dropout, dtype=self.feature_weight.dtype, device=device
        )

    def forward(self, rows=None, standalone=False):
        """Vectors ``(*rows.shape, dim)`` of the rows (all but the last when None).

        ``standalone=True``: from the standalone table.
        """
        if rows is None:
            index, weight = self.feature_index[:-1], self.feature_weight[:-1]
            n, width = index.shape
            table = self.standalone_weight if standalone else self.embedding.weight
            if self.n_features + 1 <= width * table.shape[1]:
                # every row, few features: one dense product, no (n, width,
                # dim) gather (a dense row of features is smaller than that)
                dense = torch.zeros(n, self.n_features + 1, dtype=table.dtype,
                                    device=table.device).scatter_add_(1, index, weight)
                out = dense @ table
                return out + self.standalone_bias if standalone else out
        else:
            index, weight = self.feature_index[rows], self.feature_weight[rows]
        return self.embed(index, weight, standalone)

    def embed(self, index, weight, standalone=False):
        """Vectors of rows given by their features ``index`` and ``weight``."""
        table = self.standalone_weight if standalone else self.embedding.weight
        vectors = take(table, index)
        out = (vectors * weight[..., None].to(vectors.dtype)).sum(-2)
        return out + self.standalone_bias if standalone else out

    def parts(self, rows, own):
        """``(own, attribute part)`` of ``rows`` (None: all); in training,
        ``own`` rows are dropped with their ``id_dropout``.

        Their sum is the training representation (:meth:`combined`); the
        models penalise the two parts apart (see
        :class:`~sklearn_recsys.nn.BiasedMF`).
        """
        if self.training:
            select = slice(0, -1) if rows is None else rows
            own = drop_rows(own, self.id_dropout[select])
        return own, self(rows)

    def combined(self, rows, own):
        """``own`` (the ids' vectors) plus the attribute part of ``rows`` (None: all).

        In training, ``own`` rows are dropped with their ``id_dropout``; in
        evaluation, rows without an id take their standalone vector.
        """
        if self.training:
            own, attributes = self.parts(rows, own)
            return own + attributes
        select = slice(0, -1) if rows is None else rows
        out = own + self(rows)
        if self.standalone_weight is None:
            return out
        return torch.where(self.has_id[select][..., None], out, self(rows, standalone=True))


def drop_rows(x, p):
    """``x`` with row ``r`` zeroed with probability ``p[r]`` (no rescaling).

    The rows are ids' own embeddings: dropping some in training makes the
    attribute part of a representation work alone, as it must for ids
    without interactions (DropoutNet, Volkovs et al. 2017). Draws from the
    fit's current generator.
    """
    keep = torch.rand(x.shape[:-1], generator=current_generator(x.device), device=x.device)
    return x * (keep >= p).to(x.dtype)[..., None]
