"""The base of every recommender: the one ``fit``, input handling, unknown
ids, ``predict``, ``recommend``, fold-in of new users and ``score``.

``BaseRecommender.fit`` is the only ``fit`` of the package. It validates the
input into a :class:`FitData` record (nothing on the estimator changes), asks
the subclass for the fitted state (:meth:`BaseRecommender._fit`), and replaces
the previous fitted state at once: a fit that raises leaves the estimator as
it was. See the developer guide ("Adding a recommender") for the hooks.
"""

import copyreg
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._attributes import Attributes
from ._evaluation import ranking_score, split_rows
from ._input import (
    IdIndex,
    Interactions,
    as_id_array,
    as_input,
    check_ids,
    check_k,
    check_targets,
    is_table,
    matrix_to_interactions,
    seen_matrix,
    table_to_interactions,
)
from ._portable import PORTABLE_VERSION, from_plain, to_plain
from ._sequence_data import history_lists, is_history_list
from ._topk import topk
from ._training import resolve_device

# Upper bound on the floats of one block of scores, so that scoring all items
# for many users never materialises the full user x item matrix.
_SCORE_BLOCK = 2**24


def available_device(device, doing):
    """``device``, or the CPU with a warning when it is CUDA and none is here."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"This estimator was fitted on {device!r}, which is not available here; "
            f"{doing} on the CPU instead.",
            UserWarning,
        )
        return "cpu"
    return device


def _refuse_int8_compute(estimator, what):
    """Models with int8 linear layers (``load(quantize="int8")``) serve only."""
    module = estimator._module()
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules()):
        raise ValueError(
            f"This model was loaded with quantize='int8' (int8 linear layers); {what} "
            "cannot store or export it. Use the float model (load without quantize)."
        )


def _check_users_1d(users, name="users"):
    users = as_id_array(users, name)
    if users.ndim == 0:
        users = users.reshape(1)
    if users.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array-like of ids, or a 2-D user x item "
            f"matrix / interaction table of histories; got shape {users.shape}."
        )
    if len(users) == 0:
        raise ValueError(f"{name} is empty: pass at least one id.")
    return users


@dataclass
class FitData:
    """What ``fit`` validated, handed to the fitting hooks.

    ``data`` holds the interactions as indices into ``user_index`` and
    ``item_index``; ``convention`` is ``"table"`` or ``"matrix"``; ``seed``
    and ``device`` are resolved from ``random_state`` and ``device``.
    """

    data: Interactions
    user_index: IdIndex
    item_index: IdIndex
    convention: str
    n_features_in: int | None
    seed: int
    device: str

    @property
    def n_users(self):
        return len(self.user_index)

    @property
    def n_items(self):
        return len(self.item_index)

    def seen(self):
        """Binary user x item CSR of the training interactions."""
        return seen_matrix(self.data.users, self.data.items, (self.n_users, self.n_items))


class BaseRecommender(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared plumbing for the recommenders of this package.

    Subclasses provide the fitted state through :meth:`_fit` (the neural
    models through :class:`~sklearn_recsys._neural.NeuralRecommender`),
    ``_module()`` returning the fitted :class:`~sklearn_recsys.nn.Scorer`,
    and ``_fold_in(histories)`` giving user representations of new users.
    """

    _parameter_constraints = {
        "handle_unknown": [StrOptions({"error", "fallback"})],
        "user_col": [str, numbers.Integral],
        "item_col": [str, numbers.Integral],
        "device": [str],
        "random_state": ["random_state"],
    }

    # dtype of the validated user x item matrix
    _matrix_dtype = np.float32
    # Sequence models: histories are ordered (time column, matrix values) and
    # recommend also reads lists of item-id lists.
    _sequential = False
    # Appended to the error for unknown candidate/query items.
    _unknown_item_hint = ""

    # -- the one fit ---------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the recommender.

        Parameters
        ----------
        X : DataFrame or {array-like, sparse matrix} of shape (n_users, n_items)
            Interaction table (one row per interaction) or user x item matrix
            (stored entries = interactions, values = targets or, for the
            sequence models, the order).
        y : array-like of shape (n_interactions,), default=None
            Targets of an interaction table (ratings, click labels or
            weights, as the model's loss reads them). Ignored for a matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample: of each interaction (row) of a
            table, of each user (row) of a matrix, whose interactions all take
            it. The neural models weight each interaction's term of the loss;
            :class:`Popularity` counts weighted interactions; :class:`ItemKNN`
            and :class:`EASE` weight the interaction values. Routed by
            scikit-learn's metadata routing (``set_fit_request``).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        X = as_input(X)
        fit = self._validate_fit_input(X, y)
        if sample_weight is not None:
            weights = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            ).astype(np.float32)
            fit.data.weights = weights if fit.convention == "table" else weights[fit.data.users]
        state = {
            "_user_index": fit.user_index,
            "_item_index": fit.item_index,
            "_seen": fit.seen(),
            "_convention": fit.convention,
        }
        if fit.n_features_in is not None:
            state["n_features_in_"] = fit.n_features_in
        state.update(self._fit(fit))
        self._set_fitted_state(state)
        return self

    def _fit(self, fit):
        """The model's fitted state (a dict of attributes) from ``fit``.

        Must not change the estimator: ``fit`` assigns the returned attributes
        only once everything succeeded.
        """
        raise NotImplementedError

    def _check_params(self):
        """Cross-parameter checks (none by default)."""

    def _extra_items(self):
        """``(parameter name, raw ids)`` of items beyond the interactions, or None."""
        return None

    def _extra_users(self):
        """``(parameter name, raw ids)`` of users beyond the interactions, or None."""
        return None

    def _set_fitted_state(self, state):
        for name in getattr(self, "_fitted_names", ()):
            self.__dict__.pop(name, None)
        self.__dict__.update(state)
        self._fitted_names = tuple(state)

    # -- portable state: artifacts (save/load) and skops ----------------------

    # Fitted attributes that are not stored (rebuilt or training-only).
    _NOT_PORTABLE = ()
    # Parameters naming this process's runtime (not the model), stored as None.
    _RUNTIME_PARAMS = ()
    # Network classes of your own (besides sklearn_recsys.nn's) that loading
    # this estimator's state may rebuild (skops trusts them with the class).
    _portable_modules = ()

    def _portable_fitted_state(self):
        """The fitted state in plain form (see :mod:`sklearn_recsys._artifact`)."""
        return {
            name: to_plain(self._portable_value(name)) for name in self._fitted_names
            if name not in self._NOT_PORTABLE
        }

    def _portable_value(self, name):
        return self.__dict__[name]

    def _restore_portable_state(self, fitted, device, trusted=()):
        """Set the fitted state from its plain form, on ``device``."""
        params = self.get_params(deep=False)
        for name in fitted:
            # fitted attributes only: no parameter, method, property or dunder
            if (
                not isinstance(name, str) or not name.isidentifier()
                or name.startswith("__") or name in params or hasattr(type(self), name)
            ):
                raise ValueError(
                    f"Unexpected fitted attribute {name!r} in the model state of "
                    f"{type(self).__name__}."
                )
        trusted = (*trusted, *type(self)._portable_modules)
        state = {name: from_plain(value, device, trusted) for name, value in fitted.items()}
        self._set_fitted_state(self._restored(state, device))

    def _restored(self, state, device):
        """Rebuild what ``_NOT_PORTABLE`` left out of a restored state."""
        return state

    def __reduce_ex__(self, protocol):
        # pickle, copy and joblib keep the full state (the skorch net with its
        # optimizer, for warm starts); ``__getstate__`` is the portable state
        if protocol < 2:
            return copyreg._reconstructor, (type(self), object, None), self._pickle_state()
        return copyreg.__newobj__, (type(self),), self._pickle_state()

    def _pickle_state(self):
        return BaseEstimator.__getstate__(self)

    def __getstate__(self):
        """Plain state: parameters and fitted arrays (what :mod:`skops.io` stores).

        Pickle and :func:`copy.deepcopy` keep the full state instead.
        """
        params = self.get_params(deep=False)
        params.update(dict.fromkeys(self._RUNTIME_PARAMS, None))
        state = {"_portable_format": PORTABLE_VERSION, "params": to_plain(params)}
        if getattr(self, "_fitted_names", None):
            _refuse_int8_compute(self, "skops")
            state["fitted"] = self._portable_fitted_state()
        return state

    def __setstate__(self, state):
        if "_portable_format" not in state:  # pickle
            super().__setstate__(state)
            return
        params = from_plain(state["params"])
        type(self).__init__(self, **params)
        if "fitted" in state:
            device = available_device(str(params.get("device", "cpu")), "loading it")
            self.device = device
            self._restore_portable_state(state["fitted"], resolve_device(device))

    def _fit_seed(self, seed):
        """The fit's seed, drawn from ``random_state``."""
        return seed

    def _fit_device(self):
        """The device this fit trains on, from ``device``."""
        return resolve_device(self.device)

    def _validate_fit_input(self, X, y):
        """Validate ``X``/``y`` into a :class:`FitData`; nothing is stored."""
        rng = check_random_state(getattr(self, "random_state", None))
        device = self._fit_device()  # checked before any collective call
        seed = self._fit_seed(int(rng.randint(np.iinfo(np.int32).max)))
        if is_table(X):
            data, user_index, item_index = table_to_interactions(
                X, y, user_col=self.user_col, item_col=self.item_col,
                time_col=self._fit_time_col(),
            )
            convention, n_features = "table", None
        else:
            if y is not None:
                warnings.warn(
                    "y is ignored for a user x item matrix: its stored values "
                    "are the targets.",
                    UserWarning,
                )
            Xm = self._check_matrix(X, reset=True)
            if Xm.nnz == 0:
                raise ValueError(
                    f"X is a {Xm.shape[0]} x {Xm.shape[1]} user x item matrix without "
                    "any stored entry: there is no interaction to learn from."
                )
            data = matrix_to_interactions(Xm)
            user_index, item_index = IdIndex(np.arange(Xm.shape[0])), IdIndex(np.arange(Xm.shape[1]))
            convention, n_features = "matrix", Xm.shape[1]
        fit = FitData(data, user_index, item_index, convention, n_features, seed, device)
        for kind, extra in (("item", self._extra_items()), ("user", self._extra_users())):
            if extra is not None:
                self._with_extra_ids(fit, kind, *extra)
        return fit

    @staticmethod
    def _with_extra_ids(fit, kind, name, raw_ids):
        """Add ids known from a parameter (content, attributes) to the id space."""
        index = getattr(fit, f"{kind}_index")
        missing = index.transform(raw_ids) < 0
        if not missing.any():
            return
        if fit.convention == "matrix":
            bad = np.asarray(raw_ids)[missing][:10].tolist()
            what = "columns" if kind == "item" else "rows"
            raise ValueError(
                f"With a user x item matrix, {kind} ids are {what[:-1]} indices, but "
                f"{name} has ids that are not {what} of X: {bad}. Add (empty) "
                f"{what} for {kind}s without interactions, or pass an interaction table."
            )
        new_index, _ = IdIndex.from_values(index.extended(raw_ids).ids)
        attr = f"{kind}s"
        setattr(fit.data, attr, new_index.transform(index.ids[getattr(fit.data, attr)]))
        setattr(fit, f"{kind}_index", new_index)

    def _fit_time_col(self):
        """Time column read (and validated) at fit; None when not needed."""
        return getattr(self, "time_col", None)

    def _check_matrix(self, X, *, reset):
        """A canonical CSR copy-on-need of a user x item matrix.

        The caller's arrays are never modified: a matrix with unsorted or
        duplicate entries is canonicalised on a copy.
        """
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        if getattr(X, "ndim", 2) == 1:
            raise ValueError(
                "Expected a 2-D user x item matrix (or a pandas DataFrame "
                "interaction table), got a 1-D array. Reshape your data with "
                "array.reshape(1, -1) for a single user, or pass an interaction "
                "table."
            )
        params = dict(
            accept_sparse=["csr", "csc", "coo"], dtype=[np.float32, np.float64],
            ensure_all_finite=True,
        )
        X = check_array(X, **params) if reset else validate_data(self, X, reset=False, **params)
        with np.errstate(over="ignore"):
            X = sp.csr_array(X, dtype=self._matrix_dtype)
        if not np.all(np.isfinite(X.data)):
            raise ValueError(
                f"X holds values beyond {np.dtype(self._matrix_dtype)}'s range; "
                "rescale them."
            )
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        if not reset and X.shape[1] != len(self._item_index):
            # a table-fitted model has no n_features_in_ for validate_data
            raise ValueError(
                f"X has {X.shape[1]} columns but {type(self).__name__} was fitted "
                f"with {len(self._item_index)} items: the columns of a user x item "
                "matrix are the fitted items (see item_ids_)."
            )
        return X

    # -- id handling -------------------------------------------------------

    def _unknown(self, kind, raw_ids, mask):
        if not mask.any() or self.handle_unknown != "error":
            return
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
        return idx  # unknown ids point at the fallback (padding) row

    def _check_matrix_indices(self, kind, raw):
        """Valid raw ids; for a model fitted on a matrix, row/column indices."""
        if self._convention != "matrix":
            return check_ids(raw, f"{kind} ids")
        raw = np.asarray(raw)
        if raw.dtype == object:  # numbers in an object array
            inferred = pd.api.types.infer_dtype(raw, skipna=False)
            try:
                if inferred == "integer":
                    raw = raw.astype(np.int64)
                elif inferred in ("floating", "mixed-integer-float"):
                    raw = raw.astype(np.float64)
            except OverflowError:  # beyond int64: no row/column has that index
                if all(v >= 0 for v in raw):
                    return raw  # unknown indices, handled by handle_unknown
        if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
            if (raw < 0).any():
                pass  # refused below
            elif (raw >= 2.0**63).any():  # beyond int64: no row/column has that index
                return np.array([int(v) for v in raw], dtype=object)
            else:
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

    def _map_items(self, raw, what="items"):
        """Indices of known raw item ids; unknown ones raise a ValueError."""
        raw = self._check_matrix_indices("item", _check_users_1d(raw, what))
        idx = self._item_index.transform(raw)
        if (idx < 0).any():
            raise ValueError(
                f"{what} contains ids not seen during fit: {raw[idx < 0][:10].tolist()}."
                + self._unknown_item_hint
            )
        return idx

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
        """Users scored at once against ``n_candidates`` items."""
        cost = self._module().score_cost
        return max(1, _SCORE_BLOCK // max(1, n_candidates * cost))

    def _score_pairs(self, user_repr, items, rows=None):
        """Scores of (row of user_repr, item) pairs, in blocks."""
        module = self._module()
        device = self._device()
        out = np.empty(len(items), dtype=np.float32)
        items_t = torch.as_tensor(items, device=device)
        rows_t = None if rows is None else torch.as_tensor(rows, device=device)
        block = max(1, _SCORE_BLOCK // module.score_cost // 8)
        with module.scoring():
            for s in range(0, len(items), block):
                sl = slice(s, s + block)
                u = user_repr[sl] if rows_t is None else user_repr[rows_t[sl]]
                out[sl] = module.score_pairs(u, items_t[sl]).float().cpu().numpy()
        return out

    def _known_user_repr(self, users_idx):
        """Representations of users given by index (``n_users`` = unknown)."""
        module = self._module()
        with module.scoring():
            return module.user_representation(
                torch.as_tensor(users_idx, device=self._device())
            )

    # -- histories of new users ------------------------------------------------

    def _histories(self, X, *, id_lists=False):
        """Histories of new users: an :class:`Interactions` record and labels.

        ``X`` is a user x item matrix with the fitted items as columns, an
        interaction table (users in order of first appearance; ordered by the
        time column for sequence models) or, with ``id_lists``, a list of
        lists of item ids. The record's ``users`` are row positions; unknown
        items raise under ``handle_unknown="error"`` and are dropped under
        ``"fallback"``.
        """
        if id_lists and is_history_list(X):
            histories, raw = history_lists(X, self._item_index)
            self._unknown("item", raw, histories.items < 0)
            return histories.subset(histories.items >= 0), np.arange(histories.n_rows)
        if is_table(X):
            data, _, _ = table_to_interactions(
                X, None, user_col=self.user_col, item_col=self.item_col,
                time_col=self.time_col if self._sequential else None,
                user_index=IdIndex.empty(), item_index=self._item_index,
            )
            self._unknown("item", X[self.item_col].to_numpy(), data.items < 0)
            data.users, labels = pd.factorize(X[self.user_col].to_numpy(), sort=False)
            data.n_rows = len(labels)
            return data.subset(data.items >= 0), np.asarray(labels)
        H = self._check_matrix(X, reset=False)
        return matrix_to_interactions(H), np.arange(H.shape[0])

    def _fold_in(self, histories):
        """User representations ``(n_rows, R)`` of an :class:`Interactions` of histories."""
        raise NotImplementedError

    def _user_features(self, reprs):
        """What :meth:`transform` returns for user representations."""
        return reprs[:, :-1]

    def transform(self, X):
        """Features of users given by their histories (fold-in, no refit).

        The model stays frozen; each history is read on its own, so rows are
        processed independently. What the features are depends on the model
        family: the user factors (factorization and CNN models), the encoder
        state after the last item (sequence models), or the scores of every
        item (closed-form baselines). The output follows ``set_output``
        (``transform="pandas"``: indexed by user, for a table the users in
        order of first appearance; ``"polars"``), with the columns of
        :meth:`get_feature_names_out`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items) or DataFrame
            User x item matrix of histories (columns = the fitted items), or
            an interaction table whose users are taken in order of first
            appearance.

        Returns
        -------
        features : ndarray of shape (n_users, n_features) or DataFrame
        """
        check_is_fitted(self)
        histories, labels = self._histories(as_input(X))
        features = self._user_features(self._fold_in(histories)).cpu().numpy()
        if _get_output_config("transform", self)["dense"] == "pandas":
            return pd.DataFrame(
                features, index=pd.Index(labels), columns=self.get_feature_names_out()
            )
        return np.asarray(features)

    @property
    def _n_features_out(self):
        """Number of features :meth:`transform` returns (for feature names)."""
        check_is_fitted(self)
        first = self._known_user_repr(np.zeros(1, dtype=np.int64))
        return int(self._user_features(first).shape[1])

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
        X = as_input(X)
        with self._module().scoring():
            if is_table(X):
                return self._predict_table(X)
            H = self._check_matrix(X, reset=False)
            histories = matrix_to_interactions(H)
            reprs = self._fold_in(histories)
            values = self._postprocess_scores(
                self._score_pairs(reprs, histories.items, rows=histories.users)
            )
        out = sp.csr_array((values, (histories.users, histories.items)), shape=H.shape)
        if not sp.issparse(X):
            return out.toarray()
        return out if isinstance(X, sp.sparray) else sp.csr_matrix(out)

    def _predict_table(self, X):
        if self._convention != "table":
            raise TypeError(
                "This estimator was fitted on a user x item matrix; predict "
                "needs a matrix with the same items as columns, not a "
                "DataFrame."
            )
        data, _, _ = table_to_interactions(
            X, None, user_col=self.user_col, item_col=self.item_col,
            user_index=self._user_index, item_index=self._item_index,
        )
        users = self._apply_unknown("user", X[self.user_col], data.users)
        items = self._apply_unknown("item", X[self.item_col], data.items)
        uniq, inv = np.unique(users, return_inverse=True)
        reprs = self._known_user_repr(uniq)
        return self._postprocess_scores(self._score_pairs(reprs, items, rows=inv))

    def _is_history_input(self, users):
        return (
            is_table(users)
            or sp.issparse(users)
            or getattr(users, "ndim", 1) == 2
            or (self._sequential and is_history_list(users))
        )

    def _attribute_user_reprs(self, attributes):
        """Representations of new users from their attributes (models reading them)."""
        raise TypeError(
            f"{type(self).__name__} does not read user attributes: recommend needs "
            "ids of users seen at fit, or histories of new users."
        )

    def _user_reprs_for(self, users):
        """User representations and seen-item CSR for ``recommend``."""
        if isinstance(users, Attributes):
            reprs = self._attribute_user_reprs(users)
            return reprs, sp.csr_array((len(users), len(self._item_index)), dtype=np.float32)
        if self._is_history_input(users):
            histories, _ = self._histories(users, id_lists=self._sequential)
            seen = seen_matrix(
                histories.users, histories.items, (histories.n_rows, len(self._item_index))
            )
            return self._fold_in(histories), seen
        idx = self._map_users(_check_users_1d(users))
        known = idx < self._seen.shape[0]
        seen = self._seen[np.where(known, idx, 0)]
        if not known.all():  # unknown users (fallback row) have seen nothing
            seen = sp.csr_array(seen.multiply(known[:, None].astype(np.float32)))
            seen.eliminate_zeros()
        return self._known_user_repr(idx), seen

    def _candidates(self, items, device):
        """Candidate item indices (a tensor), or None for all items."""
        if items is None:
            return None
        idx = self._map_items(np.asarray(as_id_array(items, "items")).ravel())
        return torch.as_tensor(np.unique(idx), device=device)

    def recommend(self, users, k=10, *, exclude_seen=True, items=None):
        """Top-``k`` items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,), DataFrame, matrix or Attributes
            Raw ids of users seen at fit; or histories of new users to fold
            in without refitting: a user x item matrix (rows = users, columns
            = the fitted items), an interaction table (users in order of first
            appearance) or, for the sequence models, a list of lists of item
            ids (oldest first); or, for a model fitted with
            ``user_attributes``, the :class:`Attributes` of new users
            (recommended to from their attributes alone, in the order of
            ``users.ids``).
        k : int, default=10
            Number of items per user. Clipped to the number of candidate
            items.
        exclude_seen : bool, default=True
            Leave out items the user interacted with at fit (or in the given
            history).
        items : array-like of shape (n_candidates,), default=None
            Raw ids of the candidate items (an allow-list); all items of the
            model when None.

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids, best first.
        scores : ndarray of shape (n_users, k)
            Their scores. A user with fewer than ``k`` eligible items gets its
            remaining slots filled with excluded items scored ``-inf``.

        Notes
        -----
        Equal scores are ranked by item index (the order of ``item_ids_``),
        lower first, on every device.
        """
        check_is_fitted(self)
        k = check_k(k)
        module = self._module()
        with module.scoring():
            cand = self._candidates(items, self._device())
            reprs, seen = self._user_reprs_for(
                users if isinstance(users, Attributes) else as_input(users)
            )
            n_cand = len(self._item_index) if cand is None else len(cand)
            top, top_scores = self._top_k(reprs, seen if exclude_seen else None, cand, min(k, n_cand))
        return self._item_index.inverse_transform(top), top_scores

    def _top_k(self, reprs, seen, cand, k):
        """Top-``k`` candidate indices and scores of each row of ``reprs``."""
        module = self._module()
        device = reprs.device
        n_items = len(self._item_index)
        n_cand = n_items if cand is None else len(cand)
        position = None
        if cand is not None and seen is not None:
            position = np.full(n_items, -1, dtype=np.int64)
            position[cand.cpu().numpy()] = np.arange(n_cand)
        n_users = reprs.shape[0]
        out_idx = np.empty((n_users, k), dtype=np.int64)
        out_scores = np.empty((n_users, k), dtype=np.float32)
        block = self._user_block(n_cand)
        for s in range(0, n_users, block):
            e = min(s + block, n_users)
            scores = module.score_all(reprs[s:e], cand).float()
            if seen is not None:
                part = seen[s:e].tocoo()
                cols = part.col if position is None else position[part.col]
                ok = cols >= 0
                scores[
                    torch.as_tensor(part.row[ok], device=device),
                    torch.as_tensor(cols[ok], device=device),
                ] = -torch.inf
            top_scores, top = topk(scores, k)
            top = top if cand is None else cand[top]
            out_idx[s:e] = top.cpu().numpy()
            out_scores[s:e] = top_scores.cpu().numpy()
        return out_idx, out_scores

    def similar_items(self, items, k=10):
        """Most similar items by cosine similarity of the item embeddings.

        Parameters
        ----------
        items : array-like of shape (n_queries,)
            Raw ids of items of the model.
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
        idx = self._map_items(items)
        module = self._module()
        with module.scoring():
            emb = torch.nn.functional.normalize(module.item_embeddings().float(), dim=1)
            k = min(k, emb.shape[0] - 1)
            if k < 1:
                raise ValueError("similar_items needs at least two fitted items.")
            q = torch.as_tensor(idx, device=emb.device)
            sims = emb[q] @ emb.T
            sims[torch.arange(len(idx), device=emb.device), q] = -torch.inf
            top_s, top = topk(sims, k)
        return self._item_index.inverse_transform(top.cpu().numpy()), top_s.cpu().numpy()

    def score(self, X, y=None, sample_weight=None):
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
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each test row (interaction of a table, user of a
            matrix) in the mean: squared errors are weighted per rating, a
            user's ranking metric by its row weight (the mean weight of its
            test interactions, for a table).

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        X = as_input(X)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if getattr(self, "loss", None) != "mse":
            return ranking_score(self, X, y, sample_weight=sample_weight)
        if is_table(X):
            if y is None:
                raise ValueError("score needs the test ratings y for loss='mse'.")
            y = check_targets(y, len(X)).astype(np.float64)
            pred = self.predict(X).astype(np.float64)
            return -float(np.sqrt(np.average((pred - y) ** 2, weights=sample_weight)))
        H = self._check_matrix(X, reset=False)
        fold_in, held_out = split_rows(H, 0.2, random_state=0)
        if held_out.nnz == 0:
            raise ValueError(
                "No row has two or more stored entries to split into a fold-in "
                "history and held-out ratings."
            )
        coo = held_out.tocoo()
        with self._module().scoring():
            reprs = self._fold_in(matrix_to_interactions(fold_in))
            pred = self._score_pairs(reprs, coo.col.astype(np.int64), rows=coo.row)
        weights = None if sample_weight is None else sample_weight[coo.row]
        errors = pred.astype(np.float64) - coo.data.astype(np.float64)
        return -float(np.sqrt(np.average(errors**2, weights=weights)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = False
        tags.non_deterministic = False
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags
