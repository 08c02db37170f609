"""Docstring fragments shared by the estimators, written once.

A class decorated with :func:`fill_doc` has every ``%(name)s`` of its
docstring replaced by the fragment ``name`` (as skorch composes the
docstrings of its nets, and pandas/MNE fill theirs). Fragments are
numpydoc entries indented for a class docstring.
"""

import re

_EARLY_STOPPING_PAIRS = """\
    early_stopping : bool or "auto", default=False
        Hold out ``validation_fraction`` of each user's interactions and stop
        when the validation loss (without the L2 term) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the best epoch's weights are
        kept. ``"auto"``: on when the data has more than 10,000
        interactions (and some validation data can be held out).
    validation_fraction : float, default=0.1
        Fraction of each user's interactions used for validation."""

_EARLY_STOPPING_SEQUENCES = """\
    early_stopping : bool or "auto", default=False
        Hold out the last item of a random ``validation_fraction`` of the
        users with three or more interactions (their training sequences stop
        one item earlier) and stop when the loss of predicting those items
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; the best
        epoch's weights are kept. ``"auto"``: on when the data has more than
        10,000 interactions (and some user has three).
    validation_fraction : float, default=0.1
        Fraction of the users whose last item validates."""

_PATIENCE = """\
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the validation loss.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit`` (same users
        and items required) instead of starting afresh."""

_SEQUENCE_LOSS = """\
    loss : {"auto", "softmax", "sampled_softmax", "bce"}, default="auto"
        ``"softmax"``: cross-entropy of the next item over the whole
        catalogue (a batch holds ``batch_size * max_len * n_items`` logits).
        ``"sampled_softmax"``: its estimate over the next item and
        ``n_negatives`` items drawn for the whole batch in proportion to
        their smoothed popularity, with the logQ correction: the cost of a
        batch does not grow with the catalogue. ``"bce"``: binary
        cross-entropy of the next item against ``n_negatives`` negatives
        sampled per position (SASRec's original loss). ``"auto"``:
        ``"softmax"`` while a batch's logits fit in 2**26 floats (e.g. up to
        about 20k items with the default batch), else ``"sampled_softmax"``.
    n_negatives : int or "auto", default="auto"
        Negatives per position for ``loss="bce"`` (uniform among the items
        the user never interacted with; "auto": 1), or items shared by a
        batch for ``"sampled_softmax"`` ("auto": 1024)."""

_SEQUENCE_SOLVER = """\
    solver : {"auto", "adam", "sparse_adam"}, default="auto"
        ``"adam"``: dense gradients and :class:`torch.optim.Adam`; every step
        updates the whole item table, ``O(n_items x embedding_dim)``.
        ``"sparse_adam"``: item tables with sparse gradients and
        :class:`~sklearn_recsys.nn.SparseDenseAdam` (lazy Adam on the items a
        batch read), so that a step of a sampled loss costs the batch, not
        the catalogue; not with the full softmax (it reads every item), nor
        with ``item_attributes``, ``differential_privacy`` or an
        ``accelerator`` of several processes. ``"auto"``: ``"sparse_adam"``
        when the loss samples and the catalogue exceeds 8 times the items a
        batch reads (``batch_size * max_len`` positions plus the negatives),
        else ``"adam"``. ``alpha`` then decays the rows a batch read."""

_SEQUENCE_ITEM_ATTRIBUTES = """\
    item_attributes : Attributes, default=None
        Attributes of the items, keyed by raw id (see :class:`Attributes`):
        an item's input and output embeddings (and output bias) are then its
        id's plus the weighted sum of the embeddings of its attribute
        features, and the items of the table without interactions join the
        catalogue, scored from a ridge map of their attributes (they are
        left out of the full softmax in training).
    user_attributes : Attributes, default=None
        Attributes of the users, keyed by raw id (see :class:`Attributes`):
        the model reads a user token, the weighted sum of the embeddings of
        the user's attribute features, before the user's items (the
        attention as a leading token every position attends to, the LSTM as
        its first input, which conditions the state the items start from),
        and the token's own state learns the user's items (eight drawn from
        the user's history per training window at every batch). Users of the table without
        interactions join the users, recommended to from their attributes
        alone (the token's state), and so are new users with
        ``recommend(Attributes(...))``. Histories of new users are read
        after the unknown user's token (zeros)."""

_PRIVACY = """\
    differential_privacy : DifferentialPrivacy or None, default=None
        Train with differentially private SGD (Opacus), each user's whole
        history the unit protected: users sampled by Poisson sampling, each
        user's gradient clipped, Gaussian noise calibrated to the target
        ``epsilon`` (see :class:`~sklearn_recsys.DifferentialPrivacy` and the
        Privacy guide). Early stopping and warm starts are off under it.
        Fitted ``epsilon_``, ``delta_`` and ``noise_multiplier_`` report what
        was spent."""

_PRIVACY_ATTRIBUTES = """\
    epsilon_ : float
        Only with ``differential_privacy``: the privacy spent at ``delta_``
        (Opacus's accountant).
    delta_ : float
        Only with ``differential_privacy``.
    noise_multiplier_ : float
        Only with ``differential_privacy``: the noise used, relative to the
        clipping norm."""

_ID_COLUMNS = """\
    user_col : str, default="user"
        User id column of an interaction table.
    item_col : str, default="item"
        Item id column of an interaction table."""

_TIME_COLUMN = """\
    time_col : str, int or None, default="timestamp"
        Time column (label) of an interaction table (numbers or datetimes, naive,
        tz-aware or Arrow timestamps). When the table has no such column, or
        ``time_col=None``, rows are in order."""

_NEURAL_RUNTIME = """\
    device : str, default="cpu"
        Torch device to train and score on: ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ... or ``"auto"`` (CUDA when available).
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net (``(name, callback)`` tuples allowed).
    verbose : int, default=0
        0: silent. 1 or more: skorch's per-epoch log and progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds everything random in a fit: initialisation, shuffling,
        negative sampling, dropout and the validation split. Two fits with
        the same integer seed give the same model on CPU.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face Accelerate (skorch's
        :class:`~skorch.hf.AccelerateMixin`): data-parallel on every process
        of a ``torchrun`` / ``accelerate launch`` run (each process trains on
        its share of every epoch's batches, gradients all-reduced), mixed
        precision (``Accelerator(mixed_precision="bf16")``). The network
        trains on ``accelerator.device``. See :ref:`distributed`."""

_NET_PARAMS = """\
    **kwargs : dict
        skorch's own parameters, written as a skorch user writes them and
        routed to the net as skorch documents: ``lr`` and ``max_epochs``
        (skorch's names of ``learning_rate_init`` and ``max_iter``; they win
        when given), ``optimizer`` (a class), and ``module__*`` (arguments of
        the network), ``optimizer__*``, ``criterion__*``,
        ``iterator_train__*``/``iterator_valid__*`` (``batch_size``,
        ``shuffle``), ``callbacks__*``, and ``compile=True`` (train the
        network compiled by :func:`torch.compile`, with ``compile__*`` as its
        arguments; the fitted model keeps the module itself). They are
        parameters like the others: in ``get_params``, settable in grids,
        kept by ``clone``."""

_NEURAL_ATTRIBUTES = """\
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when the fit held out validation data
        (``early_stopping=True``, or ``"auto"`` on more than 10,000
        interactions); None otherwise.
    n_iter_ : int
        Number of epochs run (over all fits when ``warm_start=True``).
    n_features_in_ : int
        Number of items (columns), when fitted on a matrix."""

_ID_ATTRIBUTES = """\
    user_ids_ : ndarray of shape (n_users,)
        Raw user ids in index order (row indices for a matrix).
    item_ids_ : ndarray of shape (n_items,)
        Raw item ids in index order (column indices for a matrix)."""

DOCS = {
    "early_stopping_pairs": _EARLY_STOPPING_PAIRS + "\n" + _PATIENCE,
    "early_stopping_sequences": _EARLY_STOPPING_SEQUENCES + "\n" + _PATIENCE,
    "id_columns": _ID_COLUMNS,
    "time_column": _TIME_COLUMN,
    "neural_runtime": _NEURAL_RUNTIME + "\n" + _NET_PARAMS,
    "neural_attributes": _NEURAL_ATTRIBUTES,
    "privacy": _PRIVACY,
    "sequence_item_attributes": _SEQUENCE_ITEM_ATTRIBUTES,
    "sequence_loss": _SEQUENCE_LOSS,
    "sequence_solver": _SEQUENCE_SOLVER,
    "privacy_attributes": _PRIVACY_ATTRIBUTES,
    "id_attributes": _ID_ATTRIBUTES,
}

_PLACEHOLDER = re.compile(r"^ *%\((\w+)\)s$", re.MULTILINE)


def fill_doc(obj):
    """Replace each ``%(name)s`` line of ``obj.__doc__`` by ``DOCS[name]``."""
    obj.__doc__ = _PLACEHOLDER.sub(lambda m: DOCS[m.group(1)], obj.__doc__)
    return obj
