"""Model artifacts: a fitted recommender in one safetensors file.

:func:`save` writes, and :func:`load` reads back, everything a fitted
estimator needs to predict and recommend, and nothing from training (no
optimizer state, no training history, no training data beyond the items each
known user has seen, which ``recommend(exclude_seen=True)`` and the sequence
models need):

* every array -- network weights, id maps of numeric ids, seen-item matrices,
  baseline coefficients -- as a tensor of a `safetensors
  <https://huggingface.co/docs/safetensors>`_ file;
* the estimator's class and parameters, string ids, scalars and versions as
  JSON in the file's metadata (key ``"sklearn_recsys"``).

Loading executes no pickled code: classes come from a fixed list (the
package's estimators and :mod:`sklearn_recsys.nn` modules), and everything
else is arrays and JSON.

The fitted state is written in the plain form of
:mod:`sklearn_recsys._portable` (ndarrays, dicts, lists, strings and numbers),
which is also what the estimators give :mod:`skops.io`.
"""

import json
import platform
from pathlib import Path

import numpy as np
import torch

from ._portable import PORTABLE_VERSION, from_plain, hashes_to_array, to_plain

# Bump when the layout changes in a way older readers cannot read.
FORMAT_VERSION = PORTABLE_VERSION
_FORMAT = "sklearn_recsys.artifact"
_METADATA_KEY = "sklearn_recsys"
_QUANTIZE = (None, "int8")
# Floating tensors of at least this many elements with 2 dimensions are
# stored per-row int8 with ``quantize="int8"`` (embedding and item tables,
# weights of linear layers); smaller ones and vectors stay float32.
_INT8_MIN_SIZE = 256


def _estimator_classes():
    from . import (
        EASE,
        AttentionRecommender,
        CNNRecommender,
        ItemKNN,
        LSTMRecommender,
        MatrixFactorization,
        Popularity,
    )

    classes = (
        MatrixFactorization, CNNRecommender, LSTMRecommender, AttentionRecommender,
        EASE, ItemKNN, Popularity,
    )
    return {cls.__name__: cls for cls in classes}


# -- the file -------------------------------------------------------------------


class _Writer:
    """Splits a plain tree into JSON and named arrays for safetensors."""

    def __init__(self, quantize):
        self.arrays = {}
        self.quantize = quantize
        self.stats = {"parameter_bytes": 0, "id_bytes": 0, "other_bytes": 0}

    def encode(self, value, path, kind="other"):
        if isinstance(value, np.ndarray):
            return self._array(value, path, kind)
        if isinstance(value, dict):
            if "__ids__" in value:
                return {"__ids__": self._ids(value["__ids__"], path)}
            if "__module__" in value:
                return {
                    "__module__": value["__module__"],
                    "config": self.encode(value["config"], f"{path}.config"),
                    "state": {
                        k: self._array(v, f"{path}.state.{k}", "parameter", weights=True)
                        for k, v in value["state"].items()
                    },
                }
            return {k: self.encode(v, f"{path}.{k}", kind) for k, v in value.items()}
        if isinstance(value, list):
            return [self.encode(v, f"{path}.{i}", kind) for i, v in enumerate(value)]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(
            f"Cannot store {path} of type {type(value).__name__} in an artifact."
        )

    def _ids(self, ids, path):
        if ids.dtype.kind in "biuf":
            return self._array(ids, path, "id")
        items = [item.item() if isinstance(item, np.generic) else item for item in ids.tolist()]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise TypeError(
                    f"Ids of type {type(item).__name__} (e.g. {item!r}) cannot be stored "
                    "in an artifact: use str or numeric ids."
                )
        self.stats["id_bytes"] += len(json.dumps(items))
        return {"list": items, "dtype": ids.dtype.str}

    def _array(self, array, path, kind, weights=False):
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            if array.dtype.kind in "OU":
                return {"__objects__": self._ids(array, path)}
            raise TypeError(f"Cannot store {path} of dtype {array.dtype} in an artifact.")
        entry = {"__array__": path, "dtype": array.dtype.str, "shape": list(array.shape)}
        stored = array
        if array.dtype.kind in "iu" and array.size:
            stored = array.astype(_smallest_int(array), copy=False)
        elif array.dtype == np.bool_ and array.size and array.all():
            stored = None  # all True: the shape says it all
            entry["fill"] = True
        elif (
            weights and self.quantize == "int8" and array.dtype.kind == "f"
            and array.ndim == 2 and array.size >= _INT8_MIN_SIZE
        ):
            stored, scale = _int8_rows(array)
            self.arrays[f"{path}:scale"] = scale
            entry["int8_scale"] = f"{path}:scale"
            self.stats["parameter_bytes"] += scale.nbytes
        if stored is not None:
            self.arrays[path] = np.ascontiguousarray(stored)
            self.stats[f"{kind}_bytes"] += stored.nbytes
        return entry


def _smallest_int(array):
    low, high = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return dtype if np.dtype(dtype).itemsize < array.dtype.itemsize else array.dtype
    return array.dtype


def _int8_rows(array):
    """Symmetric per-row int8: ``array ~ q * scale[:, None]``."""
    w = array.astype(np.float32)
    scale = np.abs(w).max(axis=1) / 127.0
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _decode(value, tensors, fill_length=None):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__csr__" in value:  # all-True data take the length of the indices
        out = {k: _decode(v, tensors) for k, v in value.items() if k != "data"}
        out["data"] = _decode(value["data"], tensors, fill_length=len(out["indices"]))
        return out
    if "__array__" in value:
        dtype, shape = np.dtype(value["dtype"]), tuple(value["shape"])
        if value.get("fill"):
            if fill_length is None or shape != (fill_length,):
                raise ValueError("Malformed artifact: a filled array outside a matrix.")
            return np.ones(shape, dtype=dtype)
        array = tensors.get_tensor(value["__array__"])
        if "int8_scale" in value:
            scale = tensors.get_tensor(value["int8_scale"])
            array = array.astype(np.float32) * scale[:, None]
        return array.astype(dtype, copy=False).reshape(shape).copy()  # 0-d stays 0-d
    if "__objects__" in value:
        return _listed_array(value["__objects__"])
    if "__ids__" in value:
        ids = value["__ids__"]
        if "list" in ids:
            return {"__ids__": _listed_array(ids)}
        return {"__ids__": _decode(ids, tensors)}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _listed_array(entry):
    dtype = np.dtype(entry["dtype"])
    if dtype == object:  # np.array would guess a dtype from the items
        array = np.empty(len(entry["list"]), dtype=object)
        array[:] = entry["list"]
        return array
    return np.array(entry["list"], dtype=dtype)


def _json_params(estimator):
    """JSON-storable parameters, and the names of those that are not."""
    params, dropped = {}, []
    for name, value in estimator.get_params(deep=False).items():
        plain = to_plain(value)
        try:
            json.dumps(plain, allow_nan=True)
        except TypeError:
            dropped.append(name)
            continue
        params[name] = plain
    return params, dropped


def save(estimator, path, *, quantize=None, user_ids="hashed", user_id_key=None):
    """Save a fitted recommender as a safetensors artifact.

    The file holds what prediction needs -- the network weights (or a
    baseline's coefficients), the id maps, the items each known user has
    seen (and, for the sequence models, the training histories they encode)
    -- plus the estimator's parameters and the versions that wrote it.
    Nothing from training: no optimizer state, no loss history beyond the
    per-epoch curves. Parameters that are not plain values (``callbacks``,
    ``item_content``) are left out (listed in the file) and come back at
    their default of ``None``; a loaded model predicts and recommends as the
    saved one, and a new ``fit`` starts afresh.

    Parameters
    ----------
    estimator : fitted recommender
        ``MatrixFactorization``, ``CNNRecommender``, ``LSTMRecommender``,
        ``AttentionRecommender``, ``EASE``, ``ItemKNN``, ``Popularity``, or a
        recommender of your own built on this package's bases (loading it then
        needs ``trusted=[YourClass, YourNetwork]``).
    path : str or path-like
        File to write (conventionally ``*.safetensors``).
    quantize : {None, "int8"}, default=None
        ``"int8"`` stores every floating network weight matrix with at least
        256 entries (embedding and item tables, linear layers) as symmetric
        per-row int8 with a float32 scale per row, about 4x smaller; loading
        turns them back into float32. Vectors (biases) stay float32. Scores
        change slightly (see the Deploying guide for measured effects).
    user_ids : {"hashed", "raw"}, default="hashed"
        ``"hashed"``: the file holds keyed hashes of the user ids
        (HMAC-SHA256 under ``user_id_key``, 128 bits) instead of the ids, so
        that it does not list the users; :func:`load` given the key maps raw
        ids to them, and known users are recommended for as before.
        ``"raw"``: the ids themselves. Item ids are always stored as they are.
    user_id_key : bytes, str or None, default=None
        The key of the hashes (a str is encoded as UTF-8). None: a new random
        256-bit key, written beside the artifact as ``<path>.key`` (hex,
        readable by the owner only), where :func:`load` finds it. Keep the key
        apart from the artifact when the file travels.

    Returns
    -------
    path : pathlib.Path
        The file written.

    See Also
    --------
    load : Read an artifact back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import pandas as pd
    >>> import sklearn_recsys
    >>> from sklearn_recsys import Popularity
    >>> X = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]})
    >>> model = Popularity().fit(X)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> _ = sklearn_recsys.save(model, path)
    >>> sklearn_recsys.load(path).recommend([2], k=1)[0]
    array([['b']], dtype=object)
    """
    from safetensors.numpy import save_file
    from sklearn.utils.validation import check_is_fitted

    from ._base import BaseRecommender, _refuse_int8_compute

    if not isinstance(estimator, BaseRecommender):
        raise TypeError(
            "save stores the recommenders of sklearn_recsys (and subclasses of its "
            f"bases); got {type(estimator).__name__}. Use pickle or skops for other "
            "objects."
        )
    if quantize not in _QUANTIZE:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}.")
    check_is_fitted(estimator)
    _refuse_int8_compute(estimator, "save")
    if user_ids not in ("hashed", "raw"):
        raise ValueError(f"user_ids must be 'hashed' or 'raw', got {user_ids!r}.")
    writer = _Writer(quantize)
    params, dropped = _json_params(estimator)
    state = estimator._portable_fitted_state()
    path = Path(path)
    key, write_key = None, False
    if user_ids == "hashed":
        key, write_key = _hash_user_ids(estimator, state, user_id_key)
    elif "__hashed_ids__" in state["_user_index"]:
        raise ValueError(
            "This model holds keyed hashes of its user ids (it was loaded from such an "
            "artifact); its raw ids are unknown, so user_ids='raw' cannot be written."
        )
    fitted = writer.encode(state, "fitted")
    content = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": params,
        "dropped_params": dropped,
        "fitted": fitted,
        "quantize": quantize,
        "user_ids": user_ids,
        "user_id_key_check": None if key is None else _key_check(key),
        "sizes": writer.stats,
        "versions": _versions(),
    }
    # write beside, then rename: a reader never sees a half-written artifact
    partial = path.with_name(f".{path.name}.partial")
    save_file(writer.arrays, partial, metadata={_METADATA_KEY: json.dumps(content)})
    partial.replace(path)
    if write_key:
        _write_key(_key_path(path), key)
    return path


def _as_key(key):
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise TypeError(
            f"user_id_key must be non-empty bytes or str, got {type(key).__name__}."
        )
    return key


def _key_path(path):
    return Path(f"{path}.key")


def _key_check(key):
    import hashlib
    import hmac

    return hmac.new(key, b"sklearn_recsys user id key", hashlib.sha256).hexdigest()[:16]


def _write_key(path, key):
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")


def _hash_user_ids(estimator, state, user_id_key):
    """Replace the user ids of ``state`` by keyed hashes: ``(key, write_key)``."""
    import secrets

    from ._input import keyed_hashes

    index = state["_user_index"]
    if "__hashed_ids__" in index:  # loaded from a hashed artifact: keep its key
        own = estimator._user_index.key
        if user_id_key is not None and _as_key(user_id_key) != own:
            raise ValueError(
                "This model's user ids are hashed under another key; save it without "
                "user_id_key (its own key is kept)."
            )
        return own, user_id_key is None
    key = secrets.token_bytes(32) if user_id_key is None else _as_key(user_id_key)
    state["_user_index"] = {
        "__hashed_ids__": hashes_to_array(keyed_hashes(index["__ids__"], key))
    }
    return key, user_id_key is None


def _versions():
    import sklearn

    from . import __version__

    return {
        "sklearn_recsys": __version__, "torch": torch.__version__,
        "numpy": np.__version__, "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def read_metadata(path):
    """The JSON description of an artifact (class, parameters, versions, sizes).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    metadata : dict
    """
    import os
    import stat

    from safetensors import safe_open

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"No artifact at {str(path)!r}.") from exc
    if not stat.S_ISREG(mode):  # a FIFO or device would block the reader
        raise ValueError(f"{str(path)!r} is not a regular file.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get(_METADATA_KEY)
    except Exception as exc:
        if not Path(path).exists():
            raise FileNotFoundError(f"No artifact at {str(path)!r}.") from exc
        raise ValueError(f"{str(path)!r} is not a safetensors file: {exc}") from exc
    if raw is None:
        raise ValueError(
            f"{str(path)!r} is a safetensors file but not a sklearn_recsys artifact "
            f"(no {_METADATA_KEY!r} metadata)."
        )
    content = json.loads(raw)
    if content.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a sklearn_recsys artifact.")
    version = content.get("format_version")
    if version != FORMAT_VERSION:
        from . import __version__

        raise ValueError(
            f"{str(path)!r} has artifact format version {version}, written by "
            f"sklearn_recsys {content.get('versions', {}).get('sklearn_recsys')}; this "
            f"sklearn_recsys ({__version__}) reads format version {FORMAT_VERSION} only. "
            "Load it with the version that wrote it, or refit."
        )
    return content


def load(path, *, device="cpu", quantize=None, trusted=(), user_id_key=None):
    """Load a recommender saved with :func:`save`.

    No pickled code runs: the estimator and network classes come from a fixed
    list of this package's classes, everything else is arrays and JSON.

    Parameters
    ----------
    path : str or path-like
        An artifact written by :func:`save`.
    device : str or torch.device, default="cpu"
        Where the model scores (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); the
        loaded estimator's ``device`` parameter is set to it.
    quantize : {None, "int8"}, default=None
        ``"int8"``: the network's linear layers compute in int8 (PyTorch's
        dynamic quantization, :func:`torch.ao.quantization.quantize_dynamic`:
        int8 weights, activations quantized on the fly; CPU only). It speeds
        up the models whose scoring runs through linear layers (attention,
        NeuMF, the CNN's towers); MF's dot products and the item tables are
        unaffected (store those as int8 with ``save(..., quantize="int8")``).
        Such a model cannot be saved again.
    trusted : sequence of classes, default=()
        Your own estimator and :class:`~sklearn_recsys.nn.Scorer` classes that
        the artifact may name, besides this package's.
    user_id_key : bytes, str or None, default=None
        The key of an artifact with hashed user ids (see :func:`save`). None:
        read ``<path>.key`` beside the artifact, else the environment
        variable ``SKLEARN_RECSYS_USER_ID_KEY``. The loaded model's
        ``user_ids_`` are the hashes; ``recommend``, ``predict`` and the
        scorers take raw user ids as before.

    Returns
    -------
    estimator : fitted recommender
        ``predict``, ``recommend``, ``similar_items`` and ``transform`` give
        the saved model's results. It holds no training state: ``fit`` trains
        afresh, and ``warm_start=True`` cannot continue it.

    Raises
    ------
    ValueError
        If the file is not an artifact of this package, or of a format
        version this version cannot read.

    See Also
    --------
    save : Write an artifact.
    """
    from safetensors import safe_open

    from ._training import resolve_device

    content = read_metadata(path)
    from ._base import BaseRecommender

    classes = _estimator_classes()
    classes.update(
        (cls.__name__, cls) for cls in trusted
        if isinstance(cls, type) and issubclass(cls, BaseRecommender)
    )
    name = content["estimator"]
    if name not in classes:
        raise ValueError(
            f"{str(path)!r} holds a {name}, which is not one of this package's "
            f"estimators ({', '.join(sorted(_estimator_classes()))}); pass its class "
            "with trusted=[...] if you trust the file."
        )
    device = str(resolve_device(str(device)))
    params = from_plain(content["params"])
    if "device" in params:
        params["device"] = device
    estimator = classes[name](**params)
    estimator._validate_params()
    with safe_open(str(path), framework="numpy") as tensors:
        fitted = _decode(content["fitted"], tensors)
    estimator._restore_portable_state(fitted, device, trusted)
    if content.get("user_ids") == "hashed":
        estimator._user_index.key = _load_key(path, content, user_id_key)
    if quantize is not None:
        _quantize_linear_layers(estimator, quantize, device)
    return estimator


USER_ID_KEY_ENV = "SKLEARN_RECSYS_USER_ID_KEY"


def _load_key(path, content, user_id_key):
    import os

    if user_id_key is not None:
        key, source = _as_key(user_id_key), "user_id_key"
    elif _key_path(path).exists():
        key, source = bytes.fromhex(_key_path(path).read_text().strip()), str(_key_path(path))
    elif os.environ.get(USER_ID_KEY_ENV):
        key, source = os.environ[USER_ID_KEY_ENV].encode("utf-8"), USER_ID_KEY_ENV
    else:
        raise ValueError(
            f"{str(path)!r} holds keyed hashes of its user ids: pass user_id_key=, put "
            f"the key file {str(_key_path(path))!r} beside it, or set {USER_ID_KEY_ENV}."
        )
    if _key_check(key) != content.get("user_id_key_check"):
        raise ValueError(f"The user id key from {source} is not the key of {str(path)!r}.")
    return key


def _quantize_linear_layers(estimator, quantize, device):
    if quantize != "int8":
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}.")
    if not device.startswith("cpu"):
        raise ValueError(
            f"quantize='int8' computes with PyTorch's CPU int8 kernels; got device={device!r}."
        )
    module = estimator._module()
    if not any(isinstance(m, torch.nn.Linear) for m in module.modules()):
        return
    import warnings

    with warnings.catch_warnings():
        # torch.ao's eager-mode quantization is deprecated upstream (in favour
        # of torchao) but still the documented dynamic quantization of 2.x
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


