"""Synthetic interaction data with planted, recoverable structure."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_interactions"]

# Scale of the latent factors: entries are N(0, _AFFINITY_STD / sqrt(k)), so
# that the dot product user_factors[u] @ item_factors[i] has standard
# deviation _AFFINITY_STD whatever n_components is.
_AFFINITY_STD = 2.0
# Spread (log-normal sigma) of the number of items per user around
# density * n_items.
_LENGTH_SIGMA = 0.5
# Noise of the item side information, relative to the signal.
_FEATURE_NOISE = 0.1
_IMAGE_NOISE = 6.0  # pixel noise standard deviation, in grey levels
_T0 = 1_000_000_000  # 2001-09-09, start of the synthetic time line
_SPAN = 365 * 24 * 3600  # timestamps of unordered data fall within a year
_MAX_CELLS = 4_000_000  # users are processed in chunks of at most this many cells


def _check_int(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _check_real(name, value, low, high=np.inf, low_open=False):
    lo = f"> {low}" if low_open else f">= {low}"
    hi = "" if high == np.inf else f" and <= {high}"
    msg = f"{name} must be a real number {lo}{hi}, got {value!r}."
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(msg)
    value = float(value)
    if not np.isfinite(value) or value < low or (low_open and value == low):
        raise ValueError(msg)
    if value > high:
        raise ValueError(msg)
    return value


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _check_pair(name, value, what):
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair of integers ({what}), got {value!r}."
        ) from None
    for v in (a, b):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise ValueError(
                f"{name} must be a pair of integers ({what}), got {value!r}."
            )
    return int(a), int(b)


def _blob_patterns(n_components, shape):
    """One Gaussian blob per component, centred on a regular grid."""
    height, width = shape
    n_rows = int(np.ceil(np.sqrt(n_components * height / width)))
    n_cols = int(np.ceil(n_components / n_rows))
    cy = (np.arange(n_rows) + 0.5) * height / n_rows - 0.5
    cx = (np.arange(n_cols) + 0.5) * width / n_cols - 0.5
    centres = np.array([(y, x) for y in cy for x in cx])[:n_components]
    sigma = 0.45 * min(height / n_rows, width / n_cols)
    yy, xx = np.mgrid[0:height, 0:width]
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2
    d2 = d2 + (xx[None] - centres[:, 1, None, None]) ** 2
    patterns = np.exp(-d2 / (2 * sigma**2))
    return patterns / patterns.max(axis=(1, 2), keepdims=True)


def _sample_lengths(rng, n_users, n_items, density):
    mean = density * n_items
    lengths = mean * np.exp(
        rng.normal(-(_LENGTH_SIGMA**2) / 2, _LENGTH_SIGMA, size=n_users)
    )
    return np.clip(np.rint(lengths), 2, n_items).astype(np.int64)


def _preference_orders(rng, user_factors, item_factors, log_pop, users):
    """Plackett-Luce orders of the items for a chunk of users.

    Sorting ``affinity + Gumbel noise`` in decreasing order samples items
    without replacement with probability proportional to ``exp(affinity)``
    among the items not drawn yet (the Gumbel-top-k trick).
    """
    keys = user_factors[users] @ item_factors.T + log_pop
    keys += rng.gumbel(size=keys.shape)
    return np.argsort(-keys, axis=1, kind="stable")


def _markov_sequences(rng, orders, lengths, successor, markov_strength):
    """Build each user's item sequence, vectorised across users.

    The first item is the user's preferred one (first of its Plackett-Luce
    order). Each next item is ``successor[previous]`` with probability
    ``markov_strength`` when the user has not consumed it yet, else the next
    unconsumed item of the user's order, i.e. a draw without replacement from
    the user's preference distribution.
    """
    m, n_items = orders.shape
    max_len = int(lengths.max())
    seq = np.empty((m, max_len), dtype=np.int64)
    consumed = np.zeros((m, n_items), dtype=bool)
    pointer = np.zeros(m, dtype=np.int64)
    rows_all = np.arange(m)
    for t in range(max_len):
        rows = rows_all[lengths > t]
        nxt = np.empty(rows.size, dtype=np.int64)
        if t > 0:
            cand = successor[seq[rows, t - 1]]
            follow = (rng.random_sample(rows.size) < markov_strength) & ~consumed[
                rows, cand
            ]
        else:
            cand = np.zeros(rows.size, dtype=np.int64)
            follow = np.zeros(rows.size, dtype=bool)
        nxt[follow] = cand[follow]
        draw = rows[~follow]
        # Skip the already consumed items of the order (there is always an
        # unconsumed one since lengths <= n_items).
        active = draw
        while active.size:
            taken = consumed[active, orders[active, pointer[active]]]
            pointer[active[taken]] += 1
            active = active[taken]
        nxt[~follow] = orders[draw, pointer[draw]]
        pointer[draw] += 1
        seq[rows, t] = nxt
        consumed[rows, nxt] = True
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    return seq[mask]


def make_interactions(
    n_users=100,
    n_items=50,
    *,
    n_components=5,
    density=0.1,
    feedback="implicit",
    popularity_exponent=1.0,
    noise=0.5,
    sequential=False,
    markov_strength=0.8,
    item_features=None,
    image_shape=(8, 8),
    n_features=16,
    rating_scale=(1, 5),
    shuffle=True,
    random_state=None,
):
    """Generate user-item interactions with a planted latent structure.

    Users and items get latent factors ``user_factors`` and ``item_factors``
    of dimension ``n_components`` (Gaussian, scaled so that their dot product
    has standard deviation 2) and items a power-law popularity
    ``item_popularity[i] ∝ rank_i ** -popularity_exponent`` (ranks randomly
    assigned to items). The affinity of user ``u`` for item ``i`` is::

        affinity[u, i] = user_factors[u] @ item_factors[i] + log(item_popularity[i])

    Each user consumes about ``density * n_items`` distinct items (at least
    2; the number varies across users, log-normally), drawn without
    replacement with probability proportional to ``exp(affinity[u, i])``
    among the items not drawn yet (softmax with temperature 1). There are no
    duplicate ``(user, item)`` pairs.

    With ``sequential=True``, every item ``i`` has a fixed successor
    ``successor[i]`` (a random cyclic permutation, so ``successor[i] != i``)
    and each user's items form a Markov chain: the next item is the
    successor of the previous one with probability ``markov_strength`` when
    the user has not consumed it yet, else a draw from the user's preference
    distribution. Timestamps increase strictly along each user's sequence.
    Without it, timestamps are random integers within one year.

    Parameters
    ----------
    n_users : int, default=100
        Number of users (ids ``0 .. n_users - 1``).

    n_items : int, default=50
        Number of items (ids ``0 .. n_items - 1``), at least 2.

    n_components : int, default=5
        Dimension of the latent factors.

    density : float, default=0.1
        Average fraction of the items each user consumes, in (0, 1].

    feedback : {"implicit", "explicit"}, default="implicit"
        With "implicit" the interactions have no target column; with
        "explicit" they get an integer ``rating``.

    popularity_exponent : float, default=1.0
        Exponent of the Zipf-like item popularity; 0 gives uniform
        popularity, larger values a more skewed one.

    noise : float, default=0.5
        Standard deviation of the Gaussian noise added to the ratings
        (in rating units) before rounding. Only used for explicit feedback.

    sequential : bool, default=False
        Whether each user's items follow the planted Markov chain.

    markov_strength : float, default=0.8
        Probability, in [0, 1], of following the successor of the previous
        item. Only used when ``sequential=True``.

    item_features : {None, "vector", "image"}, default=None
        Item side information to generate from the item factors:

        - "vector": ``item_features``, float array of shape
          ``(n_items, n_features)``: a fixed random linear map of the item
          factors (standardised) plus Gaussian noise of standard deviation 0.1.
        - "image": ``item_images``, uint8 array of shape
          ``(n_items, *image_shape)``: a mid-grey image (127.5) where each
          factor dimension sets the signed intensity of its own Gaussian blob
          (blobs on a regular grid), plus pixel noise (std 6 grey levels).
          A small CNN, or even a linear model, can decode the factors.

    image_shape : tuple of (int, int), default=(8, 8)
        Height and width of the item images; ``height * width`` must be at
        least ``n_components``. Only used when ``item_features="image"``.

    n_features : int, default=16
        Number of item features. Only used when ``item_features="vector"``.

    rating_scale : tuple of (int, int), default=(1, 5)
        Lowest and highest rating. Ratings are an affine map of the affinity
        (standardised over the observed pairs, +-2 standard deviations
        spanning the scale) plus noise, rounded and clipped to this range.
        Only used for explicit feedback.

    shuffle : bool, default=True
        Whether to shuffle the rows. If False, rows are grouped by user, in
        increasing timestamp order within each user.

    random_state : int, RandomState instance or None, default=None
        Determines the generation. Pass an int for reproducible output.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        interactions : DataFrame of shape (n_interactions, 3) or (n_interactions, 4)
            Columns ``user``, ``item``, ``timestamp`` (int64), and for
            explicit feedback ``rating`` (int64).
        user_factors : ndarray of shape (n_users, n_components)
            Latent user factors.
        item_factors : ndarray of shape (n_items, n_components)
            Latent item factors.
        item_popularity : ndarray of shape (n_items,)
            Popularity weights (summing to 1).
        successor : ndarray of shape (n_items,)
            The planted successor of each item; only when ``sequential=True``.
        item_features : ndarray of shape (n_items, n_features)
            Only when ``item_features="vector"``.
        item_images : ndarray of shape (n_items, height, width)
            Only when ``item_features="image"``.
        DESCR : str
            Description of the generation process and parameters.

    Examples
    --------
    >>> from sklearn_recsys.datasets import make_interactions
    >>> data = make_interactions(n_users=20, n_items=30, random_state=0)
    >>> data.interactions.columns.tolist()
    ['user', 'item', 'timestamp']
    >>> data.user_factors.shape, data.item_factors.shape
    ((20, 5), (30, 5))
    >>> data = make_interactions(
    ...     n_users=20, n_items=30, feedback="explicit", sequential=True,
    ...     item_features="image", random_state=0)
    >>> data.interactions.columns.tolist()
    ['user', 'item', 'timestamp', 'rating']
    >>> data.item_images.shape, data.item_images.dtype
    ((30, 8, 8), dtype('uint8'))
    >>> data.successor.shape
    (30,)
    """
    n_users = _check_int("n_users", n_users, 1)
    n_items = _check_int("n_items", n_items, 2)
    n_components = _check_int("n_components", n_components, 1)
    density = _check_real("density", density, 0.0, 1.0, low_open=True)
    if feedback not in ("implicit", "explicit"):
        raise ValueError(
            f"feedback must be 'implicit' or 'explicit', got {feedback!r}."
        )
    popularity_exponent = _check_real("popularity_exponent", popularity_exponent, 0.0)
    noise = _check_real("noise", noise, 0.0)
    sequential = _check_bool("sequential", sequential)
    markov_strength = _check_real("markov_strength", markov_strength, 0.0, 1.0)
    if item_features not in (None, "vector", "image"):
        raise ValueError(
            f"item_features must be None, 'vector' or 'image', got {item_features!r}."
        )
    image_shape = _check_pair("image_shape", image_shape, "height, width")
    if item_features == "image":
        if min(image_shape) < 1 or image_shape[0] * image_shape[1] < n_components:
            raise ValueError(
                f"image_shape must be two positive integers with height * width "
                f">= n_components={n_components}, got {image_shape!r}; use "
                "larger images or fewer components."
            )
    n_features = _check_int("n_features", n_features, 1)
    rating_scale = _check_pair("rating_scale", rating_scale, "lowest, highest")
    if rating_scale[0] >= rating_scale[1]:
        raise ValueError(
            "rating_scale must be (lowest, highest) with lowest < highest, got "
            f"{rating_scale!r}."
        )
    shuffle = _check_bool("shuffle", shuffle)
    rng = check_random_state(random_state)

    # Latent structure.
    scale = np.sqrt(_AFFINITY_STD / np.sqrt(n_components))
    user_factors = rng.normal(0.0, scale, size=(n_users, n_components))
    item_factors = rng.normal(0.0, scale, size=(n_items, n_components))
    ranks = rng.permutation(n_items) + 1.0
    item_popularity = ranks**-popularity_exponent
    item_popularity /= item_popularity.sum()
    log_pop = np.log(item_popularity)
    successor = None
    if sequential:
        cycle = rng.permutation(n_items)
        successor = np.empty(n_items, dtype=np.int64)
        successor[cycle] = np.roll(cycle, -1)

    # Interactions, users processed in chunks to bound memory.
    lengths = _sample_lengths(rng, n_users, n_items, density)
    chunk = max(1, _MAX_CELLS // n_items)
    items_parts = []
    for start in range(0, n_users, chunk):
        users = np.arange(start, min(start + chunk, n_users))
        orders = _preference_orders(rng, user_factors, item_factors, log_pop, users)
        chunk_lengths = lengths[users]
        if sequential:
            items_parts.append(
                _markov_sequences(
                    rng, orders, chunk_lengths, successor, markov_strength
                )
            )
        else:
            mask = np.arange(n_items)[None, :] < chunk_lengths[:, None]
            items_parts.append(orders[mask])
    item_col = np.concatenate(items_parts)
    user_col = np.repeat(np.arange(n_users, dtype=np.int64), lengths)

    # Timestamps.
    n_rows = item_col.size
    if sequential:
        starts = _T0 + rng.randint(0, _SPAN // 2, size=n_users, dtype=np.int64)
        gaps = 1 + rng.geometric(1.0 / 3600.0, size=n_rows)
        csum = np.cumsum(gaps)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        before = np.where(offsets > 0, csum[offsets - 1], 0)
        timestamp = csum - np.repeat(before, lengths) + np.repeat(starts, lengths)
    else:
        timestamp = _T0 + rng.randint(0, _SPAN, size=n_rows, dtype=np.int64)
        order = np.lexsort((timestamp, user_col))
        item_col, timestamp = item_col[order], timestamp[order]
    timestamp = timestamp.astype(np.int64)

    columns = {
        "user": user_col,
        "item": item_col.astype(np.int64),
        "timestamp": timestamp,
    }
    if feedback == "explicit":
        affinity = (
            np.einsum("ij,ij->i", user_factors[user_col], item_factors[item_col])
            + log_pop[item_col]
        )
        std = affinity.std()
        z = (affinity - affinity.mean()) / (std if std > 0 else 1.0)
        low, high = rating_scale
        mid, half = (low + high) / 2.0, (high - low) / 4.0
        rating = mid + half * z + rng.normal(0.0, 1.0, size=n_rows) * noise
        columns["rating"] = np.clip(np.rint(rating), low, high).astype(np.int64)
    interactions = pd.DataFrame(columns)
    if shuffle:
        interactions = interactions.iloc[rng.permutation(n_rows)].reset_index(drop=True)

    data = Bunch(
        interactions=interactions,
        user_factors=user_factors,
        item_factors=item_factors,
        item_popularity=item_popularity,
    )
    if sequential:
        data.successor = successor

    # Item side information.
    if item_features == "vector":
        mapping = rng.normal(size=(n_components, n_features))
        signal = (item_factors / scale) @ mapping / np.sqrt(n_components)
        data.item_features = signal + _FEATURE_NOISE * rng.normal(size=signal.shape)
    elif item_features == "image":
        patterns = _blob_patterns(n_components, image_shape)
        amplitude = 127.5 / 3.0
        images = 127.5 + amplitude * np.tensordot(
            item_factors / scale, patterns, axes=1
        )
        images += _IMAGE_NOISE * rng.normal(size=images.shape)
        data.item_images = np.clip(np.rint(images), 0, 255).astype(np.uint8)

    data.DESCR = (
        "Synthetic interactions from sklearn_recsys.datasets.make_interactions: "
        f"{n_users} users, {n_items} items, {n_rows} {feedback} interactions "
        f"(density {n_rows / (n_users * n_items):.3f}), {n_components} latent "
        f"components, Zipf popularity exponent {popularity_exponent}"
        + (
            f", Markov successor chains (strength {markov_strength})"
            if sequential
            else ""
        )
        + (f", item side information: {item_features}" if item_features else "")
        + ". Each user draws items without replacement with probability "
        "proportional to exp(user_factors[u] @ item_factors[i] + "
        "log(item_popularity[i]))."
    )
    return data
