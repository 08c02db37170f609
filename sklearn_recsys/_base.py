"""Base class shared by the recommenders: input handling, unknown ids,
``predict``, ``recommend``, fold-in of new users and ``score``."""

import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._input import (
    IdIndex,
    check_k,
    check_targets,
    interactions_to_csr,
    is_table,
    matrix_to_interactions,
    table_to_interactions,
)
from ._training import resolve_device

# Upper bound on the floats of one block of scores, so that scoring all items
# for many users never materialises the full user x item matrix.
_SCORE_BLOCK = 2**24


def _check_users_1d(users):
    users = np.asarray(users)
    if users.ndim == 0:
        users = users.reshape(1)
    if users.ndim != 1:
        raise ValueError(
            "users must be a 1-D array-like of user ids, or a 2-D user x item "
            f"matrix / interaction table of histories; got shape {users.shape}."
        )
    if len(users) == 0:
        raise ValueError("users is empty: pass at least one user.")
    return users


class BaseRecommender(BaseEstimator):
    """Shared plumbing for the recommenders of this package.

    Subclasses implement ``_fit(data, device, seed)`` that trains on an
    :class:`~sklearn_recsys._input.Interactions` record and sets the fitted
    module; and ``_module()`` returning the fitted scoring module (see
    :mod:`sklearn_recsys.nn`).
    """

    _parameter_constraints = {
        "handle_unknown": [StrOptions({"error", "fallback"})],
        "user_col": [str, numbers.Integral],
        "item_col": [str, numbers.Integral],
        "device": [str],
        "random_state": ["random_state"],
    }

    # -- fitting -----------------------------------------------------------

    def _validate_fit_input(self, X, y):
        """Map ids, record the id spaces and the seen-item matrix."""
        if is_table(X):
            data, self._user_index, self._item_index = table_to_interactions(
                X,
                y,
                user_col=self.user_col,
                item_col=self.item_col,
                time_col=self._fit_time_col(),
            )
            self._convention = "table"
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
        else:
            if y is not None:
                warnings.warn(
                    "y is ignored for a user x item matrix: its stored values "
                    "are the targets.",
                    UserWarning,
                )
            Xm = self._check_matrix(X, reset=True)
            data = matrix_to_interactions(Xm)
            self._user_index = IdIndex(np.arange(Xm.shape[0]))
            self._item_index = IdIndex(np.arange(Xm.shape[1]))
            self._convention = "matrix"
        self._seen = interactions_to_csr(
            data.users, data.items, None, (len(self._user_index), len(self._item_index))
        )
        self._seen.data[:] = 1.0
        return data

    # dtype of the validated user x item matrix
    _matrix_dtype = np.float32

    def _fit_time_col(self):
        """Time column read (and validated) at fit; None when not needed."""
        return getattr(self, "time_col", None)

    def _check_matrix(self, X, *, reset):
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        if getattr(X, "ndim", 2) == 1:
            raise ValueError(
                "Expected a 2-D user x item matrix (or a pandas DataFrame "
                "interaction table), got a 1-D array. Reshape your data with "
                "array.reshape(1, -1) for a single user, or pass an interaction "
                "table."
            )
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=["csr", "csc", "coo"],
            dtype=[np.float32, np.float64],
            ensure_all_finite=True,
        )
        X = sp.csr_array(X, dtype=self._matrix_dtype)
        X.sum_duplicates()
        X.sort_indices()
        if not reset and X.shape[1] != len(self._item_index):
            # a table-fitted model has no n_features_in_ for validate_data
            raise ValueError(
                f"X has {X.shape[1]} columns but {type(self).__name__} was fitted "
                f"with {len(self._item_index)} items: the columns of a user x item "
                "matrix are the fitted items (see item_ids_)."
            )
        return X

    def _seed_and_device(self):
        rng = check_random_state(self.random_state)
        return int(rng.randint(np.iinfo(np.int32).max)), resolve_device(self.device)

    # -- id handling -------------------------------------------------------

    def _unknown(self, kind, raw_ids, mask):
        if not mask.any():
            return
        if self.handle_unknown == "error":
            unknown = pd.unique(np.asarray(raw_ids)[mask])
            shown = ", ".join(repr(u) for u in unknown[:10].tolist())
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(
                f"Found {len(unknown)} {kind} id(s) not seen during fit: {shown}"
                f"{more}. Set handle_unknown='fallback' to score them with the "
                "fitted biases/popularity instead."
            )

    def _apply_unknown(self, kind, raw, idx):
        """Apply ``handle_unknown`` to looked-up indices (``-1`` = unknown)."""
        unknown = idx < 0
        self._unknown(kind, np.asarray(raw), unknown)
        idx = idx.copy()
        idx[unknown] = len(self._user_index if kind == "user" else self._item_index)
        return idx  # unknown ids point at the zero padding row

    def _check_matrix_indices(self, kind, raw):
        """For a model fitted on a matrix, ids are row/column indices."""
        if self._convention != "matrix":
            return raw
        raw = np.asarray(raw)
        if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
        if raw.dtype.kind not in "iu" or (raw < 0).any():
            raise ValueError(
                f"This estimator was fitted on a user x item matrix, so {kind} ids "
                f"are {'row' if kind == 'user' else 'column'} indices: non-negative "
                f"integers. Got {raw[:10].tolist()}."
            )
        return raw

    def _map_users(self, raw):
        raw = self._check_matrix_indices("user", raw)
        return self._apply_unknown("user", raw, self._user_index.transform(raw))

    @property
    def user_ids_(self):
        """ndarray of shape (n_users,): raw user ids in index order."""
        check_is_fitted(self)
        return self._user_index.ids

    @property
    def item_ids_(self):
        """ndarray of shape (n_items,): raw item ids in index order."""
        check_is_fitted(self)
        return self._item_index.ids

    # -- scoring helpers ---------------------------------------------------

    def _device(self):
        module = self._module()
        for tensor in (*module.parameters(), *module.buffers()):
            return tensor.device
        return torch.device("cpu")

    def _postprocess_scores(self, scores):
        """Map raw model outputs to ``predict`` values (e.g. sigmoid)."""
        return scores

    def _user_block(self, n_candidates):
        cost = getattr(self._module(), "score_cost", 1)
        return max(1, _SCORE_BLOCK // max(1, n_candidates * cost))

    @torch.no_grad()
    def _score_pairs(self, user_repr, items, rows=None):
        """Scores of (row of user_repr, item) pairs, in blocks."""
        module = self._module()
        module.eval()
        device = self._device()
        out = np.empty(len(items), dtype=np.float32)
        items_t = torch.as_tensor(items, device=device)
        rows_t = None if rows is None else torch.as_tensor(rows, device=device)
        block = max(1, _SCORE_BLOCK // getattr(module, "score_cost", 1) // 8)
        for s in range(0, len(items), block):
            sl = slice(s, s + block)
            u = user_repr[sl] if rows_t is None else user_repr[rows_t[sl]]
            out[sl] = module.score_pairs(u, items_t[sl]).float().cpu().numpy()
        return out

    @torch.no_grad()
    def _known_user_repr(self, users_idx):
        module = self._module()
        module.eval()
        return module.user_representation(
            torch.as_tensor(users_idx, device=self._device())
        )

    # -- fold-in -----------------------------------------------------------

    def _histories(self, X):
        """A CSR (n_new_users, n_items) of histories, and raw row labels.

        ``X`` is a user x item matrix with the fitted items as columns, or an
        interaction table whose users are returned in order of first
        appearance (unknown items are dropped under ``"fallback"``).
        """
        if is_table(X):
            data, _, _ = table_to_interactions(
                X,
                None,
                user_col=self.user_col,
                item_col=self.item_col,
                user_index=IdIndex(np.array([], dtype=object)),
                item_index=self._item_index,
            )
            self._unknown("item", X[self.item_col].to_numpy(), data.items < 0)
            rows, labels = pd.factorize(X[self.user_col].to_numpy(), sort=False)
            keep = data.items >= 0
            values = self._history_values(X)
            values = None if values is None else values[keep]
            H = interactions_to_csr(
                rows[keep], data.items[keep], values, (len(labels), len(self._item_index))
            )
            return H, np.asarray(labels)
        H = self._check_matrix(X, reset=False)
        return H, np.arange(H.shape[0])

    def _history_values(self, X):
        return None

    def transform(self, X):
        """User factors of users given by their histories (fold-in).

        The item side of the model stays frozen; each row's user
        representation is estimated from its stored entries alone, so rows are
        processed independently.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items) or DataFrame
            User x item matrix of histories (columns = the fitted items), or
            an interaction table whose users are folded in in order of first
            appearance.

        Returns
        -------
        factors : ndarray of shape (n_users, n_factors)
            The folded-in user factors (without biases).
        """
        check_is_fitted(self)
        H, _ = self._histories(X)
        reprs = self._fold_in(H)
        return self._factors_of(reprs).cpu().numpy()

    def fit_transform(self, X, y=None):
        """Fit, then return the users' factors as :meth:`transform` would.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
        y : array-like of shape (n_interactions,), default=None

        Returns
        -------
        factors : ndarray of shape (n_users, n_factors)
        """
        return self.fit(X, y).transform(X)

    def _factors_of(self, reprs):
        return reprs[:, :-1]

    def _fold_in(self, H):
        raise NotImplementedError

    # -- public API ----------------------------------------------------------

    def predict(self, X):
        """Predict scores for interactions.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            An interaction table (one score per row), or a user x item matrix
            whose rows are histories: each row is folded in and its stored
            entries are scored.

        Returns
        -------
        scores : ndarray of shape (n_rows,) or sparse matrix of shape (n_users, n_items)
            For a table, one score per row. For a sparse matrix, a sparse
            matrix with the same pattern holding the predicted scores; for a
            dense matrix, a dense array with scores at its non-zero entries and
            zeros elsewhere.
        """
        check_is_fitted(self)
        if is_table(X):
            if self._convention != "table":
                raise TypeError(
                    "This estimator was fitted on a user x item matrix; predict "
                    "needs a matrix with the same items as columns, not a "
                    "DataFrame."
                )
            data, _, _ = table_to_interactions(
                X,
                None,
                user_col=self.user_col,
                item_col=self.item_col,
                user_index=self._user_index,
                item_index=self._item_index,
            )
            users = self._apply_unknown("user", X[self.user_col], data.users)
            items = self._apply_unknown("item", X[self.item_col], data.items)
            uniq, inv = np.unique(users, return_inverse=True)
            reprs = self._known_user_repr(uniq)
            return self._postprocess_scores(self._score_pairs(reprs, items, rows=inv))
        was_sparse = sp.issparse(X)
        is_sparray = isinstance(X, sp.sparray)
        H = self._check_matrix(X, reset=False)
        reprs = self._fold_in(H)
        coo = H.tocoo()
        values = self._postprocess_scores(
            self._score_pairs(reprs, coo.col.astype(np.int64), rows=coo.row)
        )
        out = sp.csr_array((values, (coo.row, coo.col)), shape=H.shape)
        if not was_sparse:
            return out.toarray()
        return out if is_sparray else sp.csr_matrix(out)

    def _user_reprs_for(self, users):
        """User representations and seen-item CSR for ``recommend``."""
        if is_table(users) or sp.issparse(users) or getattr(users, "ndim", 1) == 2:
            H, _ = self._histories(users)
            return self._fold_in(H), H
        return self._known_user_reprs(users)

    def _known_user_reprs(self, users):
        """Representations and seen items of users given by their raw ids."""
        users = _check_users_1d(users)
        idx = self._map_users(users)
        reprs = self._known_user_repr(idx)
        known = idx < self._seen.shape[0]
        seen = self._seen[np.where(known, idx, 0)]
        if not known.all():  # unknown users (fallback row) have seen nothing
            seen = sp.csr_array(seen.multiply(known[:, None].astype(np.float32)))
            seen.eliminate_zeros()
        return reprs, seen

    @torch.no_grad()
    def recommend(self, users, k=10, *, exclude_seen=True, items=None):
        """Top-``k`` items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,), DataFrame or matrix
            Raw ids of users seen at fit; or histories of new users to fold in
            without refitting: a user x item matrix (rows = users, columns =
            the fitted items) or an interaction table (users in order of first
            appearance).
        k : int, default=10
            Number of items per user. Clipped to the number of candidate
            items.
        exclude_seen : bool, default=True
            Leave out items the user interacted with at fit (or in the given
            history).
        items : array-like of shape (n_candidates,), default=None
            Raw ids of the candidate items (an allow-list); all fitted items
            when None.

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids, best first.
        scores : ndarray of shape (n_users, k)
            Their scores. A user with fewer than ``k`` eligible items gets its
            remaining slots filled with excluded items scored ``-inf``.
        """
        check_is_fitted(self)
        k = check_k(k)
        reprs, seen = self._user_reprs_for(users)
        n_items = len(self._item_index)
        device = self._device()
        if items is None:
            cand = None
            n_cand = n_items
        else:
            raw = self._check_matrix_indices("item", np.asarray(items).ravel())
            if len(raw) == 0:
                raise ValueError("items is empty: pass at least one candidate item.")
            cand_np = self._item_index.transform(raw)
            if (cand_np < 0).any():
                bad = raw[cand_np < 0][:10].tolist()
                raise ValueError(f"items contains ids not seen during fit: {bad}.")
            cand_np = np.unique(cand_np)
            cand = torch.as_tensor(cand_np, device=device)
            n_cand = len(cand_np)
            position = np.full(n_items, -1, dtype=np.int64)
            position[cand_np] = np.arange(n_cand)
        k = min(k, n_cand)
        module = self._module()
        module.eval()
        n_users = reprs.shape[0]
        out_idx = np.empty((n_users, k), dtype=np.int64)
        out_scores = np.empty((n_users, k), dtype=np.float32)
        block = self._user_block(n_cand)
        for s in range(0, n_users, block):
            e = min(s + block, n_users)
            scores = module.score_all(reprs[s:e], cand).float()
            if exclude_seen:
                part = seen[s:e].tocoo()
                cols = part.col if cand is None else position[part.col]
                ok = cols >= 0
                if ok.any():
                    scores[
                        torch.as_tensor(part.row[ok], device=device),
                        torch.as_tensor(cols[ok], device=device),
                    ] = -torch.inf
            top_scores, top = torch.topk(scores, k, dim=1)
            top = top if cand is None else cand[top]
            out_idx[s:e] = top.cpu().numpy()
            out_scores[s:e] = top_scores.cpu().numpy()
        return self._item_index.inverse_transform(out_idx), out_scores

    @torch.no_grad()
    def similar_items(self, items, k=10):
        """Most similar items by cosine similarity of the item embeddings.

        Parameters
        ----------
        items : array-like of shape (n_queries,)
            Raw ids of items seen at fit.
        k : int, default=10
            Number of neighbours per item (the item itself excluded).

        Returns
        -------
        item_ids : ndarray of shape (n_queries, k)
            Raw ids of each query item's neighbours, most similar first.
        similarities : ndarray of shape (n_queries, k)
            Their cosine similarities to the query item.
        """
        check_is_fitted(self)
        k = check_k(k)
        raw = self._check_matrix_indices("item", _check_users_1d(items))
        idx = self._item_index.transform(raw)
        if (idx < 0).any():
            raise ValueError(
                f"items contains ids not seen during fit: {raw[idx < 0][:10].tolist()}."
            )
        emb = torch.nn.functional.normalize(self._module().item_embeddings().float(), dim=1)
        k = min(k, emb.shape[0] - 1)
        if k < 1:
            raise ValueError("similar_items needs at least two fitted items.")
        q = torch.as_tensor(idx, device=emb.device)
        sims = emb[q] @ emb.T
        sims[torch.arange(len(idx), device=emb.device), q] = -torch.inf
        top_s, top = torch.topk(sims, k, dim=1)
        return self._item_index.inverse_transform(top.cpu().numpy()), top_s.cpu().numpy()

    def score(self, X, y=None):
        """Default score (greater is better).

        * ``loss="mse"`` (ratings): the negative root mean squared error of
          the predicted ratings. For a table, against ``y``; for a matrix,
          each row's entries are split (20% held out, seed 0), the rest is
          folded in and the held-out values are predicted.
        * implicit losses: NDCG@10 with
          :func:`~sklearn_recsys.metrics.make_ranking_scorer` defaults (seen
          items excluded).

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Test interactions (table) or held-out users (matrix).
        y : array-like of shape (n_interactions,), default=None
            Test ratings of a table (required for ``loss="mse"``).

        Returns
        -------
        score : float
        """
        from .metrics._scorer import ranking_score, split_rows

        check_is_fitted(self)
        if getattr(self, "loss", None) != "mse":
            return ranking_score(self, X, y)
        if is_table(X):
            if y is None:
                raise ValueError("score needs the test ratings y for loss='mse'.")
            y = check_targets(y, len(X))
            pred = self.predict(X)
            return -float(np.sqrt(np.mean((pred - y) ** 2)))
        H = self._check_matrix(X, reset=False)
        fold_in, held_out = split_rows(H, 0.2, random_state=0)
        if held_out.nnz == 0:
            raise ValueError(
                "No row has two or more stored entries to split into a fold-in "
                "history and held-out ratings."
            )
        reprs = self._fold_in(fold_in)
        coo = held_out.tocoo()
        pred = self._score_pairs(reprs, coo.col.astype(np.int64), rows=coo.row)
        return -float(np.sqrt(np.mean((pred - coo.data) ** 2)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = False
        tags.non_deterministic = False
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags
